"""The radiograph's levels as a vertebral labelling (:class:`~core.spine.labelling.SpineLabelling`), so the
consultation and the report name the same levels as the landmarks: T1 to L5 at each vertebra's centre (the mean of
its four corners), and a disc between each pair (the midpoint of the upper vertebra's inferior endplate and the lower
one's superior endplate, its normal pointing to the upper vertebra). Positions are the patient coordinates the
viewer gives the image plane.

The names come from counting: the landmark model always finds 17 vertebrae, T1 to L5, so a spine with 11 or 13
rib-bearing vertebrae (or a lumbosacral transition) is named one off. The labelling says so in its message, and
its naming confidence stays below that of a labelling anchored on an identified vertebra.
"""
from __future__ import annotations

import numpy as np

from core.spine.labelling import DiscLabel, Provenance, SpineLabelling, VertebraLabel
from core.xray.levels import LEVELS, N_VERTEBRAE

NAMING_CONFIDENCE = 0.7
MESSAGE = ("Levels T1-L5 named by counting the 17 vertebrae of the radiograph's landmarks, top down; check the count "
           "(11 or 13 rib-bearing vertebrae, or a transitional vertebra, shift every name).")


def labelling_from_landmarks(landmarks, volume, method: str, series_uid: str = "") -> SpineLabelling:
    """``landmarks`` (68, 2) image pixels (pixel centres at +0.5), ``volume`` the radiograph (a single-slice
    Volume), ``method`` the landmarks' provenance (``auto:<model>@<version>`` or ``user:<name>``)."""
    pts = np.asarray(landmarks, float).reshape(N_VERTEBRAE, 4, 2)

    def patient(xy):
        xy = np.asarray(xy, float)
        return volume.voxel_to_patient(np.array([xy[0] - 0.5, xy[1] - 0.5, 0.0]))

    centres = [patient(v.mean(axis=0)) for v in pts]
    vertebrae = [VertebraLabel(name, c) for name, c in zip(LEVELS, centres)]
    discs = []
    for v in range(N_VERTEBRAE - 1):
        mid = (pts[v, 2:].mean(axis=0) + pts[v + 1, :2].mean(axis=0)) / 2
        discs.append(DiscLabel(f"{LEVELS[v]}-{LEVELS[v + 1]}", patient(mid), centres[v] - centres[v + 1]))
    kind, _, rest = method.partition(":")
    if kind == "user":
        prov = Provenance("user", user=rest or "user", based_on="spinemed-xray-landmarks")
    else:
        name, _, version = rest.partition("@")
        prov = Provenance(name or "spinemed-xray-landmarks", version)
    return SpineLabelling(vertebrae, discs, prov, series_uid=series_uid or getattr(volume, "series_uid", ""),
                          confidence=NAMING_CONFIDENCE, anchor=None, message=MESSAGE)


def from_radiograph(labelling: SpineLabelling | None) -> bool:
    """True for a labelling made by :func:`labelling_from_landmarks` (replaced when the landmarks change)."""
    return labelling is not None and labelling.message == MESSAGE
