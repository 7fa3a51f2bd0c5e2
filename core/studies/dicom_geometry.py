"""Where DICOM images sit in patient space: slice sorting along the normal, slice step and gaps, gantry tilt,
the LPS affine of a stack, a radiograph (PatientOrientation) or an enhanced multi-frame file.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.studies.dicom_header import DicomHeader

_GAP_FACTOR = 1.5
_MAX_GAP_WARNINGS = 5


@dataclass
class StackGeometry:
    """Where each image goes in the volume: ``order[n]`` (index into the input) lands at slice ``slice_index[n]``."""

    order: list[int]
    slice_index: list[int]
    n_slices: int
    affine: np.ndarray
    warnings: list[str] = field(default_factory=list)


def in_plane(iop: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit row direction, column direction and slice normal of an ImageOrientationPatient."""
    row = np.asarray(iop[:3], dtype=float)
    col = np.asarray(iop[3:6], dtype=float)
    row /= np.linalg.norm(row) or 1.0
    col /= np.linalg.norm(col) or 1.0
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal) or 1.0
    return row, col, normal


def stack_geometry(positions: Sequence[Sequence[float]], iop: Sequence[float],
                   pixel_spacing: Sequence[float] | None, single_slice_step: float = 1.0) -> StackGeometry:
    """Sort slices along the normal of IOP, derive the slice step from the positions, and build the LPS affine.

    Slices missing from a regular stack leave holes in ``slice_index`` (gaps of more than 1.5 median spacings).
    """
    row, col, normal = in_plane(iop)
    ps = pixel_spacing or (1.0, 1.0)
    ipp = np.asarray(positions, dtype=float).reshape(-1, 3)
    dist = ipp @ normal
    order = np.argsort(dist, kind="stable")
    dist = dist[order]
    warnings: list[str] = []
    affine = np.eye(4)
    affine[:3, 0] = row * ps[1]
    affine[:3, 1] = col * ps[0]
    affine[:3, 3] = ipp[order[0]]
    n = len(order)
    if n == 1:
        affine[:3, 2] = normal * single_slice_step
        return StackGeometry([int(order[0])], [0], 1, affine, warnings)
    diffs = np.diff(dist)
    step = float(np.median(diffs))
    if step < 1e-3:
        # Repeated positions with no usable spacing: keep the images in order, 1 mm apart.
        warnings.append("slices share the same position: slice spacing unknown, 1 mm assumed")
        affine[:3, 2] = normal
        return StackGeometry([int(i) for i in order], list(range(n)), n, affine, warnings)
    index = np.rint((dist - dist[0]) / step).astype(int)
    if np.any(np.diff(index) < 1) or index[-1] + 1 > 2 * n:
        # Uneven steps, or gaps larger than the images themselves (separate blocks): no blank filling.
        index = np.arange(n)
        step = float((dist[-1] - dist[0]) / (n - 1))
        warnings.append(f"irregular slice spacing ({diffs.min():.2f}-{diffs.max():.2f} mm): "
                        f"the volume assumes {step:.2f} mm, distances across slices are approximate")
    else:
        gaps = np.nonzero(diffs > _GAP_FACTOR * step)[0]
        for pos in gaps[:_MAX_GAP_WARNINGS]:
            missing = int(index[pos + 1] - index[pos] - 1)
            warnings.append(f"missing slice: gap of {diffs[pos]:.1f} mm between slice positions "
                            f"{dist[pos]:.1f} and {dist[pos + 1]:.1f} mm (expected {step:.1f} mm); "
                            f"{max(missing, 1)} blank slice(s) inserted")
        if len(gaps) > _MAX_GAP_WARNINGS:
            warnings.append(f"... and {len(gaps) - _MAX_GAP_WARNINGS} more gaps with missing slices")
        fitted = dist[0] + index * float((dist[-1] - dist[0]) / index[-1])
        worst = float(np.max(np.abs(dist - fitted)))
        if worst > max(0.05, 0.1 * step):
            warnings.append(f"irregular slice spacing ({diffs.min():.2f}-{diffs.max():.2f} mm): "
                            f"the volume assumes {step:.2f} mm")
    k_last = int(index[-1])
    step_vec = (ipp[order[-1]] - ipp[order[0]]) / k_last
    cos = abs(float(step_vec @ normal)) / (np.linalg.norm(step_vec) or 1.0)
    tilt = float(np.degrees(np.arccos(min(1.0, cos))))
    if tilt > 0.5:
        warnings.append(f"slices are sheared (gantry tilt {tilt:.1f} deg); the geometry keeps the tilt")
    affine[:3, 2] = step_vec
    return StackGeometry([int(i) for i in order], [int(k) for k in index], k_last + 1, affine, warnings)


_LETTER = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0), "H": (0, 0, 1), "F": (0, 0, -1)}


def projection_affine(header: DicomHeader) -> tuple[np.ndarray, list[str]]:
    """Affine of a radiograph: pixel spacing on i/j, directions from PatientOrientation when given, else identity."""
    warnings = []
    if header.pixel_spacing:
        ps = header.pixel_spacing
    else:
        ps = (1.0, 1.0)
        warnings.append("pixel spacing unknown: measurements in pixels")
    row_dir, col_dir = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    if header.patient_orientation:
        vecs = []
        for code in header.patient_orientation:
            vec = np.sum([_LETTER[c] for c in code if c in _LETTER] or [(0, 0, 0)], axis=0).astype(float)
            vecs.append(vec / (np.linalg.norm(vec) or 1.0))
        if all(np.linalg.norm(v) > 0 for v in vecs) and abs(float(vecs[0] @ vecs[1])) < 1e-3:
            row_dir, col_dir = vecs
    affine = np.eye(4)
    affine[:3, 0] = row_dir * ps[1]
    affine[:3, 1] = col_dir * ps[0]
    affine[:3, 2] = np.cross(row_dir, col_dir)
    return affine, warnings


def multiframe_geometry(h: DicomHeader) -> tuple[StackGeometry, list[str]]:
    """Geometry of a multi-frame file: per-frame positions, else one position + slice spacing, else a projection."""
    if h.iop is not None and h.frame_ipps:
        geom = _frames_by_position(h)
        return geom, geom.warnings
    warnings = []
    if h.iop is not None and h.ipp is not None:
        step = h.spacing_between_slices or h.slice_thickness
        if not step:
            warnings.append("multi-frame file without frame positions or slice spacing: 1 mm assumed")
        affine = stack_geometry([h.ipp], h.iop, h.pixel_spacing, single_slice_step=step or 1.0).affine
    else:
        affine, warnings = projection_affine(h)
        if h.frames > 1:
            warnings.append("multi-frame file without patient geometry: frames stacked 1 mm apart")
    geom = StackGeometry(list(range(h.frames)), list(range(h.frames)), h.frames, affine, warnings)
    return geom, warnings


def _frames_by_position(h: DicomHeader) -> StackGeometry:
    """Enhanced multi-frame geometry; with several echoes/time points in one file, the first at each position."""
    _, _, normal = in_plane(h.iop)  # type: ignore[arg-type]
    first_at: dict[float, int] = {}
    for idx, position in enumerate(h.frame_ipps):  # type: ignore[arg-type]
        first_at.setdefault(round(float(np.dot(position, normal)), 2), idx)
    keep = sorted(first_at.values())
    geom = stack_geometry([h.frame_ipps[i] for i in keep], h.iop, h.pixel_spacing)  # type: ignore[index,arg-type]
    if len(keep) == h.frames:
        return geom
    note = f"{h.frames - len(keep)} frame(s) at repeated positions (other echoes or time points) are not shown"
    order = [keep[i] for i in geom.order]
    return StackGeometry(order, geom.slice_index, geom.n_slices, geom.affine, [*geom.warnings, note])

