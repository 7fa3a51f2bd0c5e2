"""Discs along the CT column, from its endplates and its solid-bone profile, with a pitch that may change along the
spine.

What this relies on (CT, along the fitted axis of the column, through the middle of the bodies):

- Every vertebral body is closed at both ends by a cortical endplate, with denser subchondral bone under it: along
  the axis, a thin bright band (a few mm, blur included) with less dense tissue on both sides of it, the disc on one
  side and the body's marrow on the other (:func:`discs.endplate_peaks`).
- A disc lies BETWEEN two such bands, the lower endplate of the body above and the upper endplate of the body
  below: band centres 3-18 mm apart (discs are 4-12 mm thick, up to ~15 mm in young lumbar spines, plus half of each
  band), and less dense inside than both bands (fibrocartilage, no bone). Nothing is assumed about the marrow beyond
  the bands: healthy marrow is denser than a disc, osteoporotic or fatty marrow may be as low or lower.
- A body is the marrow between the two endplates of ONE vertebra; it is taller than the discs beside it at every
  level (cervical ~14 mm, thoracic 17-25 mm, lumbar 25-35 mm, against discs of 4-6, 4-8 and 8-12 mm), so a
  band-to-band gap is a disc only if it is under ~0.55 of the pitch around it. Two bands of the same body (and so a
  body taken for a disc, as when the global pitch was wrong) are told apart by this, not by density.
- A disc is not enclosed by cortex, a body is: where the endplates are not resolved (thick or blurred slices,
  an endplate at the edge of the field of view, the S1 endplate merging with the dense sacrum under it), the dips of
  the solid-bone fraction mark the discs too (weighted less: a lucent spot inside a body dips as well).
- The pitch (disc to disc) changes gradually along the spine, ~19 mm in the neck to ~40 mm in the low back, and by
  at most ~40 % between neighbouring levels (the thoracolumbar junction); a fractured body shortens one pitch to
  ~0.6 of its neighbours. So the discs are chosen as the best-scoring chain of candidates in which each spacing is a
  plausible pitch (10-50 mm) and close to the one before it (ratio 0.55-1.8, free within 20 %, a cost beyond), no
  single pitch being assumed for the whole column. A disc missed by every cue (a spacing of two pitches) costs the
  chain, but does not break it; parts of the column more than a pitch apart with no disc between them are chained
  separately.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, signal

from core.spine.autolabel.discs import PITCH_MM, endplate_peaks

DISC_GAP_MM = (3.0, 18.0)  # between the centres of the two endplate bands around a disc
MAX_SPLIT = 3  # band pairs may skip up to 2 weaker bands inside the disc (noise, a calcified spot)
DISC_OF_PITCH = 0.55  # a disc (band to band) is thinner than the body beside it: under ~half the pitch
MIN_SCORE = 0.15  # band-pair contrast over the profile's spread below which a pair is noise
# ... and in HU: cortical endplates stand >= 60 HU above the disc between them even in osteoporotic bone and on
# 3 mm slices (100-300 HU on the real samples); the texture of marrow (trabeculae, veins) makes bumps of 20-40 HU.
MIN_CONTRAST_HU = 60.0
# A thin disc (thoracic, 3-6 mm) between blurred endplates 8 mm apart or less keeps only 30-50 HU of its gap on
# 1.5-3 mm slices: such pairs count from 35 HU. Marrow texture can make one too; the chain's pitch rules weigh it.
# The gap of such a pair is measured on the profile as sampled as well: the smoothing that finds the endplates fills
# a 3-4 mm gap (a real chest CT's mid-thoracic discs kept 40-55 HU as sampled, 20-25 HU smoothed).
THIN_GAP_MM, THIN_CONTRAST_HU = 8.0, 35.0
DIP_WEIGHT = 0.5  # solid-bone dips count half as much as a pair of endplates
MERGE_MM = 4.0  # a dip this close to a band pair is the same disc
DENSE_REACH_MM = 9.0  # a disc's bone (its two endplates) lies within this of its middle
DENSE_MAX_WIDTH_MM = 10.0  # ... and its gap is no wider than this at half depth (a body's marrow is wider)
# a thin disc's two endplates blurred into one band: its width at half height (a single endplate is narrower)
BAND_WIDTH_MM = (5.0, 10.0)
BAND_REACH_MM = 12.0  # the band stands out of the marrow within this on either side
BAND_WEIGHT = 0.35
BAND_CLEAR_MM = 8.0  # a band counts only where no other cue marks a disc this close
RATIO_FREE = math.log(1.2)  # pitch change from one level to the next that costs nothing
RATIO_RANGE = (0.55, 1.8)  # beyond these, a spacing is not one level of the same spine
RATIO_COST = 1.0  # per unit of log ratio beyond RATIO_FREE
SKIP_COST = 0.5  # a spacing of two pitches: one disc not seen


def band_pairs(profile: np.ndarray, ds: float) -> list[tuple[float, float, float]]:
    """Disc candidates (position mm, score 0..1, band-to-band height mm) from pairs of endplate bands with a less
    dense gap between them (``profile`` in HU); a pair may enclose weaker bands (below the middle of its
    contrast)."""
    peaks, fine, spread = endplate_peaks(profile, ds, 1.0)
    out = []
    for n, a in enumerate(peaks):
        for m in range(n + 1, min(len(peaks), n + 1 + MAX_SPLIT)):
            b = peaks[m]
            gap = (b - a) * ds
            if gap > DISC_GAP_MM[1]:
                break
            if gap < DISC_GAP_MM[0]:
                continue
            inner = float(np.min(fine[a: b + 1]))
            contrast = min(fine[a], fine[b]) - inner
            if contrast <= 0 or any(fine[p] > inner + 0.5 * contrast for p in peaks[n + 1: m]):
                continue
            if gap <= THIN_GAP_MM:  # smoothing fills a thin disc's gap: measure it on the profile as sampled too
                contrast = max(contrast, _raw_contrast(profile, a, b))
            score = min(1.0, contrast / spread)
            if score >= MIN_SCORE and contrast >= (THIN_CONTRAST_HU if gap <= THIN_GAP_MM else MIN_CONTRAST_HU):
                out.append((n, m, score, gap))
    # a body between two thin discs is a pair too (its own two endplates, with marrow between): it is the pair whose
    # two bands are each the outer band of a narrower pair, the discs on either side of it (or the last band there is)
    ends = {}
    for n, m, _, gap in out:
        ends.setdefault(n, []).append((m, gap))
        ends.setdefault(m, []).append((n, gap))
    kept = []
    for n, m, score, gap in out:
        above = n == 0 or any(k < n and g < gap for k, g in ends.get(n, []))  # nothing before the first band
        below = m == len(peaks) - 1 or any(k > m and g < gap for k, g in ends.get(m, []))
        if not (above and below):
            kept.append(((peaks[n] + peaks[m]) / 2.0 * ds, score, gap))
    return kept


def _raw_contrast(profile: np.ndarray, a: int, b: int) -> float:
    """How much less dense than both its bands a gap is on the unsmoothed profile (bands: their highest sample
    within one sample of the smoothed peaks)."""
    if b - a < 2:
        return 0.0
    top_a = float(np.max(profile[max(0, a - 1): a + 2]))
    top_b = float(np.max(profile[b - 1: b + 2]))
    return min(top_a, top_b) - float(np.min(profile[a + 1: b]))


def candidates(hu_profile: np.ndarray, ds: float, dips: list[float], dip_depth: list[float],
               dip_width: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions, weights, heights) of all disc candidates, in position order: band pairs, each strengthened by a
    solid-bone dip within MERGE_MM, and the other dips on their own (height: :func:`gap_width`)."""
    pairs = band_pairs(hu_profile, ds)
    pos = [p for p, _, _ in pairs]
    weight = [w for _, w, _ in pairs]
    height = [h for _, _, h in pairs]
    n_pairs = len(pos)
    for d, depth, width in zip(dips, dip_depth, dip_width):
        w = DIP_WEIGHT * min(1.0, depth)
        near = [n for n in range(n_pairs) if abs(pos[n] - d) <= MERGE_MM]
        for n in near:
            weight[n] += w
        if not near:
            pos.append(d)
            weight.append(w)
            height.append(gap_width(hu_profile, ds, d) or width)
    for d, depth in density_dips(hu_profile, ds):
        width = gap_width(hu_profile, ds, d)
        # a body's marrow between its two endplates is a gap too, but a wider one
        if width is not None and width <= DENSE_MAX_WIDTH_MM and all(abs(p - d) > MERGE_MM for p in pos):
            pos.append(d)
            weight.append(DIP_WEIGHT * depth)
            height.append(width)
    for d, strength, width in merged_bands(hu_profile, ds):
        if all(abs(p - d) > BAND_CLEAR_MM for p in pos):
            pos.append(d)
            weight.append(BAND_WEIGHT * strength)
            height.append(max(1.0, width - 4.0))  # the disc inside the band, less its two endplates
    order = np.argsort(pos, kind="stable")
    return np.asarray(pos)[order], np.asarray(weight)[order], np.asarray(height)[order]


def merged_bands(hu_profile: np.ndarray, ds: float) -> list[tuple[float, float, float]]:
    """(position mm, strength 0..1, width mm) of the bright bands that thin discs make where no gap is left between
    their endplates: a thin disc's two endplates are the densest part of its level, and blurred together with the
    disc between them (thick slices, a narrowed disc) they make one band 5-10 mm wide centred on the disc, with the
    marrow of the bodies on either side lower. Weighed less than a pair of bands: a dense spot in a body looks
    alike, and the chain's pitch rules decide."""
    fine = ndimage.gaussian_filter1d(hu_profile, 1.0 / ds, mode="nearest")
    spread = float(np.percentile(fine, 95) - np.percentile(fine, 5))
    if spread <= 0:
        return []
    lo, hi = (w / ds for w in BAND_WIDTH_MM)
    _, props = signal.find_peaks(fine, prominence=MIN_CONTRAST_HU, width=(lo, hi), rel_height=0.5,
                                 wlen=2 * round(BAND_REACH_MM / ds) + 1)
    # the band's middle, between its half-height edges: its top is flat (two endplates), so the highest point on it
    # is wherever the noise puts it
    middles = (props["left_ips"] + props["right_ips"]) / 2.0
    return [(float(c) * ds, min(1.0, float(prom) / spread), float(w) * ds)
            for c, prom, w in zip(middles, props["prominences"], props["widths"])]


def density_dips(hu_profile: np.ndarray, ds: float) -> list[tuple[float, float]]:
    """(position mm, depth 0..1) of low-density gaps with denser bone within DENSE_REACH_MM on both sides, by at
    least MIN_CONTRAST_HU: a disc whose endplates are too blurred to make thin bands (3 mm slices) and whose level
    is enclosed by bone in the axial plane (L5-S1 between the sacral alae), so it makes no solid-bone dip either.
    The middle of a body is further than DENSE_REACH_MM from both its endplates, except in the neck, where the
    chain's rule that a disc is thinner than the bodies beside it keeps it out."""
    fine = ndimage.gaussian_filter1d(hu_profile, 0.75 / ds, mode="nearest")
    spread = float(np.percentile(fine, 95) - np.percentile(fine, 5))
    if spread <= 0:
        return []
    reach = round(DENSE_REACH_MM / ds)
    out = []
    for n in signal.argrelmin(fine, order=max(1, round(2.0 / ds)))[0]:
        if n < reach or n > len(fine) - 1 - reach:
            continue  # a side cut by the end of the column: no bone known there
        depth = min(fine[n - reach: n].max(), fine[n + 1: n + reach + 1].max()) - fine[n]
        if depth >= MIN_CONTRAST_HU:
            out.append((float(n) * ds, min(1.0, depth / spread)))
    return out


def gap_width(hu_profile: np.ndarray, ds: float, at: float) -> float | None:
    """Height (mm) of the low-density gap at ``at``: its width at half depth between its lowest point (within
    3 mm) and the lower of the highest points within 9 mm on either side (half depth is where a blurred edge
    crosses, whatever the blur). None when the gap is not MIN_CONTRAST_HU deep (a disc as dense as osteoporotic
    marrow): the solid-bone dip's width is used then, which is narrower on thick slices (bone is thresholded on
    block maxima, so it grows into the disc)."""
    n, c = len(hu_profile), round(at / ds)
    lo = int(np.clip(c - round(3.0 / ds), 0, n - 1))
    c = lo + int(np.argmin(hu_profile[lo: c + round(3.0 / ds) + 1]))
    reach = round(9.0 / ds)
    left, right = hu_profile[max(0, c - reach): c + 1], hu_profile[c: c + reach + 1]
    level = min(left.max(), right.max())
    depth = level - hu_profile[c]
    if depth < MIN_CONTRAST_HU:
        return None
    half = hu_profile[c] + 0.5 * depth
    up = np.nonzero(right >= half)[0]
    down = np.nonzero(left[::-1] >= half)[0]
    if not up.size or not down.size:
        return None
    return float(up[0] + down[0]) * ds


def chain(pos: np.ndarray, weight: np.ndarray, height: np.ndarray) -> list[int]:
    """Indices (in position order) of the best chain of discs: the largest total weight minus the costs of pitch
    changes and skipped discs, with every spacing a plausible pitch (or two) and every disc thinner than the taller
    of the bodies beside it (DISC_OF_PITCH of the larger pitch: a compressed body next to a disc may be no taller
    than the disc, its other neighbour is). Candidates further than a pitch from the chain's ends are chained on
    their own."""
    n = len(pos)
    if n == 0:
        return []
    lo, hi = PITCH_MM
    thin = height / DISC_OF_PITCH  # the smallest pitch beside each disc that makes it thinner than a body
    value = np.full((n, n), -np.inf)  # value[j, i]: best chain whose last two discs are j < i
    unit = np.zeros((n, n))  # its last pitch (the spacing j -> i, or half of it when a disc was skipped)
    back = np.full((n, n), -1, dtype=int)
    for i in range(n):
        for j in range(i - 1, -1, -1):
            d = pos[i] - pos[j]
            if d < lo:
                continue
            if d > 2 * hi:
                break
            best, best_unit, best_k = -np.inf, 0.0, -1
            if d <= hi and thin[j] <= d:  # a chain starting at j, which has no other neighbour
                best, best_unit = weight[j] + weight[i], d
            ks = np.nonzero(np.isfinite(value[:j, j]))[0]
            if ks.size:
                prev = unit[ks, j]
                for skipped in (0, 1):
                    u = d / (1 + skipped)
                    if not lo <= u <= hi:
                        continue
                    ratio = u / prev
                    ok = (ratio >= RATIO_RANGE[0]) & (ratio <= RATIO_RANGE[1]) & (thin[j] <= np.maximum(prev, u))
                    if not ok.any():
                        continue
                    cost = RATIO_COST * np.maximum(0.0, np.abs(np.log(ratio)) - RATIO_FREE) + SKIP_COST * skipped
                    vals = np.where(ok, value[ks, j] + weight[i] - cost, -np.inf)
                    m = int(np.argmax(vals))
                    if vals[m] > best:
                        best, best_unit, best_k = float(vals[m]), u, int(ks[m])
            if np.isfinite(best):
                value[j, i], unit[j, i], back[j, i] = best, best_unit, best_k
    final = np.where(thin[None, :] <= unit, value, -np.inf)  # the last disc has only the body above it
    single = int(np.argmax(weight))
    if np.isfinite(final).any() and final.max() > weight[single]:
        j, i = np.unravel_index(int(np.argmax(final)), final.shape)
        picked = [int(i), int(j)]
        while back[j, i] >= 0:
            j, i = back[j, i], j
            picked.append(int(j))
        picked = picked[::-1]
    else:
        picked = [single]
    first, last = pos[picked[0]], pos[picked[-1]]
    below = np.nonzero(pos < first - hi)[0]
    above = np.nonzero(pos > last + hi)[0]
    out = [int(below[k]) for k in chain(pos[below], weight[below], height[below])] if below.size else []
    out += picked
    out += [int(above[k]) for k in chain(pos[above], weight[above], height[above])] if above.size else []
    return out


def ct_discs(hu_profile: np.ndarray, ds: float, dips: list[float], dip_depth: list[float],
             dip_width: list[float]) -> tuple[list[float], list[float], list[float]]:
    """Disc positions (mm from the start of the profile), scores (0..1) and heights (mm: between the endplate
    bands, else the width of the low-density gap or of the solid-bone dip) on a CT column: the chain of endplate
    pairs and solid-bone dips (see the module's docstring)."""
    pos, weight, height = candidates(hu_profile, ds, dips, dip_depth, dip_width)
    picked = chain(pos, weight, height)
    return ([float(pos[n]) for n in picked], [float(min(1.0, weight[n])) for n in picked],
            [float(height[n]) for n in picked])
