"""Refining detected body centres on the image itself, at full resolution: the centre of each body's outline in
its mid-sagittal plane (:mod:`core.spine.measure.outline`), between its own endplates and walls.

The column trace puts a vertebra somewhere inside its body (near the canal on MR, pulled towards whatever bone is
fused to it on CT); the outline finds the body's anterior and posterior walls and, when both are in view, its
endplates. The centre moves to the middle of them, within limits (20 mm in front-back, 40 % of the pitch along the
spine); an outline that fails or looks implausible (a depth outside 0.4-1.3 pitches: a body is about as deep as the
pitch) leaves the centre where it was. The sacrum (S1) is left alone.
"""
from __future__ import annotations

import numpy as np

from core.spine.labelling import SpineLabelling
from core.spine.measure.outline import Frame, OutlineError, Sampler, outline
from core.studies.volume import Volume

MAX_AP_SHIFT_MM = 20.0
MAX_AXIAL_SHIFT_OF_PITCH = 0.4
DEFAULT_PITCH_MM = 30.0  # window half-height when the vertebra has no neighbour


def _axis(pts: list[np.ndarray], i: int) -> np.ndarray | None:
    up = pts[i - 1] if i > 0 else pts[i]
    down = pts[i + 1] if i + 1 < len(pts) else pts[i]
    d = up - down
    n = np.linalg.norm(d)
    return d / n if n > 1e-6 else None


def refine_centres(volume: Volume, labelling: SpineLabelling, mode: str, min_contrast: float = 0.0) -> int:
    """Move the vertebrae of ``labelling`` (in place) to their outline centres; returns how many moved."""
    verts = labelling.vertebrae
    if not verts:
        return 0
    pts = [np.asarray(v.centroid, dtype=float) for v in verts]
    sampler = Sampler(volume)
    moved = 0
    new = list(pts)
    for i, v in enumerate(verts):
        if v.name == "S1":
            continue
        axis = _axis(pts, i) if len(pts) > 1 else None
        if axis is None:  # a single vertebra: the normal of the nearest disc, else the patient's long axis
            near = min(labelling.discs, key=lambda d: np.linalg.norm(np.subtract(d.centre, pts[i])), default=None)
            axis = np.asarray(near.normal if near is not None else (0.0, 0.0, 1.0))
        try:
            frame = Frame.make(pts[i], axis)
            ups = [frame.uv(pts[j])[1] for j in (i - 1,) if j >= 0]
            downs = [frame.uv(pts[j])[1] for j in (i + 1,) if j < len(pts)]
            pitch = float(np.mean([abs(x) for x in ups + downs])) if ups + downs else DEFAULT_PITCH_MM
            if pitch < 8.0:
                continue
            hi = 0.85 * (ups[0] if ups and ups[0] > 3.0 else pitch)
            lo = 0.85 * (downs[0] if downs and downs[0] < -3.0 else -pitch)
            o = outline(sampler, frame, lo, hi, mode, min_contrast)
        except (OutlineError, ValueError):
            continue
        if not (8.0 <= o.depth <= 70.0 and 0.4 * pitch <= o.depth <= 1.3 * pitch):
            continue  # not a body's depth for this pitch: the outline leaked into the tissue around it
        du = (o.u_ant + o.u_post) / 2.0
        band = o.band(0.5, half=0.15)
        dv = (band.top + band.bottom) / 2.0 if band is not None and not v.partial else 0.0
        if band is not None and not (0.3 * pitch <= band.height <= 1.1 * pitch):
            dv = 0.0
        if abs(du) > MAX_AP_SHIFT_MM or abs(dv) > MAX_AXIAL_SHIFT_OF_PITCH * pitch:
            continue
        new[i] = frame.point(du, dv)
        moved += 1
    for v, p in zip(verts, new):
        v.centroid = (float(p[0]), float(p[1]), float(p[2]))
    return moved
