"""Discs along a column profile, from its endplates: the MR labeller's discs (:func:`find_discs`), and the endplates
the CT labeller chains its discs from (:func:`endplate_peaks`, used by :mod:`ct_discs`, which lets the pitch change
along the column instead of choosing one pitch for all of it).

Every intervertebral disc lies between two endplates, and every endplate is a thin plate of cortical bone: bright
on CT, dark on every MR sequence. Along the column, endplates come in pairs: the two around a disc are close (the
disc height) and the two of a vertebral body are far apart (the body height); discs are thinner than bodies at
every level of the spine, whatever their density or signal (a bright healthy disc on T2, a dark degenerated one, a
disc denser than an osteoporotic body on CT). So:

1. endplate candidates are the peaks of the fine profile (sign: +1 CT, -1 MR);
2. pitch (disc-to-disc distance) candidates: the median sum of two consecutive gaps between endplates (a disc and a
   body) and the peaks of the profile's autocorrelation; each is tried and the one giving the strongest, most
   regularly spaced discs is kept;
3. a disc candidate is a pair of neighbouring endplates 10-55 % of a pitch apart and not much further apart than
   both neighbouring pairs (when it is, it is a body between two discs), scored by how much both endplates stand out
   from the disc between them;
4. discs are chosen greedily by score, at least 0.6 pitch apart;
5. when the endplates are not resolved (few pairs for the length of column), the discs are the extrema of the
   narrower phase of the band-passed profile instead;
6. (MR, :func:`fill_gaps`) where the chosen discs leave a hole of about two pitches, or the column goes on for more
   than a pitch beyond the first or last disc, the best endplate pair about one pitch on is a disc too, however
   faint: a degenerated disc, dark on T2 between dark endplates, stands out far less than the bright healthy discs
   that set the threshold of step 4, and the lowest lumbar discs, the ones naming from the sacrum depends on, are
   the ones most often degenerated;
7. (MR, :func:`find_discs_windowed`) a column longer than 1.5 windows of 180 mm is searched window by window,
   each with its own pitch (17-19 mm in the neck, 35-40 mm in the lumbar spine), and discs off the beat of the
   others are left out; :func:`local_pitch` then gives the pitch at each position from the discs' spacing.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from scipy import ndimage, signal

PITCH_MM = (10.0, 50.0)
Pitch = float | Callable[[float], float]  # mm, or a function of the position along the column (mm) giving it
GAP_OF_PITCH = (0.10, 0.55)
MAX_ENDPLATE_MM = 5.0  # width at half prominence of a CT endplate peak
SPLIT_DIP = 0.5  # a peak between two endplates rising less than this part of their contrast is noise in the disc
ENDPLATE_REACH_MM = 6.0  # a CT endplate's profile falls on both sides within this (disc, marrow)


def pitch_candidates(profile: np.ndarray, ds: float, lo_mm: float = PITCH_MM[0], hi_mm: float = PITCH_MM[1]
                     ) -> list[float]:
    """Lags (mm) of the autocorrelation peaks of the detrended profile within the plausible pitch range."""
    f = profile - ndimage.gaussian_filter1d(profile, 12.0 / ds, mode="nearest")
    f = f - f.mean()
    n = len(f)
    lo, hi = round(lo_mm / ds), min(round(hi_mm / ds), int(0.8 * n))
    if hi <= lo + 2 or not np.any(f):
        return []
    ac = np.correlate(f, f, mode="full")[n - 1:]
    ac = ac / np.maximum(np.arange(n, 0, -1), 1)
    ac = ac / ac[0]
    peaks, _ = signal.find_peaks(ac[: hi + 1])
    peaks = peaks[(peaks >= lo) & (ac[peaks] > 0.02)]
    return [float(p * ds) for p in peaks[np.argsort(ac[peaks])[::-1]]]


def pitch_of(profile: np.ndarray, ds: float) -> float | None:
    """The strongest autocorrelation period (mm), None when there is none."""
    cands = pitch_candidates(profile, ds)
    return cands[0] if cands else None


def _pitch_fn(pitch: Pitch) -> Callable[[float], float]:
    """``pitch`` as a function of the position along the column."""
    return pitch if callable(pitch) else (lambda _s: pitch)


def _fine(profile: np.ndarray, ds: float, sign: float) -> tuple[np.ndarray, float]:
    """The lightly smoothed signed profile the endplates are found on, and its 5-95 % spread (the unit of disc
    scores)."""
    fine = sign * ndimage.gaussian_filter1d(profile, 0.75 / ds, mode="nearest")
    return fine, float(np.percentile(fine, 95) - np.percentile(fine, 5))


def endplate_peaks(profile: np.ndarray, ds: float, sign: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(peak indices, fine signed profile, its 5-95 % spread). On CT (sign +1) a peak must also be thin: an
    endplate is a band of a few mm with less dense tissue on BOTH sides within ENDPLATE_REACH_MM (the disc on one,
    the body's marrow on the other), not the plateau of a dense body between two discs. Its prominence and width
    are measured within that reach: measured against the lowest point anywhere along the column (a disc or the
    soft tissue beyond the column's end), the half-prominence level of an endplate can fall below the marrow next
    to it, and the endplate then looks as wide as the whole body. MR endplates are often blurred into the dark rim
    of the disc, so no width limit is set there."""
    fine, spread = _fine(profile, ds, sign)
    if spread <= 0:
        return np.array([], dtype=int), fine, spread
    width = (None, MAX_ENDPLATE_MM / ds) if sign > 0 else None
    wlen = 2 * round(ENDPLATE_REACH_MM / ds) + 1 if sign > 0 else None
    peaks, _ = signal.find_peaks(fine, prominence=0.08 * spread, distance=max(1, round(2.0 / ds)), width=width,
                                 wlen=wlen)
    return peaks, fine, spread


def pitch_from_peaks(peaks: np.ndarray, ds: float) -> float | None:
    """Median of the sums of two consecutive endplate gaps (one disc + one body), if plausible."""
    if len(peaks) < 3:
        return None
    gaps = np.diff(peaks) * ds
    sums = gaps[:-1] + gaps[1:]
    pitch = float(np.median(sums))
    return pitch if PITCH_MM[0] <= pitch <= PITCH_MM[1] else None


def endplate_pairs(profile: np.ndarray, ds: float, pitch: Pitch, sign: float,
                   min_gap_of_pitch: float = GAP_OF_PITCH[0]) -> tuple[list[float], list[float]]:
    """Disc candidates (position mm, score) from pairs of endplate peaks. ``pitch``: mm, or a function of the
    position along the column giving it.

    A pair is two neighbouring peaks, or on MR two peaks with a weaker one between them (a noise dip inside a dark
    degenerated disc splits its pair). A pair much further apart than the gaps either side of it is a body between
    two discs; those gaps are measured to the nearest peaks about as strong as the pair's (noise in a body makes
    weak peaks there, and tiny gaps)."""
    pitch_at = _pitch_fn(pitch)
    peaks, fine, spread = endplate_peaks(profile, ds, sign)
    pos, score = [], []
    spans = [(n, n + 1) for n in range(len(peaks) - 1)]
    if sign < 0:
        spans += [(n, n + 2) for n in range(len(peaks) - 2)]
    for n, m in spans:
        a, b = peaks[n], peaks[m]
        gap = (b - a) * ds
        p = pitch_at((a + b) / 2.0 * ds)
        if not max(GAP_OF_PITCH[0], min_gap_of_pitch) * p <= gap <= GAP_OF_PITCH[1] * p:
            continue
        inner = float(np.min(fine[a: b + 1]))
        contrast = min(fine[a], fine[b]) - inner
        if contrast <= 0:
            continue
        if m == n + 2 and fine[peaks[n + 1]] - inner > SPLIT_DIP * contrast:
            continue  # the peak between is an endplate as strong as these: two discs, or a disc and a body
        strong = min(fine[a], fine[b]) - 0.5 * contrast
        before = [peaks[j] for j in range(n - 1, -1, -1) if fine[peaks[j]] >= strong][:1]
        after = [peaks[j] for j in range(m + 1, len(peaks)) if fine[peaks[j]] >= strong][:1]
        beside = [a - x for x in before] + [x - b for x in after]  # one side only at an end of the profile
        if beside and gap > 1.5 * max(beside) * ds:
            continue  # a disc is not much thicker than the gaps either side of it (those are bodies then)
        pos.append((a + b) / 2.0 * ds)
        score.append(contrast / spread)
    return pos, score


FILL_WINDOW_OF_PITCH = 0.3  # a filled disc lies within this of where the pitch puts it
FILL_MIN_GAP_OF_PITCH = 0.12  # its endplates are at least this far apart: a disc has height (an S1-S2 remnant, a
# thin line inside the sacrum, has hardly any)
FILL_MIN_SCORE = 0.03  # and the profile between them is at least this much (of the spread) above the endplates


def fill_gaps(profile: np.ndarray, ds: float, sign: float, pitch: Pitch, pos: list[float], score: list[float]
              ) -> tuple[list[float], list[float], int]:
    """Discs missing from ``pos`` where the pitch (mm, or a function of the position giving it) says one should be
    (see step 6 above): (positions, scores, how many were added). Interior holes are filled once; at each end of
    the column the search goes on a pitch at a time while a disc is found and the column goes on beyond it."""
    if not pos or not pitch:
        return list(pos), list(score), 0
    pitch_at = _pitch_fn(pitch)
    cand_pos, cand_score = endplate_pairs(profile, ds, pitch_at, sign, min_gap_of_pitch=FILL_MIN_GAP_OF_PITCH)
    cands = [(c, sc) for c, sc in zip(cand_pos, cand_score, strict=True) if sc >= FILL_MIN_SCORE]
    length = (len(profile) - 1) * ds
    out = sorted(zip(pos, score, strict=True))

    def best_near(target: float) -> tuple[float, float] | None:
        p = pitch_at(target)
        near = [c for c in cands if abs(c[0] - target) <= FILL_WINDOW_OF_PITCH * p
                and all(abs(c[0] - q) >= 0.6 * p for q, _ in out)]
        return max(near, key=lambda c: c[1]) if near else None

    added = 0
    for a, b in list(itertools.pairwise([q for q, _ in out])):
        p = pitch_at((a + b) / 2.0)
        if 1.6 * p <= b - a <= 2.5 * p and (hit := best_near((a + b) / 2.0)):
            out.append(hit)
            added += 1
    out.sort()
    for direction in (-1.0, 1.0):
        while True:
            end = out[0][0] if direction < 0 else out[-1][0]
            p = pitch_at(end)
            target = end + direction * p
            room = target if direction < 0 else length - target
            if room < 0.3 * p or (hit := best_near(target)) is None:
                break
            out.append(hit)
            out.sort()
            added += 1
    return [q for q, _ in out], [s for _, s in out], added


BAND_MIN_MM = 4.5  # half-maximum width of a faint disc's band: an S1-S2 remnant is a thinner line
BAND_OF_DISCS = 0.25  # a faint disc differs from the bodies around it by at least this part of what the found do
BAND_DOUBT_OF_DISCS = 0.1  # ... from this part, a band that wide is a doubt, not nothing
BAND_NOISE = 5.0  # and by at least this many times the profile's noise


def band_at(profile: np.ndarray, ds: float, target: float, pitch: float, window: float
            ) -> tuple[float, float, float] | None:
    """The band deviating most from the bodies around it within ``window`` mm of ``target``: (position mm,
    half-maximum width mm, signed deviation). "Around it" is the median of the profile over 0.6 pitch on either
    side, nearly all bone (discs are at most a third of a pitch). A disc band may be darker (degenerated, T2) or
    brighter (healthy) than the bodies."""
    fine = ndimage.gaussian_filter1d(profile, 1.0 / ds, mode="nearest")
    n = len(fine)
    lo, hi = max(0, round((target - window) / ds)), min(n - 1, round((target + window) / ds))
    b0, b1 = max(0, round((target - 0.6 * pitch) / ds)), min(n - 1, round((target + 0.6 * pitch) / ds))
    if hi - lo < 2 or b1 - b0 < 4:
        return None
    base = float(np.median(fine[b0: b1 + 1]))
    d = fine - base
    m = lo + int(np.argmax(np.abs(d[lo: hi + 1])))
    peak = float(d[m])
    if peak == 0.0:
        return None
    # the width on the profile as sampled: smoothing would widen a thin line (an S1-S2 remnant) to a disc's width
    inside = np.sign(peak) * (profile - base) >= abs(peak) / 2.0
    a = b = m
    while a > 0 and inside[a - 1]:
        a -= 1
    while b < n - 1 and inside[b + 1]:
        b += 1
    return m * ds, (b - a + 1) * ds, peak


def profile_noise(profile: np.ndarray) -> float:
    """Robust standard deviation of the profile's sample-to-sample noise."""
    diff = np.diff(profile)
    return float(1.4826 * np.median(np.abs(diff - np.median(diff))) / np.sqrt(2.0)) if diff.size else 0.0


def disc_contrast(profile: np.ndarray, ds: float, discs: list[float], pitch: Pitch) -> float:
    """Median deviation of the found discs from the bodies around them (the yardstick of :func:`faint_band`);
    ``pitch``: mm, or a function of the position giving it."""
    pitch_at = _pitch_fn(pitch)
    devs = [abs(hit[2]) for d in discs if (hit := band_at(profile, ds, d, pitch_at(d), 3.0)) is not None]
    return float(np.median(devs)) if devs else 0.0


def faint_band(profile: np.ndarray, ds: float, target: float, pitch: float, window: float, reference: float
               ) -> tuple[str, float, float]:
    """Whether a band like a disc's lies within ``window`` mm of ``target``: ("disc" | "doubt" | "none", position
    mm, signed deviation). "disc": at least BAND_MIN_MM wide and BAND_OF_DISCS of ``reference`` (the found discs'
    contrast); "doubt": as wide, but only BAND_DOUBT_OF_DISCS of it."""
    hit = band_at(profile, ds, target, pitch, window)
    if hit is None or reference <= 0:
        return "none", target, 0.0
    pos, width, dev = hit
    if width < BAND_MIN_MM or abs(dev) < BAND_NOISE * profile_noise(profile):
        return "none", pos, dev
    if abs(dev) >= BAND_OF_DISCS * reference:
        return "disc", pos, dev
    return ("doubt" if abs(dev) >= BAND_DOUBT_OF_DISCS * reference else "none"), pos, dev


def choose(pos: list[float], score: list[float], pitch: float, min_rel: float = 0.2
           ) -> tuple[list[float], list[float]]:
    """Greedy choice of the best-scoring candidates at least 0.6 pitch apart, in position order."""
    if not pos:
        return [], []
    order = np.argsort(score)[::-1]
    best = score[order[0]]
    kept: list[int] = []
    for n in order:
        if score[n] < min_rel * best:
            break
        if all(abs(pos[n] - pos[m]) >= 0.6 * pitch for m in kept):
            kept.append(int(n))
    kept.sort(key=lambda n: pos[n])
    return [pos[n] for n in kept], [score[n] for n in kept]


def _quality(pos: list[float], score: list[float], pitch: float) -> float:
    """Total score of the chosen discs, discounted when their spacing does not fit the pitch (one or two pitches)."""
    if not pos:
        return 0.0
    if len(pos) < 2:
        return 0.5 * sum(score)
    ratios = np.diff(pos) / pitch
    fit = np.mean([min(abs(r - 1.0), abs(r - 2.0)) < 0.25 for r in ratios])
    return float(sum(score) * (0.5 + 0.5 * fit))


def disc_quality(pos: list[float], score: list[float], pitch: float | None) -> float:
    """How convincing a set of discs is (the criterion :func:`find_discs` chooses the pitch by): their total score,
    discounted when their spacing does not fit the pitch."""
    return _quality(pos, score, pitch) if pitch else 0.0


def find_discs(profile: np.ndarray, ds: float, sign: float, pitch: float | None = None, bands: bool = True
               ) -> tuple[list[float], list[float], float | None]:
    """Disc positions (mm from the start of the profile), their scores (0..1) and the pitch used.

    Without a given pitch, each candidate (from the endplate gaps and the autocorrelation) is tried and the one
    whose discs are strongest and most regularly spaced wins. ``bands``: fall back on :func:`band_discs` when the
    endplates give too few discs (the CT labeller has its own fallback, the dips of the solid-bone profile).
    """
    if len(profile) < round(2 * PITCH_MM[0] / ds):
        return [], [], None
    if pitch is not None:
        cands = [pitch]
    else:
        cands = pitch_candidates(profile, ds)[:4]
        from_peaks = pitch_from_peaks(endplate_peaks(profile, ds, sign)[0], ds)
        if from_peaks:
            cands.append(from_peaks)
    best = ([], [], None, 0.0)
    for p in cands:
        pos, score = choose(*endplate_pairs(profile, ds, p, sign), p)
        q = _quality(pos, score, p)
        if q > best[3]:
            best = (pos, score, p, q)
    pos, score, p, _ = best
    p = p if p is not None else (cands[0] if cands else None)
    if bands and p is not None and len(pos) < 0.5 * len(profile) * ds / p - 1.0:
        band_pos, band_score = band_discs(profile, ds, p)  # endplates not resolved: the disc bands themselves
        if len(band_pos) > len(pos):
            pos, score = band_pos, band_score
    pos, score = _drop_offbeat(pos, score)
    return pos, [min(1.0, x) for x in score], p


WINDOW_MM = 180.0  # a whole-spine column is searched in windows this long (pitch 17-19 mm in the neck, ~37 low down)
MIN_SCORE_OF_BEST = 0.1  # a window's discs count when at least this part of the best anywhere (not junk in a window
# holding only the sacrum or the skull)


def find_discs_windowed(profile: np.ndarray, ds: float, sign: float
                        ) -> tuple[list[float], list[float], float | None, float]:
    """:func:`find_discs` for a column of any length: (positions, scores, median pitch, quality). The pitch grows
    down the spine, from 17-19 mm in the neck to 35-40 mm in the lumbar spine, so one pitch for a whole-spine
    column would miss the cervical discs (closer than the pitch allows) or the lumbar ones. A column longer than
    1.5 windows is searched in half-overlapping windows, each with its own pitch; a disc found by two windows is
    taken from the one in which it lies furthest from the edge."""
    length = (len(profile) - 1) * ds
    if length <= 1.5 * WINDOW_MM:
        pos, score, p = find_discs(profile, ds, sign)
        return pos, score, p, disc_quality(pos, score, p)
    n_win = int(np.ceil((length - WINDOW_MM) / (WINDOW_MM / 2.0))) + 1
    starts = np.linspace(0.0, length - WINDOW_MM, n_win)
    found, pitches, quality = [], [], 0.0
    spread = _fine(profile, ds, sign)[1]
    for a in starts:
        i0, i1 = round(a / ds), round((a + WINDOW_MM) / ds)
        pos, score, p = find_discs(profile[i0: i1 + 1], ds, sign)
        if p is None:
            continue
        pitches.append(p)
        quality += disc_quality(pos, score, p)
        # a window's scores are relative to its own spread: one holding only the sacrum or the skull, with little
        # contrast, rates its best noise as high as the discs of another; rescaled to the whole column's spread
        rescale = _fine(profile[i0: i1 + 1], ds, sign)[1] / spread if spread > 0 else 1.0
        for q, sc in zip(pos, np.asarray(score) * rescale, strict=True):
            edge = min(q, WINDOW_MM - q) if 0 < a < length - WINDOW_MM else (
                WINDOW_MM - q if a == 0 else q)  # the column's own ends are not window edges
            found.append((a + q, sc, edge, p))
    if not found:
        return [], [], (float(np.median(pitches)) if pitches else None), 0.0
    best = max(f[1] for f in found)
    found = sorted(f for f in found if f[1] >= MIN_SCORE_OF_BEST * best)
    kept: list[tuple] = []
    for f in found:
        if kept and f[0] - kept[-1][0] < 0.5 * min(f[3], kept[-1][3]):
            if f[2] > kept[-1][2]:
                kept[-1] = f
            continue
        kept.append(f)
    pos, score = _drop_offbeat([f[0] for f in kept], [f[1] for f in kept])
    return pos, score, float(np.median(pitches)), quality


OFFBEAT = 0.3  # a disc this far (in pitches) from a whole number of pitches from both its neighbours is off the beat


def _drop_offbeat(pos: list[float], score: list[float]) -> tuple[list[float], list[float]]:
    """Leaves out, weakest first, discs lying off the beat of the others: neither neighbour about a whole number of
    pitches away (the pitch there from the other discs). A window whose pitch went wrong (one holding mostly the
    sacrum, or faint degenerated discs) can find the middle of a body as a disc."""
    pos, score = list(pos), list(score)
    while len(pos) >= 4:
        worst = None
        for i in range(len(pos)):
            others = pos[:i] + pos[i + 1:]
            p = local_pitch(others, 0.0)(pos[i])
            ratios = [abs(pos[i] - pos[j]) / p for j in (i - 1, i + 1) if 0 <= j < len(pos)]
            off = all(r < 1.0 - OFFBEAT or abs(r - round(r)) > OFFBEAT for r in ratios)
            if off and score[i] < np.median(score) and (worst is None or score[i] < score[worst]):
                worst = i
        if worst is None:
            break
        del pos[worst], score[worst]
    return pos, score




def local_pitch(discs: list[float], fallback: float) -> Callable[[float], float]:
    """The pitch at each position along the column (a function of mm), from the spacing of the discs found: the
    median of the three disc-to-disc gaps nearest to it, leaving out gaps of about two pitches (a disc missed)."""
    gaps = np.diff(discs) if len(discs) >= 2 else np.array([])
    mids = (np.asarray(discs[:-1]) + np.asarray(discs[1:])) / 2.0 if gaps.size else np.array([])

    def pitch_at(s: float) -> float:
        if gaps.size == 0:
            return fallback
        near = np.argsort(np.abs(mids - s))[:3]
        g = gaps[near]
        g = g[g < 1.6 * g.min()]
        return float(np.median(g))

    return pitch_at


def band_discs(profile: np.ndarray, ds: float, pitch: float) -> tuple[list[float], list[float]]:
    """Discs as the extrema of the narrower phase of the band-passed profile (for images whose endplates are not
    resolved: discs are the thinner of the two alternating bands, bright or dark)."""
    fine = ndimage.gaussian_filter1d(profile, max(0.8, pitch / 14.0) / ds, mode="nearest")
    bp = fine - ndimage.gaussian_filter1d(profile, pitch / 2.5 / ds, mode="nearest")
    sign = 1.0 if np.mean(bp > 0) < 0.5 else -1.0
    spread = float(np.percentile(sign * bp, 95) - np.percentile(sign * bp, 5))
    if spread <= 0:
        return [], []
    peaks, props = signal.find_peaks(sign * bp, distance=max(1, int(0.6 * pitch / ds)), prominence=0.25 * spread)
    return [float(x) * ds for x in peaks], [float(x) / spread for x in props["prominences"]]
