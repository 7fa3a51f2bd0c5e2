"""Reference level positions from a label map (VerSe/TPTBox, TotalSegmentator, SCT numberings).

Whole-vertebra masks (VerSe, TotalSegmentator) include the posterior elements, whose centre of mass lies 10-15 mm
behind the vertebral body centre that labellers (and VerSe's centroid files) report. So by default the reference
point is the centre of the part of the mask in front of the spinal canal: in each axial slice the canal is the hole
the vertebral ring encloses; what lies anterior to the canal's front edge is the body. When no canal is enclosed
(a mask cut by the field of view) the whole-mask centre is used and a note says so. SCT labels are painted on the
spinal cord: their positions are only meaningful along the spine's long axis.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from core.spine.anatomy import SpineConfiguration
from core.spine.numbering import Numbering, configuration_from_values
from core.studies.volume import Volume

_MIN_CANAL_MM2 = 20.0


@dataclass
class ReferenceSet:
    points: dict[str, tuple[float, float, float]]  # vertebra name -> LPS mm, in spine order
    on_cord: bool = False
    configuration: SpineConfiguration = field(default_factory=SpineConfiguration)
    discs: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def reference_from_labelmap(labelmap: Volume, numbering: Numbering, body_only: bool = True) -> ReferenceSet:
    vol = labelmap.as_closest_lps()
    data = np.rint(np.asarray(vol.data)).astype(np.int32) if vol.data.dtype.kind == "f" else np.asarray(vol.data)
    values = [int(v) for v in np.unique(data) if v != 0]
    config = configuration_from_values(numbering, values)
    out = ReferenceSet(points={}, on_cord=numbering.on_cord, configuration=config)
    objects = ndimage.find_objects(data.astype(np.int32)) if values else []
    spacing = np.asarray(vol.spacing)
    found: dict[str, tuple[float, float, float]] = {}
    for value in values:
        meaning = numbering.decode(value, config)
        if meaning is None or meaning.kind not in ("vertebra", "disc") or value > len(objects) or not objects[value - 1]:
            continue
        box = objects[value - 1]
        mask = data[box] == value
        origin = np.array([s.start for s in box], dtype=float)
        if meaning.kind == "disc" or numbering.on_cord or not body_only:
            ijk = origin + np.array(ndimage.center_of_mass(mask))
            target = out.discs if meaning.kind == "disc" else found
            target[meaning.name] = tuple(vol.voxel_to_patient(ijk))
            continue
        ijk, used_body = _body_centre(mask, spacing)
        if not used_body:
            out.notes.append(f"{meaning.name}: no spinal canal enclosed by the mask; whole-mask centre used")
        found[meaning.name] = tuple(vol.voxel_to_patient(origin + ijk))
    order = {name: i for i, name in enumerate(config.vertebrae)}
    out.points = dict(sorted(found.items(), key=lambda kv: order.get(kv[0], 99)))
    if body_only and not numbering.on_cord:
        out.notes.insert(0, "reference points: vertebral-body centres (mask anterior to the spinal canal)")
    return out


def _body_centre(mask: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, bool]:
    """Centre (voxel, in the mask's box) of the part of a vertebra mask anterior to its canal; LPS-ordered axes."""
    min_voxels = _MIN_CANAL_MM2 / (spacing[0] * spacing[1])
    ks, fronts = [], []
    for k in range(mask.shape[2]):
        sl = mask[:, :, k]
        if sl.sum() < 4 * min_voxels:
            continue
        holes = ndimage.binary_fill_holes(sl) & ~sl
        if holes.sum() < min_voxels:
            continue
        labels, _n = ndimage.label(holes)
        sizes = np.bincount(labels.ravel())[1:]
        canal = labels == (1 + int(np.argmax(sizes)))
        if sizes.max() < min_voxels:
            continue
        ks.append(k)
        fronts.append(np.nonzero(canal.any(axis=0))[0].min())  # smallest j = most anterior (LPS: +j posterior)
    if len(ks) < 2:
        return np.array(ndimage.center_of_mass(mask)), False
    fit = np.polyfit(ks, fronts, 1) if len(set(ks)) > 1 else np.array([0.0, float(np.median(fronts))])
    k_idx = np.arange(mask.shape[2])
    front = np.polyval(fit, k_idx)
    j_idx = np.arange(mask.shape[1])
    anterior = j_idx[None, :, None] < front[None, None, :]
    body = mask & anterior
    if body.sum() < 0.1 * mask.sum():
        return np.array(ndimage.center_of_mass(mask)), False
    return np.array(ndimage.center_of_mass(body)), True


def verse_centroid_json(doc: list, volume: Volume) -> dict[str, tuple[float, float, float]]:
    """VerSe ``*_ctd.json`` (voxel indices in the file's own axis order) -> name -> LPS mm, using the image grid.

    ``volume`` must be the image or mask the centroids were made on (as loaded, before any reorientation).
    """
    from core.spine.numbering import get_numbering

    verse = get_numbering("verse")
    out = {}
    for entry in doc:
        if "label" not in entry:
            continue
        name = verse.name_of(entry["label"])
        if name:
            out[name] = tuple(volume.voxel_to_patient([entry["X"], entry["Y"], entry["Z"]]))
    return out
