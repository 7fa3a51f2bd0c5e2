"""Anatomical anchors on MR that fix the names of detected vertebrae (see :mod:`mr_column` for the detection).

- C2: the pitch is cervical (<= 24 mm, from at least two discs) and above the highest disc the column goes on for at
  least 1.6 pitches without another disc, not even a faint one about a pitch up. C2 is one bone, its body taller than
  the C3-C7 bodies and the dens rising from it into the C1 ring (35-40 mm in adults, about two cervical pitches); C1
  has no body and no disc, and above the dens comes the skull base. No other cervical vertebra spans more than about
  one pitch between two discs, so the vertebra under such a stretch is C2. Whether the canal trace goes on into the
  skull (the cisterna magna is as bright as the canal on T2) or the image ends does not matter; what counts is the
  disc-free stretch the column was followed over. Confidence is higher when the stretch goes on beyond where the dens
  ends (>= 2.4 pitches: the column has ended). Not told apart: a C2-C3 block vertebra (congenital or fused), or a
  missed C2-C3 disc on a field of view whose top is lower; hence the modest confidence.
- Sacrum: the column ends inside the field of view at the bottom or runs out of it, the pitch is lumbar (>= 25 mm),
  the segment below the lowest disc is longer than 1.6 pitches without another disc, and the column turns
  backwards there by more than 15 degrees (sacral kyphosis). Named S1. Not when the detection left a doubtful band
  about a pitch below the lowest disc (:func:`mr_column._faint_bands`): a faint degenerated L5-S1 disc missed
  there would make L5 and the sacrum look like one long S1 and shift every name by one.

Anything less is not an anchor: the vertebrae are then left unnamed and the user is asked to name one.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from core.spine.autolabel.ct_column import Detection
from core.spine.autolabel.naming import Anchor

C2_MIN_OF_PITCH = 1.6  # C2 (body and dens) spans ~2 cervical pitches; a C3-C7 body with its discs spans 1
C2_BEYOND_OF_PITCH = 2.4  # past the dens tip: the column of bodies has ended (C1 ring, skull base)
FAINT_DISC = 0.4  # a band-pass swing this large relative to the discs found, a pitch above the highest: a disc


def c2(det: Detection, facts: dict) -> Anchor | None:
    pitch = facts.get("pitch_top", facts.get("pitch"))
    if not pitch or pitch > 24.0 or len(det.disc_s) < 2 or not det.segments:
        return None
    a, b, _ = det.segments[0]
    top = det.disc_s[0]
    if abs(b - top) > 1e-6 or top - a < C2_MIN_OF_PITCH * pitch:
        return None
    if _faint_disc_above(det, pitch):
        return None
    stretch = top - a
    conf = 0.7 if stretch >= C2_BEYOND_OF_PITCH * pitch else 0.6
    return Anchor(0, "C2", conf, f"tall top vertebra (no disc for {stretch:.0f} mm above the highest one, "
                                 f"{stretch / pitch:.1f} pitches: C2 with its dens)")


def _faint_disc_above(det: Detection, pitch: float) -> bool:
    """Whether the profile swings, 0.6-1.4 pitches above the highest disc, like the discs found do (band-pass of the
    body/disc profile, same sign): a disc missed there would make two vertebrae look like one tall C2."""
    col = det.column
    prof = col.profile
    fine = ndimage.gaussian_filter1d(prof, max(0.8, pitch / 14.0) / col.ds, mode="nearest")
    bp = fine - ndimage.gaussian_filter1d(prof, pitch / 2.5 / col.ds, mode="nearest")
    at = np.clip(np.round(np.asarray(det.disc_s) / col.ds).astype(int), 0, len(prof) - 1)
    sign = 1.0 if np.median(bp[at]) >= 0 else -1.0
    level = float(np.median(sign * bp[at]))
    if level <= 0:
        return False
    lo = max(0, round((det.disc_s[0] - 1.4 * pitch) / col.ds))
    hi = max(0, round((det.disc_s[0] - 0.6 * pitch) / col.ds))
    window = sign * bp[lo: hi + 1]
    return bool(window.size) and float(window.max()) >= FAINT_DISC * level


def sacrum(det: Detection, facts: dict) -> Anchor | None:
    pitch = facts.get("pitch_bottom", facts.get("pitch"))
    if not pitch or pitch < 25.0 or not det.disc_s or not det.segments:
        return None
    a, b, _ = det.segments[-1]
    if abs(a - det.disc_s[-1]) > 1e-6 or b - a < 1.6 * pitch:
        return None
    col = det.column
    n_disc = round(a / col.ds)
    n_end = len(col.points) - 1
    above = col.tangents[max(0, n_disc - int(pitch / col.ds))]
    below = col.tangents[min(n_end, n_disc + int(1.2 * pitch / col.ds))]
    # tangents point cranially; the sacrum tilts back: going down, the column moves posteriorly (+j)
    turn = np.degrees(np.arctan2(-below[1], below[2]) - np.arctan2(-above[1], above[2]))
    if turn < 15.0:
        return None
    if facts.get("doubt_below_mm") is not None:  # only said where the sacrum would otherwise have named the levels
        gap = facts["doubt_below_mm"] - det.disc_s[-1]
        det.notes.append(f"a faint band {gap:.0f} mm below the lowest disc found may be a degenerated disc (such "
                         "as L5-S1) or the S1-S2 remnant: the sacrum is not used to name the levels")
        return None
    return Anchor(len(det.segments) - 1, "S1", 0.65, f"sacrum (no disc for {b - a:.0f} mm below the lowest one, "
                                                     f"column turning backwards by {turn:.0f} degrees)")
