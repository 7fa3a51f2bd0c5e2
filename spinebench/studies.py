"""Labelled studies the benchmark is generated from: image + label map -> named vertebrae, discs and measurements.

A :class:`StudySpec` names the files (an image, which may be absent for a labels-only case, and a label map with its
``core.spine.numbering`` key); :func:`load_study` returns both volumes in closest-LPS order on the same grid and the
level positions of :func:`core.spine.reference.reference_from_labelmap` (vertebral-body centres, labelled discs).
Discs that the label map does not label are placed in the gap between two adjacent vertebra masks, found along the
line joining their centres. Measurements (vertebral body / disc height on the mask's mid column) are read from the
label map, so a report's quoted numbers can be checked exactly.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.library.opener import load_volume
from core.spine.anatomy import SpineConfiguration
from core.spine.numbering import get_numbering
from core.spine.reference import reference_from_labelmap
from core.studies.volume import Volume


@dataclass(frozen=True)
class StudySpec:
    key: str  # short name used in item ids
    folder: str  # relative to the samples root
    labels: str  # label map file (relative to the folder)
    numbering: str | None  # core.spine.numbering key; None: the map has no level identities
    image: str | None = None  # image file or DICOM folder (relative to the folder); None: labels only
    modality: str = ""  # CT | MR
    description: str = ""  # e.g. "sagittal T2-weighted MRI of the cervical spine"
    licence: str = ""
    origin: str = ""
    fov_mm: float = 150.0  # field of view of the rendered slices
    level_items: bool = True  # False when markers cannot be placed distinctly (see the datasheet)
    centre_label: int | None = None  # label value to centre views on when no level is named (e.g. all vertebrae)
    case_id: str = ""  # the case id the curation export uses for this study (for the case-level leakage check)


@dataclass
class LabelledStudy:
    spec: StudySpec
    image: Volume | None  # closest LPS
    labels: Volume  # closest LPS, on the image grid when there is an image
    configuration: SpineConfiguration = field(default_factory=SpineConfiguration)
    vertebrae: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # cranial first
    discs: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    label_values: dict[str, int] = field(default_factory=dict)
    partial: list[str] = field(default_factory=list)
    on_cord: bool = False
    derived_discs: list[str] = field(default_factory=list)
    anterior_centres: list[str] = field(default_factory=list)  # partial masks: centre of their anterior 40 %

    @property
    def case_id(self) -> str:
        return self.spec.case_id or f"spine-samples:{self.spec.folder}"

    def levels_in_view(self) -> list[str]:
        """Vertebrae and discs in spine order (cranial first)."""
        order = {name: i for i, name in enumerate(self.configuration.vertebrae)}
        out: list[tuple[float, str]] = [(order.get(v, 99), v) for v in self.vertebrae]
        out += [(order.get(d.split("-")[0], 99) + 0.5, d) for d in self.discs]
        return [name for _, name in sorted(out)]

    def point(self, name: str) -> tuple[float, float, float]:
        return self.vertebrae[name] if name in self.vertebrae else self.discs[name]

    def centre(self) -> tuple[float, float, float]:
        """Where to centre an overview slice: the middle level in view, else the centre of ``centre_label``."""
        levels = self.levels_in_view()
        if levels:
            return self.point(levels[len(levels) // 2])
        data = _int_data(self.labels)
        mask = data == self.spec.centre_label if self.spec.centre_label is not None else data > 0
        if not mask.any():
            mask = np.ones_like(data, dtype=bool)
        return tuple(float(v) for v in self.labels.voxel_to_patient(np.argwhere(mask).mean(axis=0)))


def _int_data(vol: Volume) -> np.ndarray:
    data = np.asarray(vol.data)
    return np.rint(data).astype(np.int32) if data.dtype.kind == "f" else data.astype(np.int32)


def resample_nearest(labels: Volume, grid: Volume) -> Volume:
    """``labels`` on the voxel grid of ``grid`` (nearest neighbour; outside the label map -> 0)."""
    if labels.shape == grid.shape and np.allclose(labels.affine, grid.affine, atol=1e-3):
        return labels
    ii, jj, kk = np.meshgrid(*(np.arange(n) for n in grid.shape), indexing="ij")
    world = grid.voxel_to_patient(np.stack([ii, jj, kk], axis=-1).reshape(-1, 3))
    src = np.rint(labels.patient_to_voxel(world)).astype(int)
    inside = np.all((src >= 0) & (src < np.array(labels.shape)), axis=1)
    data = np.zeros(len(src), dtype=np.int32)
    lab = _int_data(labels)
    data[inside] = lab[src[inside, 0], src[inside, 1], src[inside, 2]]
    return Volume(data.reshape(grid.shape), grid.affine.copy(), modality="SEG")


def touches_edge(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
                or mask[:, :, 0].any() or mask[:, :, -1].any())


def disc_between_masks(data: np.ndarray, vol: Volume, upper: int, lower: int, a, b) -> tuple[float, ...] | None:
    """Centre of the gap between two vertebra masks (values ``upper``/``lower``) on the line through a and b (LPS),
    searched from beyond ``a`` to beyond ``b`` (by half the segment, at least 15 mm): a partial mask's centre may lie
    outside its body."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    length = float(np.linalg.norm(b - a)) or 1.0
    reach = max(0.5, 15.0 / length)
    start, end = a - reach * (b - a), b + reach * (b - a)
    steps = max(2, int(np.linalg.norm(end - start) / 0.25))
    pts = start[None, :] + (end - start)[None, :] * np.linspace(0.0, 1.0, steps)[:, None]
    ijk = np.rint(vol.patient_to_voxel(pts)).astype(int)
    ok = np.all((ijk >= 0) & (ijk < np.array(data.shape)), axis=1)
    values = np.zeros(len(pts), dtype=np.int64)
    values[ok] = data[ijk[ok, 0], ijk[ok, 1], ijk[ok, 2]]
    in_upper = np.nonzero(values == upper)[0]
    in_lower = np.nonzero(values == lower)[0]
    if not len(in_upper) or not len(in_lower) or in_upper.min() > in_lower.max():
        return None
    last_upper = in_upper[in_upper < in_lower.max()].max()
    first_lower = in_lower[in_lower > last_upper].min()
    mid = (last_upper + first_lower) / 2.0
    return tuple(float(v) for v in start + (end - start) * mid / (steps - 1))


def anterior_centre(vol: Volume, mask: np.ndarray, fraction: float = 0.4) -> tuple[float, float, float]:
    """A point of the vertebral body side of a mask: the centre of its anterior ``fraction`` (antero-posterior
    extent), moved to the nearest voxel of that anterior part when the centre falls outside the mask."""
    idx = np.argwhere(mask)
    j = idx[:, 1]  # closest LPS: +j is posterior
    front = idx[j <= j.min() + fraction * (j.max() - j.min())]
    centre = front.mean(axis=0)
    if not mask[tuple(np.rint(centre).astype(int))]:
        mm = (front - centre) * np.asarray(vol.spacing)
        centre = front[int(np.argmin((mm ** 2).sum(axis=1)))].astype(float)
    return tuple(float(v) for v in vol.voxel_to_patient(centre))


def load_study(spec: StudySpec, root: Path) -> LabelledStudy:
    folder = Path(root) / spec.folder
    labels, _ = load_volume(folder / spec.labels)
    labels = labels.as_closest_lps()
    image = None
    if spec.image:
        image, _ = load_volume(folder / spec.image)
        image = image.as_closest_lps()
        if spec.modality:
            image.modality = spec.modality
        labels = resample_nearest(labels, image)
    labels.modality = "SEG"
    study = LabelledStudy(spec, image, labels)
    if spec.numbering is None:
        return study
    numbering = get_numbering(spec.numbering)
    ref = reference_from_labelmap(labels, numbering)
    data = _int_data(labels)
    study.configuration = ref.configuration
    study.on_cord = numbering.on_cord
    study.vertebrae = dict(ref.points)
    for value in np.unique(data):
        name = numbering.name_of(int(value), ref.configuration)
        if name and name not in study.label_values:
            study.label_values[name] = int(value)
    study.partial = [v for v in study.vertebrae if touches_edge(data == study.label_values[v])]
    discs = dict(ref.discs)
    # a mask cut by the field of view encloses no canal and reference_from_labelmap falls back to its whole-mask
    # centre, which may lie in the posterior elements or even over the next body: use its anterior part instead
    for note in ref.notes:
        name = note.split(":")[0]
        if "whole-mask centre used" in note and name in study.vertebrae:
            study.vertebrae[name] = anterior_centre(labels, data == study.label_values[name])
            study.anterior_centres.append(name)
    if not numbering.on_cord:
        names = list(study.vertebrae)
        for upper, lower in itertools.pairwise(names):
            try:
                disc = ref.configuration.disc_between(upper, lower)
            except ValueError:
                continue
            if disc in discs:
                continue
            a, b = study.vertebrae[upper], study.vertebrae[lower]
            centre = disc_between_masks(data, labels, study.label_values[upper], study.label_values[lower], a, b)
            if centre is not None:
                discs[disc] = centre
                study.derived_discs.append(disc)
    order = {d: i for i, d in enumerate(ref.configuration.discs)}
    study.discs = dict(sorted(discs.items(), key=lambda kv: order.get(kv[0], 99)))
    return study


def column_height_mm(study: LabelledStudy, name: str) -> float | None:
    """Height along S of the label's mask on the column through its centre (mm), None if the column misses it."""
    value = study.label_values.get(name)
    if value is None or name in study.partial or study.on_cord:
        return None
    data = _int_data(study.labels)
    i, j, k = (round(v) for v in study.labels.patient_to_voxel(study.point(name)))
    if not (0 <= i < data.shape[0] and 0 <= j < data.shape[1] and 0 <= k < data.shape[2]):
        return None
    column = data[i, j, :] == value
    if not column[k]:
        return None
    lo = hi = k
    while lo > 0 and column[lo - 1]:
        lo -= 1
    while hi < len(column) - 1 and column[hi + 1]:
        hi += 1
    return round((hi - lo + 1) * study.labels.spacing[2], 1)
