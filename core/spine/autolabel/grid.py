"""Isotropic working grid for detection: the volume resampled to ``step`` mm with axes towards L, P, S.

Resampling is a block mean by the largest whole factor (cheap and anti-aliasing), then linear interpolation to the
exact step. Grid indices map back to the original volume's voxels (and so to patient LPS) exactly, including the
small tilt of an oblique acquisition that ``Volume.as_closest_lps`` keeps in the affine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.studies.volume import Volume
from core.tasks import CancelToken, check


@dataclass
class IsoGrid:
    data: np.ndarray  # float32, [i, j, k] towards L, P, S: block means
    peak: np.ndarray  # float32, same grid: block maxima, so thin bright structures (cortex) survive
    step: float  # mm
    source: Volume  # the closest-LPS volume the grid was made from
    scale: np.ndarray  # source voxels per grid voxel along each axis
    offset: np.ndarray  # source voxel index of grid voxel 0

    def to_source(self, ijk) -> np.ndarray:
        return np.asarray(ijk, dtype=float) * self.scale + self.offset

    def to_patient(self, ijk) -> np.ndarray:
        return self.source.voxel_to_patient(self.to_source(ijk))

    def direction_to_patient(self, vec) -> np.ndarray:
        """A direction in grid axes -> unit direction in LPS."""
        d = np.asarray(vec, dtype=float) * self.scale @ self.source.affine[:3, :3].T
        return d / max(np.linalg.norm(d), 1e-9)


def _blocks(data: np.ndarray, f: tuple[int, int, int], cancel: CancelToken | None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Block means and block maxima of ``data`` by factors ``f`` (processed in slabs to bound memory)."""
    n = [s // k for s, k in zip(data.shape, f)]
    mean = np.empty(n, dtype=np.float32)
    peak = np.empty(n, dtype=np.float32)
    slab = max(1, 64 // f[2])
    for k0 in range(0, n[2], slab):
        check(cancel)
        k1 = min(n[2], k0 + slab)
        block = np.asarray(data[: n[0] * f[0], : n[1] * f[1], k0 * f[2]: k1 * f[2]])
        block = block.reshape(n[0], f[0], n[1], f[1], k1 - k0, f[2])
        mean[:, :, k0:k1] = block.mean(axis=(1, 3, 5), dtype=np.float32)
        peak[:, :, k0:k1] = block.max(axis=(1, 3, 5))
    return mean, peak


def iso_grid(volume: Volume, step: float, cancel: CancelToken | None = None) -> IsoGrid:
    """Resample ``volume`` (any orientation) to an isotropic grid of ``step`` mm."""
    src = volume.as_closest_lps()
    spacing = np.asarray(src.spacing, dtype=float)
    factors = tuple(max(1, int(step / s + 1e-6)) for s in spacing)
    data = src.data
    if any(f > 1 for f in factors):
        blocks, peaks = _blocks(data, factors, cancel)
    else:
        blocks = np.asarray(data, dtype=np.float32)
        peaks = blocks
    check(cancel)
    block_spacing = spacing * np.array(factors)
    ratio = step / block_spacing  # block voxels per grid voxel
    shape = tuple(max(1, int(np.floor((n - 1) / r)) + 1) for n, r in zip(blocks.shape, ratio))
    if np.allclose(ratio, 1.0):
        grid, peak = blocks, peaks
    else:
        grid = ndimage.affine_transform(blocks, ratio, output_shape=shape, order=1, mode="nearest",
                                        output=np.float32)
        peak = grid if peaks is blocks else ndimage.affine_transform(
            peaks, ratio, output_shape=shape, order=1, mode="nearest", output=np.float32)
    scale = step / spacing
    offset = (np.array(factors) - 1) / 2.0
    return IsoGrid(data=grid, peak=peak, step=float(step), source=src, scale=scale, offset=offset)


def working_step(volume: Volume, target_voxels: float = 6e6, lo: float = 1.0, hi: float = 2.5) -> float:
    """Grid step (mm) giving about ``target_voxels``, never finer than the image nor outside lo..hi."""
    extent = np.asarray(volume.shape, dtype=float) * np.asarray(volume.spacing, dtype=float)
    step = float(np.cbrt(np.prod(extent) / target_voxels))
    return float(np.clip(max(step, min(volume.spacing)), lo, hi))
