"""From a detection (column, discs, segments) and anatomical anchors to a :class:`SpineLabelling`: shared by the
built-in CT and MR labellers.

Each segment between two discs is a vertebra; its centre is the column point half-way along its body (between its
endplates when the detection knows them, ``Detection.bodies``; for S1, 15 mm below its superior endplate: half an
S1 body, since the sacrum goes on far below; for C2, 0.8 pitch above the C2-C3 disc: the centre of its body and dens,
since the column may run on above it into the skull). Discs get the column point and tangent. The anchors are
reconciled (:func:`naming.reconcile`); without one the vertebrae stay unnamed and the message asks the user to name
one of them.
"""
from __future__ import annotations

import numpy as np

from core.spine.anatomy import STANDARD
from core.spine.autolabel.ct_column import Detection
from core.spine.autolabel.grid import IsoGrid
from core.spine.autolabel.naming import Anchor, names_from_anchor, reconcile
from core.spine.autolabel.refine import refine_centres
from core.spine.labelling import DiscLabel, Provenance, SpineLabelling, VertebraLabel

S1_OFFSET_MM = 15.0
# C2: body ~1.1 pitch tall (20-24 mm) with the narrower dens (~0.8 pitch) on it; the centre of that bone lies ~0.8
# pitch above the C2-C3 disc (the body outweighs the dens), wherever the segment above the disc ends (at most at its
# top).
C2_OFFSET_OF_PITCH = 0.8


def _s1_endplate(det: Detection, a: float) -> float:
    """S1's superior endplate: half the L5-S1 disc's height below its centre ``a`` (the centre itself when the
    height is not known)."""
    half = {round(s, 6): h / 2.0 for s, h in zip(det.disc_s, det.disc_height)}
    return a + half.get(round(a, 6), 0.0)


def build_labelling(det: Detection, grid: IsoGrid, anchors: list[Anchor], method: str, version: str,
                    anchor_words: str, refine: str | None = None) -> SpineLabelling:
    """``anchor_words`` names the anchors looked for, for the message ("sacrum, skull base with C2, or the last
    rib"); ``refine`` ('ct' or 'mr') moves the centres to the bodies' outlines (:mod:`refine`)."""
    anchor, config, notes = reconcile(anchors, STANDARD)
    n = len(det.segments)
    names: list[str | None] = [None] * n
    conf = [0.0] * n
    if anchor is not None:
        names, conf = names_from_anchor(n, anchor, config)
    col = det.column
    full = [b - a for a, b, partial in det.segments if not partial]
    pitch = float(np.median(full)) if full else (float(np.median(np.diff(det.disc_s))) if len(det.disc_s) > 1
                                                  else None)
    vertebrae = []
    for idx, (a, b, partial) in enumerate(det.segments):
        top, bottom = det.bodies[idx] if len(det.bodies) == n else (a, b)
        s_mid = (top + bottom) / 2.0
        if names[idx] == "S1":
            s_mid = min(b, _s1_endplate(det, a) + S1_OFFSET_MM)
            partial = False
        elif names[idx] == "C2" and pitch and idx + 1 < n:  # a C2 with the disc below it
            s_mid = max(a, b - C2_OFFSET_OF_PITCH * pitch)
            partial = False
        p = col.points[int(np.clip(round(s_mid / col.ds), 0, len(col.points) - 1))]
        vertebrae.append(VertebraLabel(names[idx], tuple(grid.to_patient(p)), round(conf[idx], 3), partial=partial))
    discs = []
    for s, depth in zip(det.disc_s, det.disc_depth):
        n_pt = int(np.clip(round(s / col.ds), 0, len(col.points) - 1))
        discs.append(DiscLabel(None, tuple(grid.to_patient(col.points[n_pt])),
                               tuple(grid.direction_to_patient(col.tangents[n_pt])), round(min(1.0, depth), 3)))
    labelling = SpineLabelling(
        vertebrae=vertebrae, discs=discs, configuration=config, provenance=Provenance(method, version),
        confidence=round(anchor.confidence, 3) if anchor else 0.0, anchor=anchor.name if anchor else None,
        notes=notes + det.notes,
    )
    if refine:
        moved = refine_centres(grid.source, labelling, refine, 50.0 if refine == "ct" else 0.0)
        labelling.notes.append(f"{moved} of {n} body centres refined on the body outline")
    labelling.discs = labelling.discs_named_from_vertebrae()
    found = f"{n} vertebrae ({sum(v.partial for v in vertebrae)} cut by the field of view) and {len(discs)} discs"
    if anchor is None:
        labelling.message = (f"Found {found}, but no anatomical anchor ({anchor_words}) is in the field of view: the "
                             "vertebrae are not named. Name one vertebra to label the others.")
    else:
        labelling.message = (f"Found {found}; named from the {anchor.evidence}, confidence "
                             f"{anchor.confidence:.2f}. Please confirm the levels.")
    return labelling
