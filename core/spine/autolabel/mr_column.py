"""Finding the vertebral column in an MR volume and its bodies and discs along it (no naming here).

Works on an isotropic grid (axes towards L, P, S; see :mod:`grid`) of intensities normalised to their 1st-99th
percentiles, so no absolute MR value is assumed. Two properties of every spine MR are used:

1. **Alternation**: along the spine's long axis, vertebral bodies and discs alternate every 12-45 mm. A band-pass
   along S-I (1.5 mm vs 6 mm) and its local energy over ~20 mm mark the column of bodies and discs (and little
   else: organs, fat and muscle vary slowly along S-I).
2. **The canal**: behind that column runs the spinal canal, a tube of cerebrospinal fluid, bright on T2 (dark on
   T1). Its score in each axial slice is a blob of canal size (difference of Gaussians, 2.5 vs 7 mm) with an
   alternating column 6-30 mm in front of it. The canal is traced slice to slice (dynamic programming, as on CT)
   in both polarities; of two tubes one straight behind the other, the front one is the canal (behind it lie the
   laminae and epidural fat, bright on T1). The column is followed while this score stays high, and on through
   weaker stretches between strong ones (degenerated discs alternate less with the bodies).

The body centre line runs in front of the canal's anterior wall (the bodies' posterior wall), first 8 mm in front of
it, then 0.4 pitch in front (a body is about as deep as the pitch) until that agrees with the pitch found.
Intensities sampled on small disks along that line give the body/disc profile: its period (autocorrelation) is the
vertebral pitch, found window by window on a long column (it grows from the neck down); discs come from the
endplates around them, or else are the extrema of the *narrower* phase of the band-passed profile (:mod:`discs`:
discs are thinner than bodies at every level of the spine, whatever their brightness: bright healthy discs on T2,
dark degenerated ones). Discs are kept from the line on which they stand out
best. Where the pitch puts a disc that was not found (a hole of two pitches, or below the lowest disc), a faint
band across the column's whole depth counts as a degenerated disc; a doubtful one there is reported, so that the
sacrum does not name the levels (:mod:`mr_anchors`). Vertebrae are the segments between consecutive discs; a segment
cut by the end of the column is partial.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from core.spine.autolabel.ct_column import (
    Column,
    Detection,
    column_from_curve,
    segments_from_discs,
    trace,
)
from core.spine.autolabel.discs import (
    BAND_OF_DISCS,
    disc_contrast,
    faint_band,
    fill_gaps,
    find_discs_windowed,
    local_pitch,
)
from core.tasks import CancelToken, ProgressFn, check, report

CANAL_FRONT_MM = (6.0, 30.0)  # where the body/disc column lies in front of the canal centre
MIN_ALTERNATION = 3.0  # body/disc alternation in front of the canal, relative to the image's median: a spine
# Where the body line starts, in front of the canal's anterior wall, before the pitch is known: half the depth of
# the shallowest adult bodies (C3-C7, 15-17 mm deep), so inside every body. Nearer the posterior wall the line runs
# through the basivertebral veins, which enter each body at the middle of its posterior wall (bright on T2): a
# disc-like mark in mid-body that makes twice the pitch look as good as the true one.
FIRST_INSET_MM = 8.0
# Degenerated discs (dark on T2, thin) alternate with the bodies far less than bright healthy ones: a lumbar
# column whose lowest discs are degenerated is followed on through them while its score stays above this part of
# the strongest.
RUN_LOW = 0.08
# two candidate canals, one straight behind the other (see trace_canal): at most this far apart left-right, this far
# apart front to back (a canal's radius to its depth plus the lamina's), and the front one at least this part as strong
STACKED_SIDE_MM = 6.0
STACKED_AP_MM = (4.0, 25.0)
STACKED_QUALITY = 0.5
# faint discs (see _faint_bands): the lines across the column's depth they must show on (part of a pitch in front of
# the canal's front wall; the body line is at about 0.4), and how far from a pitch below the lowest disc one is sought
DEPTH_LINES_OF_PITCH = (0.2, 0.6)
END_WINDOW_OF_PITCH = 0.2
ACROSS = 0.5  # on those lines, the band differs from the bodies by at least this part of what it does on the body line


def normalise(g: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(g[::2, ::2, ::2], [1.0, 99.0])
    return ((g - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def alternation(g: np.ndarray, step: float) -> np.ndarray:
    """Local energy of the S-I band-pass (bodies and discs alternate; most other tissue does not)."""
    fine = ndimage.gaussian_filter1d(g, 1.5 / step, axis=2, mode="nearest")
    coarse = ndimage.gaussian_filter1d(g, 6.0 / step, axis=2, mode="nearest")
    e = (fine - coarse) ** 2
    return ndimage.gaussian_filter(e, (2.0 / step, 2.0 / step, 10.0 / step), mode="nearest")


def _front_max(energy: np.ndarray, step: float) -> np.ndarray:
    """For each voxel, the largest alternation energy 6-30 mm in front of it (anterior = smaller j)."""
    out = np.zeros_like(energy)
    d0, d1 = (max(1, round(d / step)) for d in CANAL_FRONT_MM)
    for d in range(d0, d1 + 1):
        np.maximum(out[:, d:, :], energy[:, :-d, :], out=out[:, d:, :])
    return out


def canal_score(g: np.ndarray, front: np.ndarray, step: float, polarity: float) -> np.ndarray:
    pg = polarity * g
    blob = ndimage.gaussian_filter(pg, (2.5 / step, 2.5 / step, 0)) - ndimage.gaussian_filter(
        pg, (7.0 / step, 7.0 / step, 0))
    score = np.clip(blob, 0.0, None) * front
    top = float(np.percentile(score, 99.9))
    return np.clip(score / top, 0.0, 1.0) if top > 0 else score


def _run(values: np.ndarray, thr: float, min_len: int, low: float | None = None) -> tuple[int, int] | None:
    """(first, last) index of the strongest run of ``values`` >= ``thr`` (by its sum), grown through neighbouring
    values >= ``low`` (hysteresis): a stretch of weaker alternation between stronger ones stays in the column."""
    low = thr if low is None else low
    labels, n = ndimage.label(values >= low)
    if n == 0:
        return None
    strong = np.unique(labels[values >= thr])
    strong = strong[strong > 0]
    if strong.size == 0:
        return None
    sums = ndimage.sum_labels(values, labels, strong)
    best = int(strong[int(np.argmax(sums))])
    ks = np.nonzero(labels == best)[0]
    return (int(ks[0]), int(ks[-1])) if len(ks) >= min_len else None


def trace_canal(g: np.ndarray, front: np.ndarray, step: float, cancel: CancelToken | None
                ) -> tuple[np.ndarray, tuple[int, int], float, float] | None:
    """(path (nz, 2), (k0, k1), polarity, mean score) of the canal: bright (T2) or dark (T1).

    Both polarities find a tube with the column in front of it. Where one tube runs straight behind the other, the
    front one is the canal, which lies right behind the bodies: behind the canal come the laminae and the epidural
    fat, bright on T1 (where the canal is dark), and the dark cortex of the posterior arch on T2 (where it is
    bright). Otherwise the bright canal is kept unless the dark one is far stronger."""
    found = []
    for polarity in (1.0, -1.0):
        check(cancel)
        score = canal_score(g, front, step, polarity)
        path = trace(score, penalty=0.02)
        along = score[path[:, 0], path[:, 1], np.arange(g.shape[2])]
        smooth = ndimage.uniform_filter1d(along, 2 * max(1, round(8.0 / step)) + 1, mode="nearest")
        span = _run(smooth, 0.25 * float(smooth.max()), max(3, round(15.0 / step)), low=RUN_LOW * float(smooth.max()))
        if span is None:
            continue
        quality = float(np.mean(smooth[span[0]: span[1] + 1])) * (span[1] - span[0] + 1)
        found.append((path, span, polarity, quality))
    if len(found) < 2:
        return found[0] if found else None
    bright, dark = found
    ahead = _in_front(dark, bright, step)  # +1: dark in front of bright, -1: bright in front of dark, 0: neither
    if ahead > 0 and dark[3] >= STACKED_QUALITY * bright[3]:
        return dark
    if ahead < 0 and bright[3] >= STACKED_QUALITY * dark[3]:
        return bright
    return dark if dark[3] > 1.5 * bright[3] else bright


def _in_front(a: tuple, b: tuple, step: float) -> int:
    """Whether path ``a`` runs straight in front of path ``b`` (+1), behind it (-1), or neither (0), over the slices
    both cover: within STACKED_SIDE_MM left-right, STACKED_AP_MM apart front to back (anterior = smaller j)."""
    k0, k1 = max(a[1][0], b[1][0]), min(a[1][1], b[1][1])
    if k1 - k0 < 3:
        return 0
    di = np.median(np.abs(a[0][k0: k1 + 1, 0] - b[0][k0: k1 + 1, 0])) * step
    dj = np.median(b[0][k0: k1 + 1, 1] - a[0][k0: k1 + 1, 1]) * step
    if di > STACKED_SIDE_MM or not STACKED_AP_MM[0] <= abs(dj) <= STACKED_AP_MM[1]:
        return 0
    return 1 if dj > 0 else -1


def recentre(g: np.ndarray, path: np.ndarray, k0: int, k1: int, step: float, polarity: float) -> np.ndarray:
    """The canal path moved, slice by slice, to the centre of the canal it runs in (the trace may ride on one side
    of it): the bright (T2) or dark (T1) region around the path's brightest point within 12 mm, with the cord it
    rings filled in; then smoothed along the column."""
    pg = ndimage.gaussian_filter(polarity * g, (1.0 / step, 1.0 / step, 0))
    r = max(2, round(12.0 / step))
    out = path[k0: k1 + 1].astype(float).copy()
    for n, k in enumerate(range(k0, k1 + 1)):
        for _ in range(2):  # the second time with the window centred on the first estimate
            ci, cj = (round(float(x)) for x in out[n])
            i0, j0 = max(0, ci - r), max(0, cj - r)
            win = pg[i0: ci + r + 1, j0: cj + r + 1, k]
            if win.size < 9:
                break
            peak = np.unravel_index(int(np.argmax(win)), win.shape)
            mask = ndimage.binary_fill_holes(win >= (win.max() + np.median(win)) / 2.0)
            labels, _ = ndimage.label(mask)
            wi, wj = np.nonzero(labels == labels[peak])
            if wi.size * step**2 > 800.0:  # not a canal-sized region: keep the trace
                break
            out[n] = (i0 + wi.mean(), j0 + wj.mean())
    size = max(3, round(15.0 / step) | 1)
    for c in range(2):
        out[:, c] = ndimage.median_filter(out[:, c], size=size, mode="nearest")
    return ndimage.gaussian_filter1d(out, 3.0 / step, axis=0, mode="nearest")


def canal_front(g: np.ndarray, canal: np.ndarray, k0: int, step: float, polarity: float) -> np.ndarray:
    """Per slice, the j of the canal's anterior wall (the posterior wall of the bodies and discs): going forwards
    from the canal centre, past the brightest CSF within 12 mm, where the value falls half-way to the tissue
    10-25 mm in front of it."""
    pg = ndimage.gaussian_filter(polarity * g, (1.0 / step, 1.0 / step, 1.0 / step))
    n12, n10, n25 = round(12.0 / step), round(10.0 / step), round(25.0 / step)
    fronts = np.full(len(canal), np.nan)
    for n, (ci, cj) in enumerate(canal):
        i, j, k = round(float(ci)), round(float(cj)), k0 + n
        js = j - np.arange(0, n25 + n12 + 1)
        js = js[js >= 0]
        ray = pg[i, js, k]
        if ray.size < n12 + 3:
            continue
        m = int(np.argmax(ray[: n12 + 1]))
        beyond = ray[min(ray.size - 1, m + n10): m + n25 + 1]
        if beyond.size == 0:
            continue
        half = (ray[m] + np.median(beyond)) / 2.0
        below = np.nonzero(ray[m:] < half)[0]
        if below.size:
            fronts[n] = j - (m + below[0])
    good = np.isfinite(fronts)
    if good.sum() < 2:
        return canal[:, 1] - 6.0 / step
    idx = np.arange(len(fronts))
    fronts = np.interp(idx, idx[good], fronts[good])
    fronts = ndimage.median_filter(fronts, size=max(3, round(15.0 / step) | 1), mode="nearest")
    return ndimage.gaussian_filter1d(fronts, 3.0 / step, mode="nearest")


def detect(g: np.ndarray, step: float, progress: ProgressFn | None = None,
           cancel: CancelToken | None = None) -> tuple[Detection | None, dict]:
    """The column's vertebrae and discs (None when no column is found) and facts for the anchors."""
    g = normalise(g)
    report(progress, 0.1, "Looking for the alternation of bodies and discs")
    energy = alternation(g, step)
    front = _front_max(energy, step)
    check(cancel)
    report(progress, 0.3, "Tracing the spinal canal")
    found = trace_canal(g, front, step, cancel)
    if found is None:
        return None, {}
    path, (k0, k1), polarity, _quality = found
    along = energy[path[k0: k1 + 1, 0], path[k0: k1 + 1, 1], np.arange(k0, k1 + 1)]
    on_front = front[path[k0: k1 + 1, 0], path[k0: k1 + 1, 1], np.arange(k0, k1 + 1)]
    background = float(np.median(energy)) + 1e-12
    facts_contrast = float(np.median(on_front)) / background
    if facts_contrast < MIN_ALTERNATION or not np.any(along >= 0):
        return None, {"alternation": facts_contrast}
    report(progress, 0.6, "Following the vertebral bodies")
    canal = recentre(g, path, k0, k1, step, polarity)
    front = canal_front(g, canal, k0, step, polarity)
    column, best = None, None
    inset = FIRST_INSET_MM
    for _attempt in range(3):  # first FIRST_INSET_MM in front of the bodies' posterior wall, then their middle
        column = _column(g, canal[:, 0], front - inset / step, k0, k1, step)
        found = find_discs_windowed(column.profile, column.ds, sign=-1.0)
        quality = found[3]
        if best is None or quality >= best[1]:  # ties: the later line, nearer the bodies' middle
            best = (column, quality, *found[:3])
        pitch = found[2]
        # a body is about as deep as the pitch (0.8-1.1 pitches from C3 to L5): its centre ~0.4 pitch in front
        new_inset = float(np.clip(0.4 * pitch, 5.0, 16.0)) if pitch else inset
        if abs(new_inset - inset) < 2.0:
            break
        inset = new_inset
    # Discs span the whole depth of the column, but stand out better on some lines than on others (veins, fat
    # marrow, a bulging disc): they are taken from the line where they are strongest and most regular, and moved,
    # slice for slice, onto the last line (through the bodies' middle) on which the vertebrae are placed.
    disc_line, _quality, discs, prom, pitch = best
    doubt, filled, pitches = None, 0, []
    if pitch:
        discs, prom, filled = fill_gaps(disc_line.profile, disc_line.ds, -1.0, local_pitch(discs, pitch), discs,
                                        prom)
        others = [_column(g, canal[:, 0], front - f * pitch / step, k0, k1, step) for f in DEPTH_LINES_OF_PITCH]
        discs, prom, banded, doubt = _faint_bands(disc_line, others, discs, prom, local_pitch(discs, pitch),
                                                  darker_only=polarity < 0)
        filled += banded
        pitch_at = local_pitch(discs, pitch)
        pitches = [pitch_at(d) for d in discs]
    discs = _transfer(discs, disc_line, column)
    check(cancel)
    pts, ds = column.points, column.ds
    length = (len(pts) - 1) * ds
    segments = [seg for seg in segments_from_discs(discs, length) if seg[1] - seg[0] >= 6.0]
    facts = {"polarity": "bright canal (T2-like)" if polarity > 0 else "dark canal (T1-like)", "pitch": pitch,
             # the pitch where each anchor is sought: it grows from 17-19 mm in the neck to 35-40 mm low down
             "pitch_top": pitches[0] if pitches else pitch, "pitch_bottom": pitches[-1] if pitches else pitch,
             "top_gap_mm": (g.shape[2] - 1 - k1) * step, "bottom_gap_mm": k0 * step, "alternation": facts_contrast,
             "doubt_below_mm": None if doubt is None else _transfer([doubt], disc_line, column)[0]}
    if pitches and max(pitches) - min(pitches) > 4.0:
        notes = [f"MR: {facts['polarity']}, vertebral pitch {min(pitches):.0f}-{max(pitches):.0f} mm"]
    else:
        notes = [f"MR: {facts['polarity']}, vertebral pitch {pitch:.0f} mm" if pitch else "MR: no vertebral pitch found"]
    if filled:
        notes.append(f"{filled} faint disc(s) found where the pitch puts one (a degenerated disc stands out less "
                     "than a healthy one)")
    return Detection(column, discs, segments, prom, notes), facts


def _faint_bands(line: Column, others: list[Column], discs: list[float], prom: list[float],
                 pitch_at: Callable[[float], float], darker_only: bool = False
                 ) -> tuple[list[float], list[float], int, float | None]:
    """Discs too faint for the endplate pairs (a degenerated disc on T2 with no dark endplates left around it, only
    a band a little darker than the bodies), where the pitch (``pitch_at``: mm at a position) puts a disc: in a hole
    of about two pitches, and a pitch at a time below the lowest disc. A band is taken as a disc when it is wide
    enough and crosses the whole depth of the column (on the lines ``others``, in front of and behind ``line``): an
    S1-S2 remnant is a thin line that often spans only part of it. Returns (discs, scores, how many were added,
    position of a doubtful band below the lowest disc or None); a doubtful band is one that is disc-wide but faint
    or not across the column: a degenerated L5-S1 disc or the S1-S2 remnant, so the sacrum cannot name the
    levels. ``darker_only`` (T1, whose canal is dark): every disc, healthy or degenerated, is darker than the
    fatty marrow of the bodies, so a band brighter than them (fat beside the line) is not one."""
    if not discs:
        return discs, prom, 0, None
    prof, ds = line.profile, line.ds

    def band(profile: np.ndarray, step: float, target: float, p: float, window: float, ref: float
             ) -> tuple[str, float, float]:
        kind, pos, dev = faint_band(profile, step, target, p, window, ref)
        return ("none", pos, dev) if darker_only and dev > 0 else (kind, pos, dev)

    reference = disc_contrast(prof, ds, discs, pitch_at)
    out = sorted(zip(discs, prom, strict=True))
    added = 0

    def across(pos: float, dev: float) -> bool:
        for other in others:
            at = _transfer([pos], line, other)[0]
            kind, _, odev = band(other.profile, other.ds, at, pitch_at(pos), 4.0, ACROSS * abs(dev) / BAND_OF_DISCS)
            if kind != "disc" or np.sign(odev) != np.sign(dev):
                return False
        return True

    for a, b in itertools.pairwise([q for q, _ in out]):
        p = pitch_at((a + b) / 2.0)
        if 1.6 * p <= b - a <= 2.5 * p:
            kind, pos, dev = band(prof, ds, (a + b) / 2.0, p, 0.3 * p, reference)
            if kind == "disc" and across(pos, dev):
                out.append((pos, min(1.0, abs(dev) / reference)))
                added += 1
    out.sort()
    length = (len(prof) - 1) * ds
    while length - (target := out[-1][0] + (p := pitch_at(out[-1][0]))) >= 0.3 * p:
        kind, pos, dev = band(prof, ds, target, p, END_WINDOW_OF_PITCH * p, reference)
        if kind == "none":
            break
        if kind == "doubt" or not across(pos, dev):
            return [q for q, _ in out], [x for _, x in out], added, pos
        out.append((pos, min(1.0, abs(dev) / reference)))
        added += 1
    return [q for q, _ in out], [x for _, x in out], added, None


def _transfer(discs: list[float], src: Column, dst: Column) -> list[float]:
    """Positions along ``src`` (mm from its cranial end) -> positions along ``dst`` at the same slices (both lines
    have one point per slice of the same range, cranial first, so their k decreases along them)."""
    if src is dst or not discs:
        return list(discs)
    ks = np.interp(np.asarray(discs) / src.ds, np.arange(len(src.points)), src.points[:, 2])
    s_dst = np.interp(-ks, -dst.points[:, 2], np.arange(len(dst.points)) * dst.ds)
    return [float(x) for x in s_dst]


def _column(g: np.ndarray, ci: np.ndarray, cj: np.ndarray, k0: int, k1: int, step: float) -> Column:
    """The body line (grid i, j per slice k0..k1) resampled every 1 mm, with tangents and the intensity profile."""
    return column_from_curve(g, ci, cj, k0, k1, step, radius_mm=2.5)

