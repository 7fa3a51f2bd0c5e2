"""Turning a radiograph into the landmark network's input, identically in training and at run time.

Bone must be bright (a MONOCHROME1 DICOM is inverted by the loader before it gets here). The grey levels are
scaled between the 0.5th and 99.5th percentiles (so 8-bit JPEGs and 12/16-bit DICOM look alike), the image is resized
to the network's fixed input size (aspect ratio not kept: landmarks are mapped back per axis), then standardised.
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 from (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) arrays of any numeric type."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        a = a[..., 0] if a.shape[2] == 1 else a[..., :3].astype(np.float32).mean(axis=2)
    if a.ndim != 2:
        raise ValueError(f"expected a 2D greyscale or RGB image, got an array of shape {a.shape}")
    return a.astype(np.float32, copy=False)


def scale_intensity(gray: np.ndarray) -> np.ndarray:
    """[0, 1] between the 0.5th and 99.5th percentiles; a flat image gives zeros."""
    lo, hi = np.percentile(gray, [0.5, 99.5])
    if hi <= lo:
        return np.zeros_like(gray, dtype=np.float32)
    return np.clip((gray - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def resize01(image01: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a [0, 1] float image with Pillow's antialiased bilinear filter."""
    im = Image.fromarray(np.ascontiguousarray(image01, dtype=np.float32), mode="F")
    return np.asarray(im.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def prepare01(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Any radiograph array -> (height, width) float32 in [0, 1]."""
    return resize01(scale_intensity(to_gray(image)), height, width)


def standardise(image01: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation over the image (the network's last input step)."""
    m = float(image01.mean())
    s = float(image01.std())
    return ((image01 - m) / max(s, 1e-3)).astype(np.float32)


def detail(image01: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels of a prepared [0, 1] image: near 0 for a smooth image
    (a gradient, a blank film), about 0.01-0.03 for a radiograph at the network's input size."""
    a = np.asarray(image01, dtype=np.float32)
    return float(np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean())
