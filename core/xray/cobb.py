"""Cobb angles on an AP radiograph from the 68 vertebra corner landmarks (T1 to L5), in the image plane.

Two definitions, both from the same landmarks in pixels (x to the image's right, y down):

**Clinical (:func:`find_curves`, :func:`regional_cobb`)**, the Cobb method as the Scoliosis Research Society
describes it: each curve is measured between the most tilted endplates above and below its apex, i.e. the
superior or inferior endplate of the upper end vertebra and of the lower end vertebra, whichever tilts most.
The 34 endplate lines (T1 superior, T1 inferior, T2 superior, ... L5 inferior) each get a tilt in degrees
(positive when the line rises towards the image's right); a vertebra's tilt is the mean of its two. Along the
column the tilt goes up and down; a curve runs from one turning vertebra (an end vertebra) to the next, and its Cobb
angle is the difference of the tilts of their most tilted endplates. A swing back smaller than ``min_turn`` degrees
(default 5) is measurement noise, not a new curve; curves under 10 degrees are not scoliosis (SRS definition) but
are listed, so the caller decides. The apex is the vertebra or disc
farthest from the line joining the two end vertebrae's centres. Each curve is named by its apex as in the Lenke
classification (Lenke et al., J Bone Joint Surg Am 2001): proximal thoracic (apex T3-T5; here T1 to the T5-T6 disc),
main thoracic (apex T6 to the T11-T12 disc), thoracolumbar/lumbar (apex T12 or below).

**AASCE challenge (:func:`aasce_angles`)**, the rule the MICCAI 2019 AASCE challenge used to make its reference
angles and to score SMAPE (Wang et al., Med Image Anal 2021), re-implemented here from its description and checked
against the challenge's published angles: each vertebra gets one line joining the midpoints of its left and right
sides; the first angle is the largest angle between any two of these lines; the other two are found either side of
those two vertebrae, depending on whether the column is S-shaped. The challenge calls its three angles proximal
thoracic, main thoracic and thoracolumbar/lumbar, but by construction its first angle is the largest curve
wherever it lies. Use it to compare with challenge figures, and the clinical curves for reading a radiograph.

Angles are in the image plane: a rotated spine or a tilted film changes them, as it does on film.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from core.xray.levels import LEVELS, N_LANDMARKS, N_VERTEBRAE, endplate_name, position_name

REGIONS = ("proximal thoracic", "main thoracic", "thoracolumbar/lumbar")


def _points(landmarks) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=float)
    if pts.shape != (N_LANDMARKS, 2):
        raise ValueError(f"expected {N_LANDMARKS} landmarks as (x, y), got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("landmarks contain values that are not finite")
    return pts


def endplate_lines(landmarks) -> np.ndarray:
    """(34, 2, 2): endplate lines top to bottom as (left point, right point)."""
    pts = _points(landmarks).reshape(N_VERTEBRAE, 4, 2)
    upper = pts[:, [0, 1]]
    lower = pts[:, [2, 3]]
    return np.stack([upper, lower], axis=1).reshape(2 * N_VERTEBRAE, 2, 2)


def endplate_tilts(landmarks) -> np.ndarray:
    """(34,) tilt of each endplate in degrees: positive when the line rises towards the image's right.

    Each line is first oriented left to right, so tilts lie in (-90, 90]."""
    lines = endplate_lines(landmarks)
    d = lines[:, 1] - lines[:, 0]
    flip = d[:, 0] < 0
    d[flip] *= -1
    if np.any(np.hypot(d[:, 0], d[:, 1]) == 0):
        raise ValueError("an endplate has two coincident corners")
    return np.degrees(np.arctan2(-d[:, 1], d[:, 0]))


def vertebra_centres(landmarks) -> np.ndarray:
    return _points(landmarks).reshape(N_VERTEBRAE, 4, 2).mean(axis=1)


@dataclass(frozen=True)
class Curve:
    angle: float            # Cobb angle, degrees
    upper_endplate: int     # 0..33 (see levels.endplate_name)
    lower_endplate: int
    apex: float             # position in vertebra units: 0 = T1, 0.5 = T1-T2 disc
    convex_to: str          # "image right" or "image left"

    @property
    def upper_end_vertebra(self) -> str:
        return LEVELS[self.upper_endplate // 2]

    @property
    def lower_end_vertebra(self) -> str:
        return LEVELS[self.lower_endplate // 2]

    @property
    def apex_name(self) -> str:
        return position_name(self.apex)

    @property
    def region(self) -> str:
        if self.apex <= 4.5:    # T1 .. T5-T6 disc
            return REGIONS[0]
        if self.apex <= 10.5:   # T6 .. T11-T12 disc
            return REGIONS[1]
        return REGIONS[2]

    def describe(self) -> str:
        return (f"{self.region}: {self.angle:.1f}° from {endplate_name(self.upper_endplate)} to "
                f"{endplate_name(self.lower_endplate)} endplate ({self.upper_end_vertebra}-{self.lower_end_vertebra}),"
                f" apex {self.apex_name}, convex to the {self.convex_to}")


def _turning_points(tilts: np.ndarray, min_turn: float) -> list[int]:
    """Endplate indices where the tilt profile turns: alternating extremes (first and last included); a swing back
    smaller than ``min_turn`` degrees does not end a curve. Empty when the tilt never changes by ``min_turn``."""
    hi = lo = 0
    direction = 0           # +1 tilt rising, -1 falling, 0 before the first real change
    turns: list[int] = []
    ext = 0
    for i in range(1, len(tilts)):
        if direction == 0:
            hi = i if tilts[i] > tilts[hi] else hi
            lo = i if tilts[i] < tilts[lo] else lo
            if tilts[hi] - tilts[lo] >= min_turn:
                turns, direction, ext = ([lo], 1, hi) if hi > lo else ([hi], -1, lo)
        elif direction == 1:
            if tilts[i] > tilts[ext]:
                ext = i
            elif tilts[ext] - tilts[i] >= min_turn:
                turns.append(ext)
                direction, ext = -1, i
        else:
            if tilts[i] < tilts[ext]:
                ext = i
            elif tilts[i] - tilts[ext] >= min_turn:
                turns.append(ext)
                direction, ext = 1, i
    if direction != 0:
        turns.append(ext)
    return turns


def vertebra_tilts(landmarks) -> np.ndarray:
    """(17,) tilt of each vertebra: the mean of its two endplates' tilts, degrees."""
    return endplate_tilts(landmarks).reshape(N_VERTEBRAE, 2).mean(axis=1)


def find_curves(landmarks, min_turn: float = 5.0) -> list[Curve]:
    """Every curve of the column, top to bottom (see the module docstring).

    The end vertebrae are where the vertebrae's tilt (mean of their two endplates, less noisy than single
    endplates) turns; the angle is then taken between the more tilted endplate of each end vertebra."""
    tilts = endplate_tilts(landmarks)
    ends = _turning_points(vertebra_tilts(landmarks), min_turn)
    centres = vertebra_centres(landmarks)
    lines = endplate_lines(landmarks)
    # apex candidates: vertebra centres and disc centres (between one vertebra's inferior and the next's superior)
    disc_centres = (lines[1:-1:2].mean(axis=1) + lines[2::2].mean(axis=1)) / 2
    points = np.empty((2 * N_VERTEBRAE - 1, 2))
    points[0::2] = centres
    points[1::2] = disc_centres
    curves = []
    for va, vb in itertools.pairwise(ends):
        rising = tilts[2 * vb: 2 * vb + 2].mean() > tilts[2 * va: 2 * va + 2].mean()
        up = [2 * va, 2 * va + 1]
        low = [2 * vb, 2 * vb + 1]
        a = min(up, key=lambda e: tilts[e]) if rising else max(up, key=lambda e: tilts[e])
        b = max(low, key=lambda e: tilts[e]) if rising else min(low, key=lambda e: tilts[e])
        angle = float(abs(tilts[b] - tilts[a]))
        if angle < min_turn:
            continue
        p0, p1 = centres[va], centres[vb]
        cand = points[2 * va: 2 * vb + 1]
        if p1[1] != p0[1]:
            chord_x = p0[0] + (cand[:, 1] - p0[1]) * (p1[0] - p0[0]) / (p1[1] - p0[1])
        else:
            chord_x = np.full(len(cand), (p0[0] + p1[0]) / 2)
        offset = cand[:, 0] - chord_x           # lateral deviation from the line joining the end vertebrae
        k = int(np.argmax(np.abs(offset)))
        curves.append(Curve(angle, int(a), int(b), (2 * va + k) / 2,
                            "image right" if offset[k] > 0 else "image left"))
    return curves


def regional_cobb(landmarks, min_turn: float = 5.0) -> dict[str, Curve | None]:
    """The largest curve in each Lenke region (None when the region has no curve)."""
    out: dict[str, Curve | None] = {r: None for r in REGIONS}
    for c in find_curves(landmarks, min_turn):
        if out[c.region] is None or c.angle > out[c.region].angle:
            out[c.region] = c
    return out


# --- AASCE challenge definition ---------------------------------------------------------------------------

def _angle_matrix(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cos = (u @ v.T) / (np.linalg.norm(u, axis=1)[:, None] * np.linalg.norm(v, axis=1)[None, :])
    return np.arccos(np.clip(np.round(cos, 8), -1.0, 1.0))


def _is_s_shaped(mid: np.ndarray) -> bool:
    """The challenge's test: do the endplate midpoints leave the line from the first to the last on both sides?"""
    first, last = mid[0], mid[-1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ll = (mid[:-2, 1] - last[1]) / (first[1] - last[1]) - (mid[:-2, 0] - last[0]) / (first[0] - last[0])
        prod = np.outer(ll, ll)
        # exact comparison and NaN counting as S-shaped, as the challenge's reference code did
        return bool(prod.sum() != np.abs(prod).sum())


def aasce_angles(landmarks, image_height: float) -> np.ndarray:
    """The three angles of the AASCE challenge (degrees) from landmarks in pixels of an image ``image_height`` tall.

    Pixels, not normalised coordinates: the angles between vertebra lines depend on the image's aspect ratio."""
    pts = _points(landmarks)
    n = N_VERTEBRAE
    endplate_mid = (pts[0::2] + pts[1::2]) / 2                    # (34, 2)
    left_mid = (pts[0::4] + pts[2::4]) / 2
    right_mid = (pts[1::4] + pts[3::4]) / 2
    vec = right_mid - left_mid                                    # (17, 2) one line per vertebra
    ang = _angle_matrix(vec, vec)
    pos1 = ang.argmax(axis=0)
    maxt = ang.max(axis=0)
    pos2 = int(maxt.argmax())
    other = int(pos1[pos2])
    pt = maxt[pos2]
    if not _is_s_shaped(endplate_mid):
        mt = ang[0, pos2]
        tl = ang[n - 1, other]
    elif endplate_mid[2 * pos2 + 1, 1] + endplate_mid[2 * other + 1, 1] < image_height:
        mt = ang[pos2, : pos2 + 1].max()
        tl = ang[other, other:].max()
    else:
        row = ang[pos2, : pos2 + 1]
        mt = row.max()
        k = int(row.argmax())
        tl = ang[k, : k + 1].max()
    return np.degrees([pt, mt, tl])
