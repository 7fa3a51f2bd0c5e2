"""The one way to turn a label map (VerSe, TotalSegmentator or SCT numbering) into a labelling: the Levels panel's
"Load labels from label map…", ``spinemed report --labelmap`` and the TotalSegmentator backend all use it, so the
same map gives the same levels everywhere.

Safe in a worker thread. Vertebra positions are the body centres of :mod:`core.spine.reference`; a
vertebra whose mask touches the edge of the label map is marked partial. Discs come from the map when it has disc
labels (VerSe); otherwise they are placed midway between adjacent vertebrae, and a note says so.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from scipy import ndimage

from core.spine.labelling import DiscLabel, Provenance, SpineLabelling, VertebraLabel
from core.spine.numbering import NUMBERINGS, Numbering, get_numbering
from core.spine.reference import reference_from_labelmap
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn, check, report

ORDER_SLACK_MM = 10.0  # a lower vertebra may lie this much above the one over it (lying patient, scoliosis)
MAX_NEIGHBOUR_GAP_MM = 70.0  # adjacent lumbar body centres are about 35-40 mm apart

# The choices offered to the user, most common first.
NUMBERING_CHOICES = ("totalseg", "verse", "sct", "totalseg_v1", "totalseg_vertebrae_mr", "totalseg_vertebrae_pp")


class LabelMapError(Exception):
    """The label map cannot give levels for this image; the message is for the user."""


def guess_numbering(path: str | Path) -> str:
    """A default numbering from the file name (the user confirms it)."""
    name = Path(path).name.lower()
    if "sct" in name or "labels_disc" in name or "vertlevel" in name:
        return "sct"
    if "verse" in name or "tptbox" in name or "msk" in name:
        return "verse"
    return "totalseg"


def numbering_titles() -> list[tuple[str, str]]:
    """(key, title) of the numberings offered, in menu order."""
    return [(key, NUMBERINGS[key].title) for key in NUMBERING_CHOICES if key in NUMBERINGS]


def labelling_from_labelmap(
    path: str | Path,
    numbering: str = "totalseg",
    series_uid: str = "",
    volume: Volume | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> SpineLabelling:
    """Read ``path`` and name its vertebrae with ``numbering``; ``volume`` (the open image) is used to check that
    the label map lies on it. Raises LabelMapError with a readable reason."""
    from core.library.opener import load_volume

    path = Path(path)
    report(progress, 0.05, f"Reading {path.name}")
    try:
        labelmap, _warnings = load_volume(path, cancel=cancel)
    except Exception as exc:  # any reader error becomes one message
        raise LabelMapError(f"cannot read {path.name} as a label map: {exc}") from exc
    check(cancel)
    report(progress, 0.4, "Finding the vertebrae")
    labelling = labelling_from_volume(labelmap, numbering, series_uid, volume, source=path.name)
    report(progress, 1.0, "Labels loaded")
    return labelling


def labelling_from_volume(
    labelmap: Volume,
    numbering: str = "totalseg",
    series_uid: str = "",
    volume: Volume | None = None,
    source: str = "label map",
    provenance: Provenance | None = None,
    confidence: float = 1.0,
) -> SpineLabelling:
    """A label map already in memory (``source`` names it in messages and mask references). ``provenance`` and
    ``confidence`` default to a reference labelling; a segmentation backend passes its own."""
    num = get_numbering(numbering)
    reference = reference_from_labelmap(labelmap, num)
    if not reference.points:
        raise LabelMapError(f"no vertebra labels of the {num.title} numbering in {source}")
    problem = _not_a_spine(reference.points, reference.configuration)
    if problem:
        raise LabelMapError(f"the {num.title} labels of {source} do not line up along a spine ({problem}): "
                            "is this the right numbering?")
    partial = _partial_names(labelmap, num, reference.configuration)
    vertebrae = [VertebraLabel(name, point, confidence, mask_ref=f"{source}#{num.encode(name)}",
                               partial=name in partial)
                 for name, point in reference.points.items()]
    notes = list(reference.notes)
    if reference.discs:
        discs = [DiscLabel(name, centre, _disc_normal(name, reference.points, reference.configuration))
                 for name, centre in reference.discs.items()]
    else:
        discs = _midway_discs(reference.points, reference.configuration)
        if discs:
            notes.append("disc centres placed midway between adjacent vertebral bodies (no disc labels in the map)")
    if num.on_cord:
        notes.append("SCT labels lie on the spinal cord: the markers sit on the cord, behind the vertebral bodies")
    message = f"{len(vertebrae)} vertebrae from {source} ({num.title})"
    if volume is not None:
        outside = _outside(volume, reference.points)
        if len(outside) == len(vertebrae):
            raise LabelMapError(f"{source} does not lie on this image: no labelled vertebra is inside it "
                                "(another study, or another position)")
        if outside:
            message += f"; outside this image: {', '.join(outside)}"
    return SpineLabelling(
        vertebrae=vertebrae, discs=discs,
        provenance=provenance or Provenance("reference", version=f"{source}, {num.key} numbering"),
        configuration=reference.configuration, series_uid=series_uid, confidence=confidence,
        anchor=vertebrae[0].name, message=message, notes=notes,
    )


def _not_a_spine(points: dict, config) -> str:
    """Why these named points cannot be a spine, or "" (a wrong numbering turns organ labels into 'vertebrae')."""
    names = list(points)
    for upper, lower in itertools.pairwise(names):
        a, b = np.asarray(points[upper]), np.asarray(points[lower])
        if b[2] > a[2] + ORDER_SLACK_MM:
            return f"{lower} lies {b[2] - a[2]:.0f} mm above {upper}"
        adjacent = config.index(lower) - config.index(upper) == 1
        if adjacent and np.linalg.norm(a - b) > MAX_NEIGHBOUR_GAP_MM:
            return f"{upper} and {lower} are {np.linalg.norm(a - b):.0f} mm apart"
    return ""


def _partial_names(labelmap: Volume, num: Numbering, config) -> set[str]:
    values = {}
    for value in _label_values(labelmap):
        meaning = num.decode(value, config)
        if meaning is not None and meaning.kind == "vertebra":
            values.setdefault(meaning.name, value)
    return set(partial_vertebrae(labelmap, values))


def _label_values(labelmap: Volume) -> list[int]:
    data = np.asarray(labelmap.data)
    return [int(v) for v in np.unique(np.rint(data) if data.dtype.kind == "f" else data) if v > 0]


def partial_vertebrae(labelmap: Volume, label_values: dict[str, int]) -> list[str]:
    """The vertebrae (name -> label value) whose mask touches the border of the label map: cut by the field of
    view. A disc name (with a hyphen) is never partial here."""
    data = np.asarray(labelmap.data)
    if data.dtype.kind == "f":
        data = np.rint(data)
    data = data.astype(np.int32)
    boxes = ndimage.find_objects(data)
    out = []
    for name, value in label_values.items():
        box = boxes[value - 1] if "-" not in name and 0 < value <= len(boxes) else None
        if box and any(s.start == 0 or s.stop == n for s, n in zip(box, data.shape) if n > 1):
            out.append(name)
    return out


def _midway_discs(points: dict, config) -> list[DiscLabel]:
    names = list(points)
    out = []
    for upper, lower in itertools.pairwise(names):
        try:
            disc = config.disc_between(upper, lower)
        except ValueError:
            continue
        a, b = np.asarray(points[upper]), np.asarray(points[lower])
        out.append(DiscLabel(disc, (a + b) / 2.0, a - b, confidence=0.5))
    return out


def _disc_normal(disc: str, points: dict, config) -> np.ndarray:
    """Cranial direction at a disc: from the vertebra below to the one above when both are known."""
    try:
        upper, lower = config.vertebrae_of_disc(disc)
    except ValueError:
        return np.array([0.0, 0.0, 1.0])
    if upper in points and lower in points:
        return np.asarray(points[upper]) - np.asarray(points[lower])
    return np.array([0.0, 0.0, 1.0])


def _outside(volume: Volume, points: dict) -> list[str]:
    shape = np.asarray(volume.shape, dtype=float)
    out = []
    for name, point in points.items():
        ijk = volume.patient_to_voxel(point)
        if np.any(ijk < -0.5) or np.any(ijk > shape - 0.5):
            out.append(name)
    return out
