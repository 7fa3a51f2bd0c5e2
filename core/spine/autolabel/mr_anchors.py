"""Anatomical anchors on MR that fix the names of detected vertebrae (see :mod:`mr_column` for the detection).

- C2: the column ends inside the field of view (at the skull base, the alternation of bodies and discs stops while
  the image goes on above for at least 10 mm), the pitch is cervical (<= 24 mm), and the vertebra above the highest
  disc is much taller than the pitch (C2 with its dens reaching up into the C1 ring: >= 1.6 pitches). Named C2.
- Sacrum: the column ends inside the field of view at the bottom or runs out of it, the pitch is lumbar (>= 25 mm),
  the segment below the lowest disc is longer than 1.6 pitches without another disc, and the column turns
  backwards there by more than 15 degrees (sacral kyphosis). Named S1.

Anything less is not an anchor: the vertebrae are then left unnamed and the user is asked to name one.
"""
from __future__ import annotations

import numpy as np

from core.spine.autolabel.ct_column import Detection
from core.spine.autolabel.naming import Anchor


def c2(det: Detection, facts: dict) -> Anchor | None:
    pitch = facts.get("pitch")
    if not pitch or pitch > 24.0 or not det.disc_s or not det.segments:
        return None
    a, b, _ = det.segments[0]
    if abs(b - det.disc_s[0]) > 1e-6 or facts.get("top_gap_mm", 0.0) < 10.0:
        return None
    if b - a < 1.6 * pitch:
        return None
    return Anchor(0, "C2", 0.6, "top of the column inside the field of view (skull base) above a tall vertebra "
                                "(C2 with its dens)")


def sacrum(det: Detection, facts: dict) -> Anchor | None:
    pitch = facts.get("pitch")
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
    return Anchor(len(det.segments) - 1, "S1", 0.65, f"sacrum (no disc for {b - a:.0f} mm below the lowest one, "
                                                     f"column turning backwards by {turn:.0f} degrees)")
