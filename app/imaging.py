"""Qt-free image helpers for the viewers: slice extraction in display orientation, windowing, geometry.

Every function takes the LPS-canonical volume layout (``Volume.as_closest_lps()``): i, j, k increase towards
patient Left, Posterior, Superior. Display conventions (radiological):

- axial: patient Left on screen right, anterior at the top (looking up from the feet);
- coronal: patient Left on screen right, superior at the top (facing the patient);
- sagittal: anterior on screen left, superior at the top.

A displayed slice is a 2D array indexed ``[row, col]`` with row 0 at the top of the screen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

AXIAL, CORONAL, SAGITTAL = "axial", "coronal", "sagittal"
ORIENTATIONS = (AXIAL, SAGITTAL, CORONAL)

# The voxel axis each view slices through (its "normal" axis).
NORMAL_AXIS = {SAGITTAL: 0, CORONAL: 1, AXIAL: 2}

# Letters on the (left, right, top, bottom) edges of each view.
EDGE_LETTERS = {
    AXIAL: ("R", "L", "A", "P"),
    CORONAL: ("R", "L", "S", "I"),
    SAGITTAL: ("A", "P", "S", "I"),
}


def slice_count(shape: tuple[int, int, int], orientation: str) -> int:
    return int(shape[NORMAL_AXIS[orientation]])


def extract_slice(data: np.ndarray, orientation: str, index: int) -> np.ndarray:
    """The 2D display image ``[row, col]`` of slice ``index`` (clamped) of an LPS-canonical array."""
    index = int(np.clip(index, 0, data.shape[NORMAL_AXIS[orientation]] - 1))
    if orientation == AXIAL:
        return data[:, :, index].T  # rows = j (A->P), cols = i (R->L)
    if orientation == CORONAL:
        return data[:, index, :].T[::-1, :]  # rows = k reversed (S->I), cols = i
    if orientation == SAGITTAL:
        return data[index, :, :].T[::-1, :]  # rows = k reversed, cols = j (A->P)
    raise ValueError(f"unknown orientation {orientation!r}")


def display_shape(shape: tuple[int, int, int], orientation: str) -> tuple[int, int]:
    """(rows, cols) of the displayed slice."""
    ni, nj, nk = shape
    return {AXIAL: (nj, ni), CORONAL: (nk, ni), SAGITTAL: (nk, nj)}[orientation]


def pixel_spacing(spacing: tuple[float, float, float], orientation: str) -> tuple[float, float]:
    """(column width, row height) in mm of the displayed slice."""
    si, sj, sk = spacing
    return {AXIAL: (si, sj), CORONAL: (si, sk), SAGITTAL: (sj, sk)}[orientation]


def display_to_voxel(
    shape: tuple[int, int, int], orientation: str, index: int, col: float, row: float
) -> tuple[int, int, int]:
    """Voxel (i, j, k) under display pixel (col, row) of slice ``index``; clamped to the volume."""
    nk = shape[2]
    c, r = math.floor(col), math.floor(row)
    if orientation == AXIAL:
        ijk = (c, r, index)
    elif orientation == CORONAL:
        ijk = (c, index, nk - 1 - r)
    elif orientation == SAGITTAL:
        ijk = (index, c, nk - 1 - r)
    else:
        raise ValueError(f"unknown orientation {orientation!r}")
    return clamp_voxel(ijk, shape)


def voxel_to_display(shape: tuple[int, int, int], orientation: str, ijk) -> tuple[float, float]:
    """Display (col, row) of the centre of voxel ``ijk`` in a view of ``orientation``."""
    i, j, k = ijk
    nk = shape[2]
    if orientation == AXIAL:
        return i + 0.5, j + 0.5
    if orientation == CORONAL:
        return i + 0.5, nk - 1 - k + 0.5
    if orientation == SAGITTAL:
        return j + 0.5, nk - 1 - k + 0.5
    raise ValueError(f"unknown orientation {orientation!r}")


def clamp_voxel(ijk, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(int(np.clip(int(v), 0, n - 1)) for v, n in zip(ijk, shape))  # type: ignore[return-value]


def apply_window(image: np.ndarray, window: float, level: float) -> np.ndarray:
    """Map intensities to uint8 grey: ``level - window/2`` -> 0, ``level + window/2`` -> 255."""
    window = max(float(window), 1e-6)
    lo = float(level) - window / 2.0
    scaled = (image.astype(np.float32) - lo) * (255.0 / window)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def sample_values(data: np.ndarray, max_samples: int = 1_000_000) -> np.ndarray:
    """A regular subsample of ``data`` (flattened), for fast percentile estimates on big volumes."""
    flat = data.reshape(-1)
    step = max(1, flat.size // max_samples)
    return flat[::step]


def percentile_window(data: np.ndarray, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """(window, level) spanning the ``low``..``high`` percentiles of the intensities."""
    if data.size == 0:
        return 1.0, 0.0
    lo, hi = np.percentile(sample_values(data), [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return float(hi - lo), float((hi + lo) / 2.0)


@dataclass(frozen=True)
class ViewTransform:
    """Maps display image pixels (col, row) to widget coordinates: fit-to-widget by physical size, zoom, pan."""

    offset_x: float
    offset_y: float
    scale_x: float  # widget px per image column
    scale_y: float  # widget px per image row

    def to_widget(self, col: float, row: float) -> tuple[float, float]:
        return self.offset_x + col * self.scale_x, self.offset_y + row * self.scale_y

    def to_image(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.offset_x) / self.scale_x, (y - self.offset_y) / self.scale_y


def fit_transform(
    widget_size: tuple[int, int],
    image_shape: tuple[int, int],
    spacing: tuple[float, float],
    zoom: float = 1.0,
    pan: tuple[float, float] = (0.0, 0.0),
) -> ViewTransform:
    """Fit a (rows, cols) image with (col width, row height) mm pixels centred in the widget."""
    width, height = widget_size
    rows, cols = image_shape
    sx, sy = spacing
    phys_w, phys_h = max(cols * sx, 1e-6), max(rows * sy, 1e-6)
    mm_to_px = min(width / phys_w, height / phys_h) * zoom
    draw_w, draw_h = phys_w * mm_to_px, phys_h * mm_to_px
    return ViewTransform(
        offset_x=(width - draw_w) / 2.0 + pan[0],
        offset_y=(height - draw_h) / 2.0 + pan[1],
        scale_x=sx * mm_to_px,
        scale_y=sy * mm_to_px,
    )


def downsample_factors(shape: tuple[int, ...], max_dim: int = 256) -> tuple[int, ...]:
    """Integer stride per axis so that every axis has at most ``max_dim`` samples."""
    return tuple(max(1, math.ceil(n / max_dim)) for n in shape)


def downsample(data: np.ndarray, spacing, max_dim: int = 256) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Strided subsample of ``data`` to <= ``max_dim`` per axis, with the matching voxel spacing."""
    factors = downsample_factors(data.shape, max_dim)
    if all(f == 1 for f in factors):
        return data, tuple(float(s) for s in spacing)  # type: ignore[return-value]
    sub = data[:: factors[0], :: factors[1], :: factors[2]]
    return sub, tuple(float(s) * f for s, f in zip(spacing, factors))  # type: ignore[return-value]


def spine_cursor_guess(data: np.ndarray, modality: str) -> tuple[int, int, int]:
    """A starting cursor on the spine for CT (so the sagittal and coronal views cut through it), else the centre.

    Bone (250..2000 HU) in the left-right middle third of the middle axial slice, excluding the posterior fifth
    where the patient table lies; the median of those voxels is, in practice, the vertebra.
    """
    centre = tuple(n // 2 for n in data.shape)
    if modality != "CT" or data.shape[2] < 2:
        return centre  # type: ignore[return-value]
    ni, nj, nk = data.shape
    band = data[ni // 3 : 2 * ni // 3 + 1, : int(nj * 0.8), nk // 2]
    bone = np.argwhere((band > 250) & (band < 2000))
    if len(bone) < 20:
        return centre  # type: ignore[return-value]
    i, j = np.median(bone, axis=0)
    return int(i) + ni // 3, int(j), nk // 2
