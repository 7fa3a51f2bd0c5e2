"""Finding the vertebral column in a CT grid and its vertebral bodies and discs along it (no naming here).

Works on an isotropic HU grid (axes towards L, P, S; see :mod:`grid`):

1. A body score per voxel: local mean density over ~10 mm in the axial plane (thick bone, not thin cortex), made
   much higher where a spinal canal lies just behind (posterior) - a low-density hole enclosed by bone in the axial
   slice (or, on thick slices, in a slab of a few mm), unpaired (no bone at its mirror image across the trunk's
   midline). This keeps the column apart from the sternum, ribs, pelvis and femurs.
2. The column is the best slice-to-slice path through the score (dynamic programming, at most one voxel of
   movement per slice), trimmed to the stretch where bodies and canal are present.
3. The body centre is refined in each slice (the bone blob in front of the canal), then smoothed.
4. Density is sampled on small disks perpendicular to that centreline: discs are less dense gaps between two bright
   endplates (this holds in osteoporotic bone) and dips of the solid-bone fraction between the bodies, chained
   along the column with a pitch that may change from level to level (:mod:`ct_discs`).
   Vertebrae are the segments between consecutive discs; a segment cut by the end of the column is "partial".
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, signal

from core.spine.autolabel.ct_discs import ct_discs
from core.tasks import CancelToken, ProgressFn, check, report

BONE_HU = 150.0  # cortex of the body and the walls of the canal (on block maxima, so thin cortex counts)
CLOSE_GAPS_MM = 3.0
CANAL_AREA_MM2 = (50.0, 600.0)  # a stenotic canal is ~70 mm2; foramina transversaria are smaller
FILL_MAX_MM2 = 2500.0  # soft interior of the largest vertebral body; the pelvic ring encloses far more
# A hole with another canal-like hole 8-45 mm straight behind it is a body's interior, not the canal: "straight" is
# within half the width of the widest bodies, 25 mm left-right (a soft interior may lie anywhere in its body), and the
# hole behind may be up to 10 mm higher or lower (the canal is a tube; it is enclosed by bone only at the pedicles).
BEHIND_SIDE_MM = 25.0
BEHIND_ALONG_MM = 10.0
# a hole over 25 mm off the trunk's midline with bone within 10 mm of its mirror image is in a paired bone
PAIR_OFF_MIDLINE_MM = 25.0
PAIR_MIRROR_MM = 10.0
MIN_TRUNK_MM = 120.0  # narrower "trunks" are pieces of a cropped image (the neck is wider than this)
# the body's centre is sought straight in front of the canal, which may lie this far to the side of the traced path
CANAL_SIDE_MM = 20.0
BODY_SEED_MM = 8.0  # ... starting this far in front of the canal's front wall
SYMMETRY_SLACK = 1.15  # how much wider than its other half one half of a body may be (rotation, asymmetry)
SLAB_HALF_MM = 4.0  # canal search where a slice has none: bone of the slices within this distance counts
FILL_HALF_MM = 1.0  # marrow enclosed by the bone of the slices this close (at least the next ones) is filled:
# more would bridge a thoracic disc (4-6 mm). Only marrow whose own slice's bone surrounds most of it (a shell
# with a gap, not a disc between two rims) is filled.
SHELL_CLOSED = 0.3


@dataclass
class Column:
    """The traced column: body-centre curve in grid coordinates, sampled every ``ds`` mm along its length."""

    points: np.ndarray  # (n, 3) grid coords (i, j, k), cranial first
    tangents: np.ndarray  # (n, 3) unit, pointing cranially
    ds: float  # mm between samples
    profile: np.ndarray  # (n,) mean HU on a disk around each point
    k_range: tuple[int, int]  # grid slices the column spans (bottom, top)


@dataclass
class Detection:
    column: Column
    disc_s: list[float]  # positions of discs (mm along the column from its cranial end)
    segments: list[tuple[float, float, bool]]  # vertebral segments (start, end, partial), cranial first
    disc_depth: list[float] = field(default_factory=list)  # how clear each disc is (0..1)
    notes: list[str] = field(default_factory=list)
    # height of each disc (mm, between its endplates; absent: unknown): the bodies end half of it from its centre
    disc_height: list[float] = field(default_factory=list)
    bodies: list[tuple[float, float]] = field(default_factory=list)  # each segment's body (absent: the segment)


def _slice_masks(g: np.ndarray, peak: np.ndarray, step: float, mids: np.ndarray, cancel: CancelToken | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per axial slice: (canal, solid). The canal is a low-density hole of canal size enclosed by bone with no
    similar hole straight behind it (that would make it a body's soft interior and the one behind the canal) and, off
    the trunk's midline, no bone at its mirror image (that would make it a hole in a paired bone: a hip bone). The
    canal is a tube along the spine, so the hole behind may be in a nearby slice: at the level of the foramina the
    canal is open and only the body's interior is enclosed; density cannot tell them apart (fatty or osteoporotic
    marrow is as low as the canal's contents), position can.
    The bony ring around the canal (body, pedicles, laminae) is complete over a few mm of each vertebra only, and its
    parts lie at different heights: with thick slices no single slice may show it closed. Where a slice has no canal
    of its own, the canal is looked for in the bone of a slab ``SLAB_HALF_MM`` thick on either side.
    ``solid`` is bone with its other enclosed holes filled: an osteoporotic body, whose interior is barely denser
    than muscle, still shows as a solid blob inside its cortical shell, while a disc does not. A body's shell is
    open where its vein leaves it (mid-height, at the back): marrow enclosed by the bone of the slices just above
    and below (``FILL_HALF_MM``) is filled too, so that gap does not look like a disc."""
    canal = np.zeros(g.shape, dtype=bool)
    solid = peak > BONE_HU
    close = max(1, round(CLOSE_GAPS_MM / step))
    for k in np.nonzero(solid.any(axis=(0, 1)))[0]:
        if k % 16 == 0:
            check(cancel)
        # thin or osteoporotic cortex breaks up at this resolution: close small gaps so shells stay closed
        solid[:, :, k] = ndimage.binary_closing(np.pad(solid[:, :, k], close),
                                                iterations=close)[close:-close, close:-close]
    slab = ndimage.maximum_filter1d(solid, size=2 * round(SLAB_HALF_MM / step) + 1, axis=2)
    thin = ndimage.maximum_filter1d(solid, size=2 * max(1, round(FILL_HALF_MM / step)) + 1, axis=2)
    own, own_found = _hole_candidates(g, solid, step, cancel)
    wide, wide_found = _hole_candidates(g, slab, step, cancel)
    fill_max = FILL_MAX_MM2 / step**2
    for k in range(g.shape[2]):
        if k % 16 == 0:
            check(cancel)
        sl = solid[:, :, k]
        labels, sizes = own.get(k, (np.zeros(sl.shape, dtype=np.int32), np.zeros(0)))
        small = np.isin(labels, 1 + np.nonzero(sizes <= fill_max)[0])
        best_mask = np.zeros(sl.shape, dtype=bool)
        for found, holes in ((own_found, own), (wide_found, wide)):
            if k not in found:
                continue
            cand, centres = _canal_candidates(k, found, slab, mids, step)
            hole_labels = holes[k][0]
            filled = sl | (small & ~np.isin(hole_labels, cand))
            best = _best_canal(filled, hole_labels, cand, centres if cand.size else None, step)
            if best:
                best_mask = (hole_labels == best) & ~sl
                break
        canal[:, :, k] = best_mask
        inside_canal = np.isin(labels, np.unique(labels[best_mask]))
        mlab, msizes = _slice_holes(thin[:, :, k])
        keep = [lab for lab, size in enumerate(msizes, start=1)
                if size <= fill_max and _rim_in_bone(mlab == lab, sl) >= SHELL_CLOSED]
        marrow = np.isin(mlab, keep) & ~np.isin(mlab, np.unique(mlab[best_mask]))
        sl[:] = sl | (small & ~inside_canal) | (marrow & ~best_mask)
    return canal, solid


def _rim_in_bone(region: np.ndarray, bone: np.ndarray) -> float:
    """Fraction of the pixels just around ``region`` that are bone."""
    rim = ndimage.binary_dilation(region) & ~region
    return float(bone[rim].mean()) if rim.any() else 0.0


def _hole_candidates(g: np.ndarray, bone: np.ndarray, step: float, cancel: CancelToken | None
                     ) -> tuple[dict, dict]:
    """Per slice, the holes enclosed by ``bone`` ({k: (labels, sizes)}) and the canal-sized, low-density ones among
    them ({k: (candidate labels, their centres)})."""
    lo, hi = (a / step**2 for a in CANAL_AREA_MM2)
    holes_by_k, found = {}, {}
    for k in np.nonzero(bone.any(axis=(0, 1)))[0]:
        if k % 16 == 0:
            check(cancel)
        labels, sizes = _slice_holes(bone[:, :, k])
        if not sizes.size:
            continue
        holes_by_k[int(k)] = (labels, sizes)
        idx = np.arange(1, sizes.size + 1)
        means = ndimage.mean(g[:, :, k], labels, idx)
        cand = idx[(sizes >= lo) & (sizes <= hi) & (means < 150.0)]
        if cand.size:
            found[int(k)] = (cand, np.array(ndimage.center_of_mass(labels > 0, labels, cand)).reshape(-1, 2))
    return holes_by_k, found


def _slice_holes(bone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The holes enclosed by ``bone`` in one slice: labels (1..n) and sizes in pixels."""
    labels, n = ndimage.label(ndimage.binary_fill_holes(bone) & ~bone)
    return labels, ndimage.sum_labels(np.ones_like(labels), labels, np.arange(1, n + 1))


def _canal_candidates(k: int, found: dict, slab: np.ndarray, mids: np.ndarray, step: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Slice k's candidates without those with a candidate straight behind them (a body's interior) or, off the
    trunk's midline, with bone at their mirror image (a hole in a paired bone)."""
    cand, centres = found[k]
    reach = round(BEHIND_ALONG_MM / step)
    near = [c for kk, (_, c) in found.items() if abs(kk - k) <= reach]
    other = np.concatenate(near) if near else np.zeros((0, 2))
    dx = np.abs(centres[:, 0][:, None] - other[:, 0][None, :]) * step
    dy = (other[:, 1][None, :] - centres[:, 1][:, None]) * step  # [a, b]: b behind a when > 0
    keep = ~((dx < BEHIND_SIDE_MM) & (dy > 8.0) & (dy < 45.0)).any(axis=1)
    if np.isfinite(mids[k]):
        r = round(PAIR_MIRROR_MM / step)
        for n, (ci, cj) in enumerate(centres):
            if keep[n] and abs(ci - mids[k]) * step > PAIR_OFF_MIDLINE_MM:
                mi, mj = round(2.0 * mids[k] - ci), round(cj)
                keep[n] = not slab[max(0, mi - r): mi + r + 1, max(0, mj - r): mj + r + 1, k].any()
    return cand[keep], centres[keep]


def _best_canal(filled: np.ndarray, labels: np.ndarray, cand: np.ndarray, centres: np.ndarray | None,
                step: float) -> int:
    """The candidate hole with a thick solid body straight in front of it (0 when none has): the spinal canal."""
    if centres is None or not len(cand):
        return 0
    half, near, far = round(5.0 / step), round(4.0 / step), round(20.0 / step)
    best, best_frac = 0, 0.5
    for lab, (ci, cj) in zip(cand, centres):
        ci, cj = round(ci), round(cj)
        front = np.nonzero((labels == lab).any(axis=0))[0].min()
        box = filled[max(0, ci - half): ci + half + 1, max(0, front - far): max(0, front - near)]
        frac = float(box.mean()) if box.size else 0.0
        if frac > best_frac:
            best, best_frac = int(lab), frac
    return best


def _trunk_midlines(g: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Per slice, the trunk's left-right midline and width in grid voxels (NaN where the trunk is cut by the field
    of view or absent: then there is no reliable midline)."""
    mids = np.full(g.shape[2], np.nan)
    widths = np.full(g.shape[2], np.nan)
    tissue = g > -400.0
    labels, n = ndimage.label(ndimage.binary_opening(tissue, iterations=2))
    if n == 0:
        return mids, widths
    trunk = labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    i = np.arange(g.shape[0], dtype=float)
    for k in range(g.shape[2]):
        cols = trunk[:, :, k].any(axis=1)
        if cols.sum() < 3:
            continue
        xs = i[cols]
        if xs[0] == 0 or xs[-1] == g.shape[0] - 1 or (xs[-1] - xs[0] + 1) * step < MIN_TRUNK_MM:
            continue
        mids[k], widths[k] = xs.mean(), xs[-1] - xs[0] + 1
    return mids, widths


def _filled_midlines(mids: np.ndarray) -> np.ndarray:
    """Midlines of slices where the trunk is cut by the field of view, interpolated from slices where it is not
    (the trunk's midline moves little from slice to slice); all NaN when no slice shows the whole trunk."""
    known = np.nonzero(np.isfinite(mids))[0]
    if known.size == 0:
        return mids
    return np.interp(np.arange(len(mids)), known, mids[known])


def _trunk_weight(mids: np.ndarray, widths: np.ndarray, nx: int) -> np.ndarray:
    """Per slice, a weight falling off with left-right distance from the trunk's midline (arms, table: low)."""
    out = np.ones((nx, len(mids)), dtype=np.float32)
    i = np.arange(nx, dtype=float)
    for k in np.nonzero(np.isfinite(mids))[0]:
        out[:, k] = np.clip(1.0 - ((i - mids[k]) / (0.35 * widths[k])) ** 2, 0.2, 1.0)
    return out


def body_score(g: np.ndarray, peak: np.ndarray, step: float, cancel: CancelToken | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score 0..1 of being a vertebral body with a canal behind it, canal map, solid-bone map)."""
    w = max(3, round(10.0 / step) | 1)
    mids, widths = _trunk_midlines(g, step)
    canal, solid = _slice_masks(g, peak, step, _filled_midlines(mids), cancel)
    # fraction of solid bone in a ~10 mm square: high only inside a body, not in thin cortex or around a canal
    frac = ndimage.uniform_filter(solid.astype(np.float32), size=(w, w, 1))
    body = np.clip((frac - 0.3) / 0.5, 0.0, 1.0)
    check(cancel)
    # the canal lies straight behind the body: its midline within a few mm left-right of it (not the pedicles)
    midline = np.zeros_like(canal)
    for k in np.nonzero(canal.any(axis=(0, 1)))[0]:
        ii, jj = np.nonzero(canal[:, :, k])
        midline[round(ii.mean()), jj.min(): jj.max() + 1, k] = True
    near = ndimage.maximum_filter(midline, size=(2 * round(4.0 / step) + 1, 1, 2 * round(12.0 / step) + 1))
    behind = np.zeros_like(near)
    for d in range(max(1, round(3.0 / step)), round(40.0 / step) + 1):
        behind[:, : -d or None, :] |= near[:, d:, :]
    check(cancel)
    trunk = _trunk_weight(mids, widths, g.shape[0])
    return body * (0.15 + 0.85 * behind) * trunk[:, None, :], canal, solid


def trace(score: np.ndarray, penalty: float = 0.02) -> np.ndarray:
    """Best path (i, j) per slice k through ``score``, moving at most one voxel per slice: (nz, 2) int."""
    nx, ny, nz = score.shape
    value = score[:, :, 0].astype(np.float32)
    moves = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)]
    back = np.zeros((nz, nx, ny), dtype=np.int8)
    for k in range(1, nz):
        padded = np.pad(value, 1, constant_values=-np.inf)
        cands = np.stack([padded[1 + di: 1 + di + nx, 1 + dj: 1 + dj + ny] - penalty * (di * di + dj * dj)
                          for di, dj in moves])
        best = np.argmax(cands, axis=0)
        back[k] = best
        value = score[:, :, k] + np.take_along_axis(cands, best[None], 0)[0]
    path = np.zeros((nz, 2), dtype=int)
    i, j = np.unravel_index(int(np.argmax(value)), value.shape)
    for k in range(nz - 1, -1, -1):
        path[k] = (i, j)
        di, dj = moves[back[k, i, j]]
        i, j = i + di, j + dj
    return path


def _extent(values: np.ndarray, min_len: int, gap: int) -> tuple[int, int] | None:
    """Longest run of True, bridging gaps up to ``gap`` slices; None if shorter than ``min_len``."""
    closed = ndimage.binary_closing(np.pad(values, gap), structure=np.ones(2 * gap + 1))[gap:-gap or None]
    labels, n = ndimage.label(closed)
    if n == 0:
        return None
    sizes = np.bincount(labels)[1:]
    best = 1 + int(np.argmax(sizes))
    ks = np.nonzero(labels == best)[0]
    return (int(ks[0]), int(ks[-1])) if len(ks) >= min_len else None


def _canal_fronts(canal, path, k0, k1, step) -> tuple[np.ndarray, np.ndarray]:
    """Per slice k0..k1, the grid j of the canal's front wall behind the path and the grid i of the canal's middle
    (NaN where the canal is not enclosed there and no slice within 15 mm has it: the canal is continuous, so both
    are interpolated between slices). The canal is looked for up to CANAL_SIDE_MM to either side of the path: the
    path may run on something lying against the body (an enhanced aorta), the canal is behind the body itself."""
    fronts = np.full(k1 - k0 + 1, np.nan)
    middles = np.full(k1 - k0 + 1, np.nan)
    reach, side = round(45.0 / step), round(CANAL_SIDE_MM / step)
    for n, k in enumerate(range(k0, k1 + 1)):
        pi, pj = path[k]
        i0 = max(0, pi - side)
        behind = canal[i0: pi + side + 1, pj: pj + reach + 1, k]
        if behind.any():
            fronts[n] = pj + int(np.nonzero(behind.any(axis=0))[0].min())
            middles[n] = i0 + float(np.nonzero(behind)[0].mean())
    known = np.nonzero(np.isfinite(fronts))[0]
    if known.size == 0:
        return fronts, middles
    idx = np.arange(len(fronts))
    gap = np.min(np.abs(idx[:, None] - known[None, :]), axis=1) * step
    near = gap <= 15.0
    return (np.where(near, np.interp(idx, known, fronts[known]), np.nan),
            np.where(near, np.interp(idx, known, middles[known]), np.nan))


def _refine_centres(solid, canal, path, k0, k1, step) -> np.ndarray:
    """Centre of the bone blob in front of the canal near the path in each slice (NaN where there is none)."""
    radius = round(35.0 / step)
    opening = max(1, round(5.0 / step))  # detaches a contrast-filled aorta or rib heads touching the body
    out = np.full((k1 - k0 + 1, 2), np.nan)
    nx, ny = solid.shape[:2]
    fronts, middles = _canal_fronts(canal, path, k0, k1, step)
    for n, k in enumerate(range(k0, k1 + 1)):
        pi, pj = path[k]
        if np.isfinite(middles[n]):  # the body is straight in front of the canal
            pi, pj = round(float(middles[n])), min(pj, round(float(fronts[n]) - BODY_SEED_MM / step))
        i0, i1 = max(0, pi - radius), min(nx, pi + radius + 1)
        j0, j1 = max(0, pj - radius), min(ny, pj + radius + 1)
        bone = solid[i0:i1, j0:j1, k].copy()
        ci, cj = pi - i0, pj - j0
        front = None
        if np.isfinite(fronts[n]):
            front = round(float(fronts[n])) - j0
            bone[:, max(0, front):] = False
        bone = ndimage.binary_opening(np.pad(bone, opening), iterations=opening)[opening:-opening, opening:-opening]
        labels, nlab = ndimage.label(bone)
        if nlab == 0:
            continue
        lab = labels[ci, cj] if 0 <= ci < bone.shape[0] and 0 <= cj < bone.shape[1] else 0
        if lab == 0:
            dist, (ii, jj) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
            if dist[ci, cj] * step > 8.0:
                continue
            lab = labels[ii[ci, cj], jj[ci, cj]]
        blob = _detach(labels == lab, step, front, ci)
        if blob is None:
            continue
        if np.isfinite(middles[n]):
            blob = _symmetric_about(blob, ci, step)
        if front is not None:
            # a body is about as deep as it is wide just in front of the canal; anything deeper in front of it
            # is another structure fused to it here (an aorta with a calcified wall, an osteophyte)
            rows = blob[:, max(0, front - round(10.0 / step)): max(1, front - round(2.0 / step))]
            cols = np.nonzero(rows.any(axis=1))[0]
            if cols.size:
                depth = 0.9 * (cols[-1] - cols[0] + 1)
                blob[:, : max(0, int(front - depth))] = False
        if blob.sum() * step**2 < 40.0:
            continue
        bi, bj = np.nonzero(blob)
        out[n] = (i0 + bi.mean(), j0 + bj.mean())
    return out


def _symmetric_about(blob: np.ndarray, ci: int, step: float) -> np.ndarray:
    """``blob`` cut left and right to the body's half-width on its narrower side of the canal's middle (row ``ci``):
    a body is nearly symmetric about its canal, so bone reaching much further to one side is something lying against
    it (an enhanced aorta fused to it over a broad contact, a rib head, an osteophyte)."""
    rows = np.nonzero(blob.any(axis=1))[0]
    if rows.size == 0 or not rows[0] <= ci <= rows[-1]:
        return blob
    half = SYMMETRY_SLACK * min(ci - rows[0], rows[-1] - ci) + 2.0 / step
    out = blob.copy()
    out[: max(0, int(np.floor(ci - half)))] = False
    out[int(np.ceil(ci + half)) + 1:] = False
    return out


def _detach(blob: np.ndarray, step: float, front: int | None, ci: int) -> np.ndarray | None:
    """The vertebral body out of a bone blob, without what is joined to it through a waist narrower than the body's
    own half-size: a contrast-filled aorta (enhanced blood is as dense as cancellous bone) lying on the body, a bridging
    osteophyte, a rib head. A body is one compact piece of bone, the thickest one in front of the canal: the blob is
    eroded to its cores (points deeper than half the body's inscribed radius, which a narrower waist separates) and
    each point goes to its nearest core. The piece kept is the one lining most of the canal's front wall (the
    body's posterior wall), else the thickest. None when a canal is known and no piece touches it."""
    dt = ndimage.distance_transform_edt(np.pad(blob, 1))[1:-1, 1:-1]
    r = 0.5 * float(dt.max())
    if r * step <= 5.0:  # no thicker than the fixed opening already applied: nothing more to cut
        return blob
    cores, n = ndimage.label(dt >= r)
    if n <= 1:
        return blob
    _, (ii, jj) = ndimage.distance_transform_edt(cores == 0, return_indices=True)
    owner = np.where(blob, cores[ii, jj], 0)
    if front is not None:
        near = owner[max(0, ci - round(8.0 / step)): ci + round(8.0 / step) + 1,
                     max(0, front - round(6.0 / step)): max(0, front)]
        touching = np.unique(near[near > 0])
        if touching.size == 0:
            return None
        # the body's posterior wall lines the canal's front; a vessel or osteophyte reaches it at a corner at most
        along = ndimage.sum_labels(np.ones_like(near), near, touching)
        return owner == touching[int(np.argmax(along))]
    return owner == cores[np.unravel_index(int(np.argmax(dt)), dt.shape)]


def _smooth_curve(pts: np.ndarray, sigma: float) -> np.ndarray:
    good = ~np.isnan(pts[:, 0])
    if good.sum() < 2:
        return np.where(np.isnan(pts), np.nanmean(pts, axis=0) if good.any() else 0.0, pts)
    idx = np.arange(len(pts))
    filled = np.stack([np.interp(idx, idx[good], ndimage.median_filter(pts[good, c], size=5, mode="nearest"))
                       for c in range(pts.shape[1])], axis=1)
    return ndimage.gaussian_filter1d(filled, sigma, axis=0, mode="nearest")


def column_from_curve(g: np.ndarray, ci: np.ndarray, cj: np.ndarray, k0: int, k1: int, step: float,
                      radius_mm: float) -> Column:
    """The body line (grid i, j per slice k0..k1) resampled every 1 mm from its cranial end, with tangents pointing
    cranially and the mean of ``g`` on a disk of ``radius_mm`` across the line at each sample."""
    curve = np.column_stack([ci, cj, np.arange(k0, k1 + 1, dtype=float)])[::-1]  # cranial first
    seg = np.linalg.norm(np.diff(curve, axis=0), axis=1) * step
    s = np.concatenate([[0.0], np.cumsum(seg)])
    ds = 1.0
    s_new = np.arange(0.0, s[-1] + 1e-6, ds)
    pts = np.stack([np.interp(s_new, s, curve[:, c]) for c in range(3)], axis=1)
    tang = np.gradient(ndimage.gaussian_filter1d(pts, 3.0, axis=0, mode="nearest"), axis=0)
    norms = np.linalg.norm(tang, axis=1, keepdims=True)
    tang = np.where(norms > 1e-9, -tang / np.maximum(norms, 1e-9), np.array([[0, 0, 1.0]]))
    profile = disk_profile(g, pts, tang, radius_vox=radius_mm / step)
    return Column(pts, tang, ds, profile, (k0, k1))


def disk_profile(g: np.ndarray, pts: np.ndarray, tangents: np.ndarray, radius_vox: float) -> np.ndarray:
    """Mean value of ``g`` on a disk of ``radius_vox`` perpendicular to each tangent, centred at each point."""
    ref = np.where(np.abs(tangents[:, [0]]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    e1 = np.cross(tangents, ref)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(tangents, e1)
    r = np.arange(-radius_vox, radius_vox + 1e-6, 0.5)
    uu, vv = np.meshgrid(r, r)
    keep = uu**2 + vv**2 <= radius_vox**2
    uu, vv = uu[keep], vv[keep]
    samples = (pts[:, None, :] + uu[None, :, None] * e1[:, None, :] + vv[None, :, None] * e2[:, None, :])
    vals = ndimage.map_coordinates(g, samples.reshape(-1, 3).T, order=1, mode="nearest")
    return vals.reshape(len(pts), -1).mean(axis=1)


def find_column(g: np.ndarray, peak: np.ndarray, step: float, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None) -> tuple[Column | None, np.ndarray]:
    """Trace the column (or None when no column is found) and return it with the solid-bone map."""
    score, canal, solid = body_score(g, peak, step, cancel)
    report(progress, 0.45, "Tracing the spinal column")
    check(cancel)
    path = trace(score)
    nz = g.shape[2]
    along = score[path[:, 0], path[:, 1], np.arange(nz)]
    win = max(1, round(15.0 / step))
    smooth = ndimage.uniform_filter1d(along, 2 * win + 1, mode="nearest")
    behind_canal = np.array([canal[max(0, i - 6): i + 7, j: j + int(40 / step) + 1, k].any()
                             for k, (i, j) in enumerate(path)])
    # the share of slices within 25 mm with the canal behind the path; at the ends of the field of view, of the
    # slices there are (padding the ends would count the last slice many times over)
    size = 2 * round(25.0 / step) + 1
    canal_frac = (ndimage.uniform_filter1d(behind_canal.astype(float), size, mode="constant")
                  / ndimage.uniform_filter1d(np.ones(nz), size, mode="constant"))
    ok = (smooth > 0.2) & (canal_frac > 0.1)
    span = _extent(ok, min_len=max(3, round(12.0 / step)), gap=round(20.0 / step))
    if span is None:
        return None, solid
    k0, k1 = span
    check(cancel)
    report(progress, 0.6, "Centring on the vertebral bodies")
    centres = _refine_centres(solid, canal, path, k0, k1, step)
    if np.isnan(centres[:, 0]).all():
        return None, solid
    ij = _smooth_curve(centres, sigma=4.0 / step)
    column = column_from_curve(solid.astype(np.float32), ij[:, 0], ij[:, 1], k0, k1, step, radius_mm=5.0)
    return column, solid


def solid_dips(column: Column) -> tuple[list[float], list[float], list[float]]:
    """Dips of the solid-bone fraction along the column (mm from the cranial end), their depth (0..1) and their
    width at half depth (mm): a disc is not enclosed by cortex, a body is (even an osteoporotic one, inside its
    shell), so the width is the disc's height from the bone above to the bone below."""
    prof = ndimage.gaussian_filter1d(column.profile, 1.5 / column.ds, mode="nearest")
    if len(prof) < 5:
        return [], [], []
    prominence = 0.3  # the profile is the solid-bone fraction: ~1 in a body, ~0 in the middle of a disc
    peaks, props = signal.find_peaks(-prof, prominence=prominence, distance=max(1, int(8.0 / column.ds)),
                                     width=(None, None), rel_height=0.5)
    return ([float(p) * column.ds for p in peaks], [float(x) for x in props["prominences"]],
            [float(w) * column.ds for w in props["widths"]])


def merge_discs(column: Column, hu_profile: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """Discs (positions, scores, heights) from the endplates (a less dense gap between two bright bands, which holds
    in osteoporotic bone whose interior is no denser than a disc) and the dips of the solid-bone profile, chained
    along the column with a pitch that may change from level to level (:mod:`ct_discs`)."""
    return ct_discs(hu_profile, column.ds, *solid_dips(column))


def segments_from_discs(discs: list[float], length: float, min_partial: float = 8.0
                        ) -> list[tuple[float, float, bool]]:
    """Vertebral segments (start, end, partial) between discs and the ends of the column, cranial first."""
    bounds = [0.0] + list(discs) + [length]
    out = []
    for n in range(len(bounds) - 1):
        a, b = bounds[n], bounds[n + 1]
        partial = n == 0 or n == len(bounds) - 2
        if b - a >= (min_partial if partial else 4.0):
            out.append((a, b, partial))
    return out


def detect(g: np.ndarray, peak: np.ndarray, step: float, progress: ProgressFn | None = None,
           cancel: CancelToken | None = None) -> tuple[Detection | None, np.ndarray]:
    """The column's vertebrae and discs (None when there is no column), and the solid-bone map."""
    column, solid = find_column(g, peak, step, progress, cancel)
    if column is None:
        return None, solid
    report(progress, 0.75, "Finding discs")
    discs, depth, height = merge_discs(column, disk_profile(g, column.points, column.tangents,
                                                            radius_vox=4.0 / step))
    length = (len(column.points) - 1) * column.ds
    segments = segments_from_discs(discs, length)
    if segments:
        segments[0] = _trim(segments[0], column, start=True, end=not discs)
        segments[-1] = _trim(segments[-1], column, start=not discs, end=True)
    segments = [seg for seg in segments if seg[1] - seg[0] >= 8.0]
    return Detection(column, discs, segments, depth, disc_height=height,
                     bodies=_bodies(segments, discs, height, length, column.ds)), solid


def _bodies(segments: list[tuple[float, float, bool]], discs: list[float], heights: list[float], length: float,
            ds: float) -> list[tuple[float, float]]:
    """Each segment's body along the column: a body is the marrow between its own endplates, which lie half a
    disc height from the centres of the discs above and below it (its centre is then the body's, not shifted by a
    quarter of the difference between the two discs' heights or, for an end vertebra trimmed to its bone, of one
    disc). A body cut by an end of the column (bone up to it: the field of view cuts it) keeps the segment's ends:
    its visible part is not bounded by its endplates, and its centre stays where it was."""
    half = {round(s, 6): h / 2.0 for s, h in zip(discs, heights)}
    out = []
    for a, b, _partial in segments:
        if a <= ds or b >= length - ds:
            out.append((a, b))
            continue
        top, bottom = a + half.get(round(a, 6), 0.0), b - half.get(round(b, 6), 0.0)
        out.append((top, bottom) if bottom > top else (a, b))
    return out


def _trim(seg: tuple[float, float, bool], column: Column, start: bool, end: bool) -> tuple[float, float, bool]:
    """An end segment shrunk, on its open side(s), to where there is bone: its centre is then the centre of the
    visible body rather than of the stretch of column the trace ran on beyond it."""
    a, b, partial = seg
    n0, n1 = round(a / column.ds), round(b / column.ds)
    inside = np.nonzero(column.profile[n0: n1 + 1] >= 0.5)[0]
    if inside.size == 0:
        return a, a, partial
    return ((n0 + inside[0]) * column.ds if start else a, (n0 + inside[-1]) * column.ds if end else b, partial)
