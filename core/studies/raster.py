"""Plain radiographs exported as PNG/JPEG: read with Pillow into a single-slice grayscale Volume (modality DX).

Before Pillow decodes anything, the image size from the header is checked against what the file can hold (a
Huffman-coded JPEG spends at least one bit on each 8x8 block; deflate in a PNG expands at most about 1032:1) and
against the memory free. At import the whole image is decoded once (a JPEG at 1/8 scale, which still reads every
coded block) so a file cut short is refused then, not when it is opened.
"""
from __future__ import annotations

import struct
import warnings as py_warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.studies.errors import StudyLoadError
from core.studies.limits import MAX_DEFLATE_RATIO, check_memory, human_bytes
from core.studies.nifti import content_id
from core.studies.sources import SeriesSource
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn, check, report

SPACING_UNKNOWN = "pixel spacing unknown: measurements in pixels"
_PILLOW_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, zlib.error, TypeError,
                  KeyError, IndexError, struct.error)
# JPEG processes coded arithmetically (SOF9-SOF15) can spend less than a bit per block; Huffman ones cannot.
_ARITHMETIC_SOF = {0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7} | _ARITHMETIC_SOF


class RasterProblem(Exception):
    """The file is not a readable PNG/JPEG image; ``reason`` is for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _jpeg_sof_marker(path: Path) -> int | None:
    """The JPEG's start-of-frame marker (which coding process), walking the marker segments from the start."""
    with open(path, "rb") as fp:
        if fp.read(2) != b"\xff\xd8":
            return None
        for _ in range(1000):
            head = fp.read(4)
            if len(head) < 4 or head[0] != 0xFF:
                return None
            marker = head[1]
            if marker in _SOF:
                return marker
            if marker == 0xDA:  # start of scan before any frame header
                return None
            fp.seek(struct.unpack(">H", head[2:4])[0] - 2, 1)
    return None


def _check_png_chunks(path: Path, stored: int) -> None:
    """Every chunk must fit in the file: Pillow reads a chunk's declared length in one go (2 GB for a damaged one)."""
    with open(path, "rb") as fp:
        pos = 8
        for _ in range(1 << 20):
            fp.seek(pos)
            head = fp.read(8)
            if len(head) < 8:
                return
            length = struct.unpack(">I", head[:4])[0]
            if pos + 12 + length > stored:
                raise RasterProblem(f"damaged PNG: its data blocks do not fit in the file ({human_bytes(stored)}): "
                                    "a block length is wrong or the file is cut short")
            if head[4:8] == b"IEND":
                return
            pos += 12 + length


def _bytes_per_pixel(img: Image.Image) -> int:
    return {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I": 4, "F": 4}.get(img.mode, 4)


def _check_size(path: Path, img: Image.Image) -> None:
    """The declared width x height must fit in the file (compressed) and in memory (decoded, with copies)."""
    width, height = img.size
    if width < 1 or height < 1:
        raise RasterProblem("image is empty")
    stored = path.stat().st_size
    pixels = width * height
    what = f"the header declares {width} x {height} pixels"
    if img.format == "JPEG":
        if _jpeg_sof_marker(path) not in _ARITHMETIC_SOF and pixels / 512 > stored:
            raise RasterProblem(f"{what}, more than a JPEG file of {human_bytes(stored)} can hold (it needs at "
                                f"least {human_bytes(pixels / 512)}): the header is damaged or the file incomplete")
    else:
        if pixels * _bytes_per_pixel(img) > stored * MAX_DEFLATE_RATIO:
            raise RasterProblem(f"{what}, more than a compressed file of {human_bytes(stored)} can hold: "
                                "the header is damaged")
        _check_png_chunks(path, stored)
    try:  # the decoded image, its grey conversion and the transposed copy the Volume keeps
        check_memory(path, pixels * (_bytes_per_pixel(img) + 8), f"a {width} x {height} image")
    except StudyLoadError as exc:
        raise RasterProblem(exc.reason) from None


def _open(path: Path) -> Image.Image:
    """Pillow's image; its decompression-bomb check is kept (over 179 million pixels) with our own message."""
    try:
        with py_warnings.catch_warnings():
            py_warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError:
        raise RasterProblem(f"the header declares more than {2 * Image.MAX_IMAGE_PIXELS // 1_000_000} million "
                            "pixels, more than this program opens: the header is damaged") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not a readable PNG/JPEG image (damaged header or unrecognised content)"
    if isinstance(exc, OSError) and "truncated" in str(exc):
        return "the image data are cut short: the file is incomplete"
    if isinstance(exc, OSError) and exc.strerror:
        return f"the file cannot be read ({exc.strerror})"
    return "not a readable PNG/JPEG image (the image data are damaged)"


def probe(path: Path, verify: bool = True) -> SeriesSource:
    """Check the file is a PNG/JPEG Pillow can read; ``verify`` (import) decodes it once to prove it is complete."""
    try:
        with _open(path) as img:
            fmt = img.format
            if fmt not in ("PNG", "JPEG"):
                raise RasterProblem(f"{fmt} images are not supported (PNG or JPEG only)")
            _check_size(path, img)
            if verify:
                if fmt == "JPEG":
                    img.draft("L", (max(1, img.size[0] // 8), max(1, img.size[1] // 8)))
                img.load()
    except _PILLOW_ERRORS as exc:
        raise RasterProblem(_reason(exc)) from None
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
        with _open(path) as img:
            _check_size(path, img)  # the file may have changed since it was imported
            img = ImageOps.exif_transpose(img)  # phone/camera JPEGs store rotation in EXIF
            pixels = _gray(img)
    except RasterProblem as exc:
        raise StudyLoadError(path, exc.reason) from None
    except MemoryError:
        raise StudyLoadError(path, "not enough memory to read this image") from None
    except _PILLOW_ERRORS as exc:
        raise StudyLoadError(path, _reason(exc)) from None
    check(cancel)
    # Image rows run top->bottom: data[i=column, j=row] like DICOM; 1 mm per pixel since the spacing is unknown.
    data = np.ascontiguousarray(pixels.T)[:, :, np.newaxis]
    return Volume(data=data, affine=np.eye(4), modality="DX", series_description=source.series_description,
                  series_uid=source.series_uid, source_paths=[path], spacing_known=False)
