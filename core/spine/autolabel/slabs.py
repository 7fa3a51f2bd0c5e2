"""Sagittal slab stacks: what the learned labeller sees, made the same way at training and at run time.

The volume is first resampled to an isotropic grid (axes towards L, P, S; :mod:`grid`). A *stack* at left-right grid
index ``x0`` is three channels: the mean of a thin sagittal slab through ``x0`` and of two slabs ``LATERAL_MM`` to
either side (where rib heads, pedicles and transverse processes lie). Each channel is a 2D image with rows from
superior to inferior and columns from anterior to posterior. Intensities are mapped to 0..1 by the stack's own
percentiles, so the contrast (CT, T1, T2) and the scanner's scale do not matter; voxels outside the field of view
are 0.
"""
from __future__ import annotations

import numpy as np

LATERAL_MM = 22.0  # offset of the two side slabs from the central one
SLAB_MM = 6.0  # thickness of each slab
LOW_PCT, HIGH_PCT = 1.0, 99.5


def slab_offsets(step: float) -> tuple[int, int]:
    """(half thickness, lateral offset) in grid voxels for a grid of ``step`` mm."""
    return max(0, int(np.rint((SLAB_MM / step - 1) / 2))), max(1, int(np.rint(LATERAL_MM / step)))


def _slab(data: np.ndarray, centre: int, half: int) -> np.ndarray:
    lo, hi = centre - half, centre + half + 1
    lo_c, hi_c = max(lo, 0), min(hi, data.shape[0])
    if hi_c <= lo_c:
        return np.zeros(data.shape[1:], dtype=np.float32)
    return data[lo_c:hi_c].mean(axis=0, dtype=np.float32)


def raw_stack(data: np.ndarray, x0: int, step: float) -> np.ndarray:
    """(3, S rows top->bottom, P cols front->back) slab means of ``data`` [L, P, S] at LR index ``x0``; slabs
    wholly outside the grid are NaN (no data there), so :func:`normalise` can set them to 0."""
    half, lateral = slab_offsets(step)
    out = []
    for c in (x0, x0 - lateral, x0 + lateral):
        if c + half < 0 or c - half >= data.shape[0]:
            img = np.full(data.shape[1:], np.nan, dtype=np.float32)
        else:
            img = _slab(data, c, half)
        out.append(img.T[::-1])  # [P, S] -> rows S (top first), cols P
    return np.ascontiguousarray(np.stack(out))


def normalise(stack: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Map a raw stack to 0..1 by its percentiles over the valid voxels (finite, and ``valid`` when given);
    invalid voxels become 0."""
    ok = np.isfinite(stack)
    if valid is not None:
        ok &= valid
    vals = stack[ok]
    if vals.size < 16:
        return np.zeros_like(stack, dtype=np.float32)
    if vals.size > 200_000:
        vals = vals[:: vals.size // 200_000 + 1]
    lo, hi = np.percentile(vals, [LOW_PCT, HIGH_PCT])
    out = (stack - lo) / max(float(hi - lo), 1e-6)
    out = np.clip(out, 0.0, 1.0)
    out[~ok] = 0.0
    return out.astype(np.float32)


def padded_shape(rows: int, cols: int, multiple: int = 16) -> tuple[int, int]:
    return (-(-rows // multiple) * multiple, -(-cols // multiple) * multiple)


def pad_to(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Zero-pad (C, r, c) at the bottom/right to (C, rows, cols)."""
    out = np.zeros(img.shape[:-2] + (rows, cols), dtype=np.float32)
    out[..., : img.shape[-2], : img.shape[-1]] = img
    return out
