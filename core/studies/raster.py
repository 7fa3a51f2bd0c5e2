"""Plain radiographs exported as PNG/JPEG: read with Pillow into a single-slice grayscale Volume (modality DX)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.studies.errors import StudyLoadError
from core.studies.nifti import content_id
from core.studies.sources import SeriesSource
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn, check, report

SPACING_UNKNOWN = "pixel spacing unknown: measurements in pixels"


class RasterProblem(Exception):
    """The file is not a readable PNG/JPEG image; ``reason`` is for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def probe(path: Path) -> SeriesSource:
    """Check the file is a PNG/JPEG Pillow can read (header and size only)."""
    try:
        with Image.open(path) as img:
            fmt, size = img.format, img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise RasterProblem(f"not a readable PNG/JPEG image ({exc})") from None
    if fmt not in ("PNG", "JPEG"):
        raise RasterProblem(f"{fmt} images are not supported (PNG or JPEG only)")
    if min(size) < 1:
        raise RasterProblem("image is empty")
    return SeriesSource(kind="raster", series_uid=content_id(path, "raster"), files=[path], modality="DX",
                        series_description=path.stem, n_images=1, warnings=[SPACING_UNKNOWN])


def _gray(img: Image.Image) -> np.ndarray:
    """(rows, cols) grayscale array; 16-bit PNGs keep their depth."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img)
        return arr.astype(np.uint16 if arr.min() >= 0 and arr.max() <= 65535 else np.int32)
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32)
    if img.mode not in ("L",):
        img = img.convert("L")  # palette, RGB(A), LA, CMYK: luminance
    return np.asarray(img, dtype=np.uint8)


def load(source: SeriesSource, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Volume:
    path = Path(source.files[0])
    report(progress, 0.1, f"Reading {path.name}")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)  # phone/camera JPEGs store rotation in EXIF
            pixels = _gray(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise StudyLoadError(path, f"not a readable PNG/JPEG image ({exc})") from None
    check(cancel)
    # Image rows run top->bottom: data[i=column, j=row] like DICOM; 1 mm per pixel since the spacing is unknown.
    data = np.ascontiguousarray(pixels.T)[:, :, np.newaxis]
    return Volume(data=data, affine=np.eye(4), modality="DX", series_description=source.series_description,
                  series_uid=source.series_uid, source_paths=[path])
