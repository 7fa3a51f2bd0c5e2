"""DICOM pixel values: reading native frames straight from the file, decoding compressed ones with pydicom,
colour to grey, BitsStored masking / sign extension, MONOCHROME1 inversion and the rescale to real-world values
(int16 when slope and intercept allow it, else float32).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pydicom
import pydicom.pixels
import pydicom.uid

from core.studies.dicom_file import DEFLATED_SYNTAX, open_capped
from core.studies.dicom_geometry import StackGeometry
from core.studies.dicom_header import DicomHeader
from core.studies.errors import StudyLoadError
from core.studies.limits import check_memory

# pydicom's decoders and plugins raise all of these (and StopIteration, zlib.error, their own exception classes) for
# damaged or unsupported pixel data; their texts are for programmers, so the user gets our words instead.
_PLUGIN_MISSING = ("missing dependencies", "no pixel data handler", "no plugins", "missing required")


@dataclass
class PixelPlan:
    """How stored pixel values become the output array: dtype and whether rescale happens in place."""

    out_dtype: np.dtype
    rescale: bool
    in_place: bool  # stored values are read straight into the output buffer and fixed up there


def pixel_plan(headers: Sequence[DicomHeader], force_float: bool = False) -> PixelPlan:
    """Stored dtype when no rescale, int16 for integral rescale of <= 16-bit values, else float32 (also colour)."""
    stored = headers[0].stored_dtype
    if headers[0].samples > 1:
        return PixelPlan(np.dtype(np.float32), True, False)
    rescales = {(h.slope, h.intercept) for h in headers}
    if headers[0].frame_rescale:
        rescales |= set(headers[0].frame_rescale)
    identity = rescales == {(1.0, 0.0)}
    if identity and not force_float:
        return PixelPlan(stored, False, True)
    integral = all(s == 1.0 and float(i).is_integer() for s, i in rescales)
    if integral and not force_float and stored.itemsize <= 2:
        return PixelPlan(np.dtype(np.int16), True, stored.itemsize == 2)
    return PixelPlan(np.dtype(np.float32), True, False)


class Int16Overflow(Exception):
    """Rescaled values do not fit int16: load again as float32."""


def read_raw_frame(h: DicomHeader, out: np.ndarray, plan: PixelPlan, local) -> np.ndarray:
    """Stored values of a single-frame file, read into ``out`` when possible (no extra copy)."""
    stored = h.stored_dtype
    if h.fast_native:
        if plan.in_place:
            raw = out.view(stored)
        else:
            scratch = getattr(local, "scratch", None)
            if scratch is None or scratch.shape != out.shape or scratch.dtype != stored:
                scratch = local.scratch = np.empty(out.shape, dtype=stored)
            raw = scratch
        with open(h.path, "rb") as fp:
            fp.seek(h.pixel_offset)  # type: ignore[arg-type]
            got = fp.readinto(memoryview(raw).cast("B"))
        if got != raw.nbytes:
            raise StudyLoadError(h.path, "truncated: pixel data ends early")
        return raw
    return decode_frames(h)[0]


def decode_frames(h: DicomHeader) -> np.ndarray:
    """All frames of a file as (frames, rows, cols) stored values, via pydicom's decoders (compressed, etc.)."""
    check_memory(h.path, 2 * h.decoded_bytes, f"{h.frames} image(s) of {h.cols} x {h.rows}")
    try:
        with open_capped(h.path) as fp:
            arr = pydicom.dcmread(fp, force=True).pixel_array
    except MemoryError:
        raise StudyLoadError(h.path, "not enough memory to decode the images") from None
    except Exception as exc:  # noqa: BLE001 - third-party decoders: any failure means this file cannot be shown
        raise StudyLoadError(h.path, _decode_reason(exc, h)) from None
    return _frames_array(arr, h)


def decode_first_frame(h: DicomHeader) -> None:
    """Decode the first frame once to prove the compressed data can be shown (import); StudyLoadError if not."""
    check_memory(h.path, 2 * h.decoded_bytes // h.frames, f"an image of {h.cols} x {h.rows}")
    try:
        with open_capped(h.path) as fp:
            if h.transfer_syntax == DEFLATED_SYNTAX:  # pixel_array() reads the data set without inflating it
                arr = pydicom.dcmread(fp, force=True).pixel_array
                arr = arr[:1] if h.frames > 1 else arr
            else:
                arr = pydicom.pixels.pixel_array(fp, index=0)
    except MemoryError:
        raise StudyLoadError(h.path, "not enough memory to decode the image") from None
    except Exception as exc:  # noqa: BLE001 - third-party decoders: any failure means this file cannot be shown
        raise StudyLoadError(h.path, _decode_reason(exc, h)) from None
    _frames_array(arr, h, frames=1)


def _frames_array(arr: np.ndarray, h: DicomHeader, frames: int | None = None) -> np.ndarray:
    if h.samples > 1:
        arr = _to_gray(arr, h)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3 or arr.shape[1:] != (h.rows, h.cols):
        size = f"{arr.shape[-1]} x {arr.shape[-2]}" if arr.ndim >= 2 else "not an image"
        raise StudyLoadError(h.path, f"the decoded image is {size}, but the header says {h.cols} x {h.rows}")
    if arr.shape[0] != (frames or h.frames):
        raise StudyLoadError(h.path, f"{arr.shape[0]} image(s) decoded, but the header says {frames or h.frames}")
    return arr


def _decode_reason(exc: Exception, h: DicomHeader) -> str:
    syntax = pydicom.uid.UID(h.transfer_syntax)
    known = syntax.is_valid and syntax.is_transfer_syntax
    name = syntax.name if known else h.transfer_syntax
    compressed = known and syntax.is_compressed
    text = str(exc).lower()
    if compressed and (isinstance(exc, NotImplementedError) or any(k in text for k in _PLUGIN_MISSING)):
        return f"images compressed as {name} cannot be decoded here (no decoder for this compression is installed)"
    if compressed:
        return f"the compressed image data ({name}) are damaged and cannot be decoded"
    if not known:
        return f"the transfer syntax {h.transfer_syntax} is unknown: the pixel data cannot be read"
    return "the pixel data do not match the header (size, bits or colour layout): the file is damaged"


def _to_gray(arr: np.ndarray, h: DicomHeader) -> np.ndarray:
    if arr.shape[-1] in (3, 4) and arr.ndim >= 3:
        rgb = arr[..., :3].astype(np.float32)
        return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return arr


def prepare_stored(raw: np.ndarray, h: DicomHeader) -> np.ndarray:
    """Stored values made clean in place: bits above BitsStored removed (sign-extended), MONOCHROME1 inverted."""
    if not raw.flags.writeable:
        raw = raw.copy()
    if raw.dtype.kind in "iu" and h.bits_stored < raw.dtype.itemsize * 8:
        shift = raw.dtype.itemsize * 8 - h.bits_stored
        if raw.dtype.kind == "i":
            np.left_shift(raw, shift, out=raw)
            np.right_shift(raw, shift, out=raw)
        elif int(raw.max()) >> h.bits_stored:
            np.bitwise_and(raw, (1 << h.bits_stored) - 1, out=raw, casting="unsafe")
    if h.photometric == "MONOCHROME1":
        if raw.dtype.kind == "u":
            np.subtract((1 << min(h.bits_stored, raw.dtype.itemsize * 8)) - 1, raw, out=raw, casting="unsafe")
        elif raw.dtype.kind == "i":
            np.invert(raw, out=raw)
        else:
            np.subtract(raw.max() + raw.min(), raw, out=raw)
    return raw


def rescale_into(raw: np.ndarray, out: np.ndarray, plan: PixelPlan, slope: float,
                  intercept: float) -> tuple[float, float]:
    """Write real-world values of one prepared frame into ``out`` (may share memory); returns its min/max."""
    if not plan.rescale:
        if not np.shares_memory(raw, out):
            out[...] = raw
        return float(out.min()), float(out.max())
    if plan.out_dtype == np.int16:
        mn, mx = int(raw.min()), int(raw.max())
        ic = int(intercept)
        if mn + ic < -32768 or mx + ic > 32767:
            raise Int16Overflow()
        np.add(raw, np.int32(ic), out=out, casting="unsafe")
        return float(mn + ic), float(mx + ic)
    np.multiply(raw, np.float32(slope), out=out, casting="unsafe")
    if intercept:
        out += np.float32(intercept)
    return float(out.min()), float(out.max())


def rescale_frames(frames: np.ndarray, geom: StackGeometry, rescale, plan: PixelPlan) -> np.ndarray:
    buf = np.empty((geom.n_slices,) + frames.shape[1:], dtype=plan.out_dtype)
    filled = np.zeros(geom.n_slices, dtype=bool)
    lo = np.inf
    for src, k in zip(geom.order, geom.slice_index):
        lo = min(lo, rescale_into(frames[src], buf[k], plan, *rescale[src])[0])
        filled[k] = True
    if not filled.all():
        buf[~filled] = lo
    return buf
