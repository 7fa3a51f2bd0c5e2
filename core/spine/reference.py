"""Reference level positions from a label map (VerSe/TPTBox, TotalSegmentator, SCT numberings).

Whole-vertebra masks (VerSe, TotalSegmentator) include the posterior elements, whose centre of mass lies 10-15 mm
behind the vertebral body centre that labellers (and VerSe's centroid files) report. So by default the reference
point is the centre of the part of the mask in front of the spinal canal: in each axial slice the canal is the hole
the vertebral ring encloses; what lies anterior to the canal's front edge is the body. When no canal is enclosed
(a mask cut by the field of view) the whole-mask centre is used and a note says so.

With ``canal_from_neighbours`` (off by default: the committed benchmark data were made without it) the canal's front
line is fitted robustly (a hole inside the body's mask, where the ring is open, is not the canal), and a vertebra
whose own mask encloses no canal (cut by the field of view below its pedicles: lower body, inferior articular and
spinous processes, whose whole-mask centre lies 15-20 mm behind the body) takes the canal line of the nearest
vertebrae of the same map, since the canal runs on from one vertebra to the next.

SCT labels are painted on the spinal cord: their positions are only meaningful along the spine's long axis.
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


def reference_from_labelmap(labelmap: Volume, numbering: Numbering, body_only: bool = True,
                            canal_from_neighbours: bool = False) -> ReferenceSet:
    vol = labelmap.as_closest_lps()
    data = np.rint(np.asarray(vol.data)).astype(np.int32) if vol.data.dtype.kind == "f" else np.asarray(vol.data)
    values = [int(v) for v in np.unique(data) if v != 0]
    config = configuration_from_values(numbering, values)
    out = ReferenceSet(points={}, on_cord=numbering.on_cord, configuration=config)
    objects = ndimage.find_objects(data.astype(np.int32)) if values else []
    spacing = np.asarray(vol.spacing)
    found: dict[str, tuple[float, float, float]] = {}
    bodies = []  # (name, mask, box origin, canal fronts (k, j) in box voxels)
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
        bodies.append((meaning.name, mask, origin, _canal_fronts(mask, spacing)))
    for name, mask, origin, fronts in bodies:
        k_idx = np.arange(mask.shape[2])
        line = _front_line(fronts, canal_from_neighbours)  # in the mask's box
        front, how = (np.polyval(line, k_idx) if line is not None else None), "own"
        if line is None and canal_from_neighbours:  # cut by the field of view: the nearest vertebrae's canal line
            line = _neighbours_line(origin, mask.shape[2], bodies)  # in the whole map
            front, how = (np.polyval(line, origin[2] + k_idx) - origin[1] if line is not None else None), "neighbours"
        ijk = _body_centre(mask, front) if front is not None else None
        if ijk is None:
            out.notes.append(f"{name}: no spinal canal enclosed by the mask; whole-mask centre used")
            ijk = np.array(ndimage.center_of_mass(mask))
        elif how == "neighbours":
            out.notes.append(f"{name}: no spinal canal enclosed by its mask (cut by the field of view); body taken "
                             "in front of the canal line of the nearest vertebrae")
        found[name] = tuple(vol.voxel_to_patient(origin + ijk))
    order = {name: i for i, name in enumerate(config.vertebrae)}
    out.points = dict(sorted(found.items(), key=lambda kv: order.get(kv[0], 99)))
    if body_only and not numbering.on_cord:
        out.notes.insert(0, "reference points: vertebral-body centres (mask anterior to the spinal canal)")
    return out


def _canal_fronts(mask: np.ndarray, spacing: np.ndarray) -> list[tuple[int, int]]:
    """(k, j of the canal's front edge) in each axial slice where the mask encloses a canal; box voxels, LPS axes."""
    min_voxels = _MIN_CANAL_MM2 / (spacing[0] * spacing[1])
    out = []
    for k in range(mask.shape[2]):
        sl = mask[:, :, k]
        if sl.sum() < 4 * min_voxels:
            continue
        holes = ndimage.binary_fill_holes(sl) & ~sl
        if holes.sum() < min_voxels:
            continue
        labels, _n = ndimage.label(holes)
        sizes = np.bincount(labels.ravel())[1:]
        if sizes.max() < min_voxels:
            continue
        canal = labels == (1 + int(np.argmax(sizes)))
        out.append((k, int(np.nonzero(canal.any(axis=0))[0].min())))  # smallest j = most anterior (LPS: +j posterior)
    return out


def _front_line(fronts: list[tuple[float, float]], robust: bool = True) -> np.ndarray | None:
    """j of the canal's front edge as a line in k, from at least two slices. ``robust``: median of the pairwise
    slopes, then of the intercepts (a hole inside the body's mask in a slice where the ring is open is not the
    canal); else least squares."""
    if len(fronts) < 2:
        return None
    ks, js = np.array(fronts, dtype=float).T
    if not robust:
        return np.polyfit(ks, js, 1) if len(set(ks)) > 1 else np.array([0.0, float(np.median(js))])
    dk = ks[None, :] - ks[:, None]
    pairs = np.abs(dk) > 0
    slope = float(np.median(((js[None, :] - js[:, None])[pairs]) / dk[pairs])) if pairs.any() else 0.0
    return np.array([slope, float(np.median(js - slope * ks))])


def _neighbours_line(origin: np.ndarray, depth: int, bodies: list) -> np.ndarray | None:
    """The canal line, in whole-map voxels, of the (up to two) vertebrae nearest along k that enclose a canal."""
    centre_k = origin[2] + depth / 2.0
    others = [[(k + o[2], j + o[1]) for k, j in f] for _name, _m, o, f in bodies if len(f) >= 2]
    others.sort(key=lambda f: min(abs(k - centre_k) for k, _j in f))
    return _front_line([p for f in others[:2] for p in f])


def _body_centre(mask: np.ndarray, front: np.ndarray) -> np.ndarray | None:
    """Centre (voxel, in the mask's box) of the part of a vertebra mask anterior to the canal's front edge ``front``
    (j per slice k of the box); None when that part is too small to be the body."""
    j_idx = np.arange(mask.shape[1])
    body = mask & (j_idx[None, :, None] < front[None, None, :])
    if body.sum() < 0.1 * mask.sum():
        return None
    return np.array(ndimage.center_of_mass(body))


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
