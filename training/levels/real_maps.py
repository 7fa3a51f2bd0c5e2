"""Real vertebra label maps (VerSe / TPTBox, TotalSegmentator) turned into tissue maps to synthesise from.

A vertebra mask is split into its body (in front of the canal: the reference body centre of
:func:`core.spine.reference.reference_from_labelmap` and as far behind it as the body reaches in front) with a
cortical rim, and its posterior elements; discs are the mask's own disc labels (TPTBox 100+X) or, when the map has
none (VerSe), the space between two consecutive bodies; the hole each ring encloses in an axial slice is canal;
everything else in the map's field of view is soft tissue, and beyond it air. Resampled to the 2 mm grid
(nearest neighbour), axes towards L, P, S, with the same answers as a synthetic spine (body and disc centres,
anchor classes).
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from scipy import ndimage

from core.spine.numbering import configuration_from_values, get_numbering
from core.spine.reference import reference_from_labelmap
from core.studies.volume import Volume
from training.levels import spine_model as sm


class RealMapError(ValueError):
    """A real label map that cannot be used; the message names the file."""


def load_real_maps(specs: list[str]) -> list[sm.SpineLabelMap]:
    out = []
    for spec in specs:
        path, _, numbering = spec.rpartition(":")
        if not path:
            raise RealMapError(f"{spec}: expected PATH:NUMBERING (verse or totalseg)")
        out.append(real_label_map(Path(path), numbering))
    return out


def real_label_map(path: Path, numbering_key: str, step: float = sm.STEP) -> sm.SpineLabelMap:
    from core.library.opener import load_volume
    from core.studies import StudyLoadError

    try:
        vol, _ = load_volume(path)
    except StudyLoadError as exc:
        raise RealMapError(f"{path}: {exc}") from None
    return from_volume(vol, numbering_key, step, str(path))


def from_volume(labelmap: Volume, numbering_key: str, step: float = sm.STEP, source: str = "") -> sm.SpineLabelMap:
    numbering = get_numbering(numbering_key)
    ref = reference_from_labelmap(labelmap, numbering, canal_from_neighbours=True)
    if len(ref.points) < 2:
        raise RealMapError(f"{source}: fewer than two vertebrae of the {numbering_key} numbering")
    lps = labelmap.as_closest_lps()
    data = np.rint(np.asarray(lps.data)).astype(np.int32)
    zoom = np.asarray(lps.spacing) / step
    lab = ndimage.zoom(data, zoom, order=0)
    # grid voxel -> source voxel: i_src = i / zoom (nearest sampling keeps the corners aligned closely enough)
    affine = lps.affine.copy()
    affine[:3, :3] = lps.affine[:3, :3] / zoom
    values = [int(v) for v in np.unique(lab) if v]
    config = configuration_from_values(numbering, values)
    tissue = np.full(lab.shape, sm.MUSCLE, dtype=np.uint8)
    region = np.zeros(lab.shape, dtype=np.uint8)
    inv = np.linalg.inv(affine)

    def to_grid(p):
        return np.asarray(p, dtype=float) @ inv[:3, :3].T + inv[:3, 3]

    centres, half_width, bodies = {}, {}, {}
    bone = np.zeros(lab.shape, dtype=bool)
    for v in values:
        meaning = numbering.decode(v, config)
        if meaning is None:
            continue
        mask = lab == v
        if meaning.kind == "disc":
            tissue[mask] = sm.ANNULUS
            continue
        if meaning.kind != "vertebra":
            if meaning.name == "sacrum":
                tissue[mask] = sm.MARROW
                region[mask] = 5
                bone |= mask
            continue
        name = meaning.name
        bone |= mask
        if name not in ref.points or name == "C1":
            tissue[mask] = sm.POSTERIOR
            continue
        c = to_grid(ref.points[name])
        jj = np.nonzero(mask)[1]
        j_front = jj.min() if jj.size else c[1]
        body = mask.copy()
        body[:, int(np.ceil(c[1] + (c[1] - j_front))) + 1:, :] = False
        tissue[mask] = sm.POSTERIOR
        rim = body & ~ndimage.binary_erosion(body)
        tissue[body] = sm.MARROW
        tissue[rim] = sm.CORTEX
        region[body] = sm.region_of(name)
        centres[name] = c
        ii = np.nonzero(body)[0]
        half_width[name] = float((ii.max() - ii.min() + 1) / 2) if ii.size else 8.0
        bodies[name] = body
    # canal: holes enclosed by the bone in axial slices
    for k in range(lab.shape[2]):
        sl = bone[:, :, k]
        if sl.any():
            holes = ndimage.binary_fill_holes(sl) & ~sl
            tissue[:, :, k][holes] = sm.CSF
    # discs between consecutive bodies when the map has none
    order = [n for n in config.vertebrae if n in bodies]
    discs = {}
    for up, down in itertools.pairwise(order):
        try:
            name = config.disc_between(up, down)
        except ValueError:
            continue
        discs[name] = (centres[up] + centres[down]) / 2
        if (tissue == sm.ANNULUS).any():
            continue
        reach = 8
        a = bodies[up].copy()
        b = bodies[down].copy()
        ua, db = np.zeros_like(a), np.zeros_like(b)
        for t in range(1, reach):
            ua[:, :, :-t] |= a[:, :, t:]  # the upper body moved down
            db[:, :, t:] |= b[:, :, :-t]  # the lower body moved up
        gap = ua & db & ~bone
        tissue[gap] = sm.ANNULUS
    notes = [(f"real label map {source or labelmap.series_description} ({numbering_key}): "
              f"{', '.join(order)}")]
    return sm.SpineLabelMap(tissue, region, step, config, centres, discs, half_width, notes)
