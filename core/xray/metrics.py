"""Figures for radiograph landmark models, as the AASCE 2019 challenge reports them.

SMAPE (symmetric mean absolute percentage error, Wang et al., Med Image Anal 2021), over N images and their three
Cobb angles: ``100 % * mean over images of ( sum_i |pred_i - ref_i| / sum_i (pred_i + ref_i) )``. An image whose six
angles are all zero counts as 0. Landmark error: the mean Euclidean distance in pixels between matching corners.
"""
from __future__ import annotations

import numpy as np


def smape(pred, ref) -> float:
    """SMAPE in percent; ``pred`` and ``ref`` are (N, 3) angles in degrees."""
    p = np.asarray(pred, dtype=float).reshape(-1, 3)
    r = np.asarray(ref, dtype=float).reshape(-1, 3)
    if p.shape != r.shape or len(p) == 0:
        raise ValueError(f"need the same non-zero number of angle triples, got {p.shape} and {r.shape}")
    num = np.abs(p - r).sum(axis=1)
    den = (p + r).sum(axis=1)
    per_image = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return float(100.0 * per_image.mean())


def angle_mae(pred, ref) -> np.ndarray:
    """(3,) mean absolute error of each angle, degrees."""
    p = np.asarray(pred, dtype=float).reshape(-1, 3)
    r = np.asarray(ref, dtype=float).reshape(-1, 3)
    return np.abs(p - r).mean(axis=0)


def landmark_errors(pred, ref) -> np.ndarray:
    """Euclidean distance of each landmark (..., 68) in the units of the input; NaN where the reference is NaN."""
    d = np.asarray(pred, dtype=float) - np.asarray(ref, dtype=float)
    return np.hypot(d[..., 0], d[..., 1])
