"""Small PNG thumbnails of a series for the study browser (one representative slice, windowed)."""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
from PIL import Image

from core.studies.loaders import load_series
from core.studies.sources import SeriesSource
from core.studies.volume import Volume

THUMB_SIZE = 128


def representative_slice(volume: Volume) -> np.ndarray:
    """A 2D image (rows, cols) for display: mid-sagittal for 3D volumes (spine), the image itself for 2D."""
    if volume.is_2d:
        return volume.data[:, :, 0].T
    vol = volume.as_closest_lps()
    sag = vol.data[vol.shape[0] // 2, :, :]  # (P, S)
    if vol.shape[0] < 8:  # too few sagittal positions: use the middle axial instead
        return vol.data[:, :, vol.shape[2] // 2].T
    return np.flipud(sag.T)  # rows = superior at top, cols = anterior..posterior


def window(image: np.ndarray, modality: str) -> np.ndarray:
    img = image.astype(np.float32)
    if modality == "CT":
        lo, hi = 500 - 1000, 500 + 1000  # bone window W2000/L500
    else:
        lo, hi = np.percentile(img, [1, 99]) if img.size else (0, 1)
        if hi <= lo:
            hi = lo + 1
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def thumbnail_png(image: np.ndarray, modality: str, aspect: float = 1.0) -> bytes:
    """PNG bytes of ``image`` windowed for ``modality``; ``aspect`` = row spacing / column spacing."""
    pil = Image.fromarray(window(image, modality))
    if aspect and abs(aspect - 1.0) > 0.01:
        pil = pil.resize((pil.width, max(1, round(pil.height * aspect))))
    pil.thumbnail((THUMB_SIZE, THUMB_SIZE))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def make_thumbnail(source: SeriesSource) -> bytes:
    if source.kind == "dicom" and len(source.files) > 1:
        # Decoding one file is enough for a browser icon; the full series is loaded only when opened.
        middle = sorted(source.files)[len(source.files) // 2]
        volume = load_series(replace(source, files=[middle], n_images=1))
        return thumbnail_png(volume.data[:, :, 0].T, volume.modality, volume.spacing[1] / volume.spacing[0])
    volume = load_series(source)
    if volume.is_2d:
        return thumbnail_png(representative_slice(volume), volume.modality, volume.spacing[1] / volume.spacing[0])
    vol = volume.as_closest_lps()
    if vol.shape[0] < 8:
        return thumbnail_png(representative_slice(vol), vol.modality, vol.spacing[1] / vol.spacing[0])
    return thumbnail_png(representative_slice(vol), vol.modality, vol.spacing[2] / vol.spacing[1])
