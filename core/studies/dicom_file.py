"""Reading one DICOM file's header: is it DICOM, is it an image, is its pixel data all there.

:func:`read_header` parses the header (pixel data skipped), checks the pixel data element is complete (native and
encapsulated), refuses non-image objects (SR, presentation states, segmentations, ...) with a reason for the user,
and caches the result while the file is unchanged.
"""
from __future__ import annotations

import os
import struct
import threading
from collections import OrderedDict
from pathlib import Path

import pydicom
import pydicom.uid
from pydicom.errors import InvalidDicomError

from core.studies.dicom_header import DicomHeader, header_from_dataset

DEFLATED_SYNTAX = "1.2.840.10008.1.2.1.99"
_PIXEL_TAGS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UC", b"UR", b"UT", b"SV", b"UV"}
_NON_IMAGE_SOP = (  # (UID prefix, what it is); first match wins
    ("1.2.840.10008.1.3.10", "media directory (DICOMDIR)"),
    ("1.2.840.10008.5.1.4.1.1.88.59", "Key Object Selection document"),
    ("1.2.840.10008.5.1.4.1.1.88.", "Structured Report"),
    ("1.2.840.10008.5.1.4.1.1.11.", "Presentation State"),
    ("1.2.840.10008.5.1.4.1.1.104.", "Encapsulated Document"),
    ("1.2.840.10008.5.1.4.1.1.481.3", "RT Structure Set"),
    ("1.2.840.10008.5.1.4.1.1.481.5", "RT Plan"),
    ("1.2.840.10008.5.1.4.1.1.66", "Raw Data / Registration object"),
)
_NON_IMAGE_MODALITY = {"SR": "Structured Report", "PR": "Presentation State", "KO": "Key Object Selection document",
                       "DOC": "Encapsulated Document", "RTSTRUCT": "RT Structure Set", "RTPLAN": "RT Plan",
                       "REG": "Registration object"}
_SEGMENTATION_SOP = "1.2.840.10008.5.1.4.1.1.66.4"


class DicomFileProblem(Exception):
    """One file cannot be imported; ``reason`` is shown to the user next to the file name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def looks_like_dicom(head: bytes) -> bool:
    """True for a Part 10 file (``DICM`` at 128) or a preamble-less dataset starting with group 0002/0008."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8 or head[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    element = struct.unpack("<H", head[2:4])[0]
    return element < 0x0200 and (head[4:6].isalpha() and head[4:6].isupper() or head[6:8] == b"\x00\x00")


_CACHE_LIMIT = 20000
_cache: OrderedDict[str, DicomHeader] = OrderedDict()
_cache_lock = threading.Lock()


def read_header(path: Path) -> DicomHeader:
    """Header of one file (cached while the file is unchanged); raises DicomFileProblem if it is not an image."""
    key = os.fspath(path)
    try:
        st = os.stat(key)
    except OSError as exc:
        raise DicomFileProblem(f"cannot read file ({exc.strerror or exc})") from None
    stat_key = (st.st_size, st.st_mtime_ns)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached.stat_key == stat_key:
            _cache.move_to_end(key)
            return cached
    header = _parse_header(Path(path), stat_key)
    with _cache_lock:
        _cache[key] = header
        if len(_cache) > _CACHE_LIMIT:
            _cache.popitem(last=False)
    return header


def _parse_header(path: Path, stat_key: tuple[int, int]) -> DicomHeader:
    size = stat_key[0]
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
            if not looks_like_dicom(head):
                raise DicomFileProblem("not a DICOM file (no DICOM header found)")
            fp.seek(0)
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=head[128:132] != b"DICM")
            except InvalidDicomError as exc:
                raise DicomFileProblem(f"not a DICOM file ({exc})") from None
            except (EOFError, struct.error) as exc:
                raise DicomFileProblem(f"truncated: header ends early ({exc})") from None
            except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
                raise DicomFileProblem(f"corrupt DICOM header ({exc})") from None
            ts = str(getattr(ds.get("file_meta", None), "TransferSyntaxUID", "") or "")
            if not ts:
                ts = "1.2.840.10008.1.2" if ds.original_encoding[0] else "1.2.840.10008.1.2.1"
            header = header_from_dataset(ds, path, stat_key, ts)
            pixel_tag = None if ts == DEFLATED_SYNTAX else _read_pixel_element(fp, ds, size, header)
    except OSError as exc:
        raise DicomFileProblem(f"cannot read file ({exc.strerror or exc})") from None
    if ts == DEFLATED_SYNTAX:
        pixel_tag = "PixelData" if header.rows else None
    if pixel_tag is None:
        what = _non_image_kind(header)
        if what:
            raise DicomFileProblem(f"is a DICOM {what}, not an image")
        if header.rows and header.cols or "Image Storage" in pydicom.uid.UID(header.sop_class).name:
            raise DicomFileProblem("truncated: file ends before the pixel data")
        raise DicomFileProblem(f"is a DICOM {header.modality or 'non-image'} object with no pixel data, not an image")
    if pixel_tag != "PixelData":
        raise DicomFileProblem(f"{pixel_tag} (floating-point pixels) is not supported")
    what = _non_image_kind(header)
    if what and header.sop_class != _SEGMENTATION_SOP:
        raise DicomFileProblem(f"is a DICOM {what}, not an image")
    if header.sop_class == _SEGMENTATION_SOP:
        raise DicomFileProblem("is a DICOM Segmentation object; import segmentations as NIfTI label maps instead")
    if not header.rows or not header.cols:
        raise DicomFileProblem("has pixel data but no Rows/Columns")
    return header


def _non_image_kind(header: DicomHeader) -> str:
    for prefix, what in _NON_IMAGE_SOP:
        if header.sop_class.startswith(prefix):
            return what
    return _NON_IMAGE_MODALITY.get(header.modality, "")


def _read_pixel_element(fp, ds, size: int, header: DicomHeader) -> str | None:
    """Look at the element where pydicom stopped: pixel data or end of file; check it is complete."""
    start = fp.tell()
    implicit, little = ds.original_encoding
    endian = "<" if little is not False else ">"
    raw = fp.read(8)
    if len(raw) < 8:
        return None
    group, element = struct.unpack(endian + "HH", raw[:4])
    name = _PIXEL_TAGS.get((group << 16) | element)
    if name is None:
        return None
    if not implicit and raw[4:6] in _LONG_VRS:
        more = fp.read(4)
        if len(more) < 4:
            raise DicomFileProblem("truncated: pixel data ends early")
        length = struct.unpack(endian + "I", more)[0]
        offset = start + 12
    elif not implicit:
        length = struct.unpack(endian + "H", raw[6:8])[0]
        offset = start + 8
    else:
        length = struct.unpack(endian + "I", raw[4:8])[0]
        offset = start + 8
    if length == 0xFFFFFFFF:
        _check_encapsulated(fp, offset, size, endian)
        return name
    if offset + length > size:
        raise DicomFileProblem(f"truncated: pixel data ends early ({size - offset} of {length} bytes present)")
    expected = header.rows * header.cols * header.frames * header.samples * header.bits_allocated
    expected = (expected + 7) // 8
    if name == "PixelData" and length < expected:
        raise DicomFileProblem(f"truncated: pixel data ends early ({length} of {expected} bytes present)")
    header.pixel_offset = offset
    header.pixel_length = length
    return name


def _check_encapsulated(fp, offset: int, size: int, endian: str) -> None:
    pos = offset
    while True:
        fp.seek(pos)
        raw = fp.read(8)
        if len(raw) < 8:
            raise DicomFileProblem("truncated: pixel data ends early (compressed frames cut off)")
        group, element, length = struct.unpack(endian + "HHI", raw)
        if (group, element) == (0xFFFE, 0xE0DD):
            return
        if (group, element) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
            raise DicomFileProblem("corrupt compressed pixel data (unexpected element in the fragments)")
        pos += 8 + length
        if pos > size:
            raise DicomFileProblem("truncated: pixel data ends early (compressed frames cut off)")


def clear_header_cache() -> None:
    """Forget cached headers (benchmarks; tests that rewrite files in place with the same size and time)."""
    with _cache_lock:
        _cache.clear()
