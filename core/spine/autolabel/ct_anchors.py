"""Anatomical anchors on CT that fix the names of detected vertebrae.

- Sacrum: below the lowest disc the column goes on, without a disc, for much longer than one vertebra, and the bone
  there reaches out to the iliac bones (sacral alae, sacroiliac joints) on both sides. Named S1. When the column
  stops soon below its lowest disc (a low-contrast sacrum on thick slices, or a field of view ending there), the
  segment below that disc is S1 if its bone joins large bones on both sides and the vertebra above is free of them.
- Skull: the column ends under one wide piece of bone (skull base); the vertebra under it, above the highest disc, is
  C2 (its dens reaches up inside the C1 ring). Named C2.
- Last rib: ribs are found as thin, long bones whose inner end comes close to the column; the lowest vertebra a rib
  reaches is T12, provided at least one vertebra below it is in view without ribs.
- First rib: the highest vertebra a rib reaches is T1, provided a vertebra above it (C7) is in view without ribs.

Each returns an :class:`~core.spine.autolabel.naming.Anchor` or None, with the evidence in words.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from core.spine.autolabel.ct_column import Detection
from core.spine.autolabel.naming import Anchor

# the largest ribs hold ~30 cm3 of bone above 200 HU; an iliac wing (thin too, and near the column at the
# sacroiliac joint) holds twice that or more
MAX_RIB_MM3 = 45_000.0
# in an axial slice through the sacral alae an iliac wing shows well over 1000 mm2 of bone; a rib crossing the slice
# obliquely, a few hundred
ILIUM_AREA_MM2 = 800.0
# a rib slopes down as it goes out, so its part beyond the body spans 20 mm or more from top to bottom (21-74 mm on
# the real chest CT); a lumbar transverse process, as long and thin, lies flat (about 10 mm)
MIN_RIB_DROP_MM = 15.0


def _point(det: Detection, s: float) -> np.ndarray:
    c = det.column
    return c.points[int(np.clip(round(s / c.ds), 0, len(c.points) - 1))]


def _pitch(det: Detection) -> float | None:
    full = [b - a for a, b, partial in det.segments if not partial]
    if full:
        return float(np.median(full))
    return float(np.median(np.diff(det.disc_s))) if len(det.disc_s) >= 2 else None


def sacrum(det: Detection, solid: np.ndarray, step: float) -> Anchor | None:
    if not det.disc_s or not det.segments:
        return None
    start, end, _ = det.segments[-1]
    if abs(start - det.disc_s[-1]) > 1e-6:
        return None
    pitch = _pitch(det) or 30.0
    if end - start < max(45.0, 1.5 * pitch):
        return _first_sacral(det, solid, step)
    sacral = total = 0
    for s in np.arange(start + 6.0, min(end, start + 36.0), 4.0):
        i, j, k = np.round(_point(det, s)).astype(int)
        if not (0 <= k < solid.shape[2]):
            continue
        total += 1
        sacral += _reaches_ilium(solid[:, :, k], i, j, step)
    if total == 0 or sacral / total < 0.5:
        return None
    conf = 0.75 + 0.2 * (sacral / total)
    return Anchor(len(det.segments) - 1, "S1", conf,
                  "sacrum (no disc below the lowest one for "
                  f"{end - start:.0f} mm, bone reaching the iliac bones on both sides)")


def _ilium_fraction(det: Detection, solid: np.ndarray, step: float, a: float, b: float, min_area_mm2: float
                    ) -> tuple[float, int]:
    """Fraction of the column's slices from ``a`` to ``b`` (mm along it, every 3 mm) whose bone reaches the iliac
    bones on both sides, and how many slices that is."""
    hits = total = 0
    for s in np.arange(a, b + 1e-6, 3.0):
        i, j, k = np.round(_point(det, s)).astype(int)
        if 0 <= k < solid.shape[2]:
            total += 1
            hits += _reaches_ilium(solid[:, :, k], i, j, step, min_area_mm2)
    return (hits / total if total else 0.0), total


def _first_sacral(det: Detection, solid: np.ndarray, step: float) -> Anchor | None:
    """S1 when the column ends (a low-contrast sacrum on thick slices is not traced further) just below its lowest
    disc, in bone joined to large bones on both sides (the sacral alae at the sacroiliac joints), while the vertebra
    above the disc is free of them. With a sacralised L5 (a transitional vertebra) the vertebra above is joined too:
    no anchor then, the user names a level."""
    if len(det.segments) < 2:
        return None
    start, end, _ = det.segments[-1]
    below, n_below = _ilium_fraction(det, solid, step, start + 3.0, end, ILIUM_AREA_MM2)
    if n_below < 3 or below < 0.5:
        return None
    a, b, _ = det.segments[-2]
    above, _ = _ilium_fraction(det, solid, step, a, b, ILIUM_AREA_MM2)
    if above >= 0.25:
        return None
    return Anchor(len(det.segments) - 1, "S1", 0.7,
                  f"first sacral vertebra (below the lowest disc the bone joins the iliac bones on both sides in "
                  f"{below:.0%} of its slices, the vertebra above in {above:.0%})")


def _reaches_ilium(sl: np.ndarray, ci: int, cj: int, step: float, min_area_mm2: float = 300.0) -> bool:
    """Whether the bone around (ci, cj) is wide (alae) or nearly touches large bones on both sides (SI joints)."""
    labels, n = ndimage.label(sl)
    if n == 0:
        return False
    lab = labels[np.clip(ci, 0, sl.shape[0] - 1), np.clip(cj, 0, sl.shape[1] - 1)]
    if lab == 0:
        return False
    comp = labels == lab
    ii = np.nonzero(comp.any(axis=1))[0]
    if (ci - ii.min()) * step >= 45.0 and (ii.max() - ci) * step >= 45.0:
        return True
    near = ndimage.binary_dilation(comp, iterations=max(1, round(6.0 / step)))
    sides = set()
    for other in np.unique(labels[near & ~comp & (labels > 0)]):
        part = labels == other
        if part.sum() * step**2 < min_area_mm2:
            continue
        sides.add("left" if np.nonzero(part)[0].mean() > ci else "right")
    return len(sides) == 2


def skull(det: Detection, solid: np.ndarray, step: float) -> Anchor | None:
    if not det.disc_s or not det.segments:
        return None
    start, end, _ = det.segments[0]
    if end - start < 22.0:
        return None
    top = det.column.points[0]
    k_top = round(top[2])
    ci = round(top[0])
    ks = range(k_top + int(10 / step), min(solid.shape[2], k_top + int(40 / step) + 1))
    wide = 0
    for k in ks:
        if _one_piece_across(solid[:, :, k], ci, step):
            wide += 1
    if not len(ks) or wide < 0.5 * len(ks):
        return None
    return Anchor(0, "C2", 0.75, "skull base above the column (the vertebra under it, above the highest disc, is C2)")


def _one_piece_across(sl: np.ndarray, ci: int, step: float) -> bool:
    """Whether one piece of bone of at least 2000 mm2 reaches 45 mm to both sides of the column (row ``ci``): the
    skull base is one bony ring around the foramen magnum, joined to both temporal bones. The two shoulders (or the
    two hip bones) above a column whose trace stopped early are as wide together, but are two pieces."""
    labels, n = ndimage.label(sl)
    if n == 0:
        return False
    for box, lab in zip(ndimage.find_objects(labels), range(1, n + 1)):
        rows = box[0]
        if (ci - rows.start) * step > 45.0 and (rows.stop - 1 - ci) * step > 45.0 \
                and (labels[box] == lab).sum() * step**2 > 2000.0:
            return True
    return False


def _rib_heads(det: Detection, bone: np.ndarray, step: float) -> list[float]:
    """Where ribs come closest to the column (mm along it): thin, long bones (not an iliac wing) whose inner end
    lies beside or just behind the body, where the costovertebral joints are."""
    col = det.column
    k0, k1 = col.k_range
    pad = round(20.0 / step)
    ka, kb = max(0, k0 - pad), min(bone.shape[2], k1 + pad + 1)
    work = bone[:, :, ka:kb].copy()
    # centre of the column in each slice (grid k -> i, j)
    kk = np.arange(ka, kb)
    order = np.argsort(col.points[:, 2])
    ci = np.interp(kk, col.points[order, 2], col.points[order, 0])
    cj = np.interp(kk, col.points[order, 2], col.points[order, 1])
    ii, jj = np.meshgrid(np.arange(bone.shape[0]), np.arange(bone.shape[1]), indexing="ij")
    for n in range(work.shape[2]):
        di, dj = (ii - ci[n]) * step, (jj - cj[n]) * step
        work[:, :, n] &= ~((np.hypot(di, dj) < 32.0) | ((np.abs(di) < 25.0) & (dj > 0) & (dj < 90.0)))
        work[:, :, n] &= (np.abs(di) < 160.0)
    labels, n = ndimage.label(work)
    if n == 0:
        return []
    objs = ndimage.find_objects(labels)
    rib_s = []
    for lab, box in enumerate(objs, start=1):
        if box is None:
            continue
        comp = labels[box] == lab
        size_mm3 = comp.sum() * step**3
        extent = max((sl.stop - sl.start) for sl in box[:2]) * step
        drop = (box[2].stop - box[2].start) * step
        if size_mm3 < 300.0 or size_mm3 > MAX_RIB_MM3 or extent < 40.0 or drop < MIN_RIB_DROP_MM:
            continue
        if ndimage.distance_transform_edt(np.pad(comp, 1)).max() * step > 8.0:  # too thick for a rib
            continue
        pi, pj, pk = np.nonzero(comp)
        pi, pj, pk = pi + box[0].start, pj + box[1].start, pk + box[2].start
        d = np.hypot((pi - ci[pk]) * step, (pj - cj[pk]) * step)
        m = int(np.argmin(d))
        dy = (pj[m] - cj[pk[m]]) * step
        if d[m] > 45.0 or not (-15.0 < dy < 40.0):
            continue
        head = np.array([pi[m], pj[m], pk[m] + ka], dtype=float)
        rib_s.append(float(np.argmin(np.abs(col.points[:, 2] - head[2]))) * col.ds)
    return rib_s


def rib_bearing(det: Detection, bone: np.ndarray, step: float) -> list[int]:
    """Indices of the detected vertebrae a rib reaches (a head within the segment or up to 4 mm above it)."""
    bearing = set()
    for s in _rib_heads(det, bone, step):
        for n_seg, (a, b, _) in enumerate(det.segments):
            if a - 4.0 <= s <= b:
                bearing.add(n_seg)
                break
    return sorted(bearing)


def last_rib(det: Detection, bearing: list[int]) -> Anchor | None:
    """T12 from rib heads: the lowest detected vertebra a rib reaches (``bearing``: :func:`rib_bearing`), if
    vertebrae without ribs follow."""
    if len(det.segments) < 2 or not bearing:
        return None
    last = bearing[-1]
    below = det.segments[last + 1:]
    if not below or sum(b - a for a, b, _ in below) < 15.0:
        return None  # nothing (or only a sliver) below the last rib: T12 cannot be told from T11
    return Anchor(last, "T12", 0.7, "last rib-bearing vertebra (ribs reach it; none below)")


def first_rib(det: Detection, bearing: list[int]) -> Anchor | None:
    """T1 from rib heads: the highest detected vertebra a rib reaches (``bearing``: :func:`rib_bearing`), if a
    vertebra without ribs is in view above it (C7; a cervical rib on C7, in under 1 % of people, would shift the
    names by one: the confidence says so)."""
    if len(det.segments) < 2 or not bearing:
        return None
    first = bearing[0]
    above = det.segments[:first]
    if not above or sum(b - a for a, b, _ in above) < 15.0:
        return None  # nothing (or only a sliver) above the first rib: T1 cannot be told from T2
    return Anchor(first, "T1", 0.65, "first rib-bearing vertebra (the first ribs reach it; none above)")
