"""Reading one DICOM file's header: is it DICOM, is it an image, is its pixel data all there.

:func:`read_header` parses the header (pixel data skipped), checks the pixel data element is complete (native and
encapsulated), refuses non-image objects (SR, presentation states, segmentations, ...) with a reason for the user,
and caches the result while the file is unchanged.
"""
from __future__ import annotations

import os
import struct
import threading
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Self

import pydicom
import pydicom.uid
from pydicom.errors import BytesLengthException, InvalidDicomError

from core.studies.dicom_header import DicomFileProblem, DicomHeader, header_from_dataset
from core.studies.errors import StudyLoadError
from core.studies.limits import check_memory, human_bytes, memory_budget

__all__ = ["DEFLATED_SYNTAX", "DicomFileProblem", "clear_header_cache", "looks_like_dicom", "open_capped",
           "read_header"]

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
_J2K_SYNTAXES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                 "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
# pydicom raises these (and its own subclasses of them) for a damaged header: wrong lengths, unknown VRs, ...
_HEADER_ERRORS = (ValueError, KeyError, TypeError, NotImplementedError, OverflowError, IndexError, AttributeError,
                  UnicodeError, LookupError, BytesLengthException)


class CappedFile:
    """A binary file whose reads never ask for more than it holds: a damaged element length (4 GB in a 100 KB
    file) must not make pydicom allocate it; the short value then ends the data set like a truncated file."""

    def __init__(self, fp) -> None:
        self._fp = fp
        self._size = fp.seek(0, os.SEEK_END)
        self._pos = fp.seek(0)

    def read(self, n: int | None = -1) -> bytes:
        left = max(0, self._size - self._pos)
        data = self._fp.read(left if n is None or n < 0 or n > left else n)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = self._fp.seek(offset, whence)
        return self._pos

    def tell(self) -> int:  # kept here: pydicom asks after every element, and a real tell() is a system call
        return self._pos

    def __getattr__(self, name: str):
        return getattr(self._fp, name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self._fp.close()


def open_capped(path: str | Path) -> CappedFile:
    return CappedFile(open(path, "rb"))  # closed by CappedFile's context manager


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
        raise DicomFileProblem(f"cannot read file ({exc.strerror or 'input/output error'})") from None
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
        with open_capped(path) as fp:
            head = fp.read(132)
            if not looks_like_dicom(head):
                raise DicomFileProblem("not a DICOM file (no DICOM header found)")
            if head[128:132] == b"DICM" and DEFLATED_SYNTAX.encode() in fp.read(4096):
                _check_inflated_size(fp, path)
            fp.seek(0)
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=head[128:132] != b"DICM")
            except InvalidDicomError:
                raise DicomFileProblem("not a DICOM file (the file meta information is missing or damaged)") from None
            except (EOFError, struct.error):
                raise DicomFileProblem("truncated: the header ends early") from None
            except zlib.error:
                raise DicomFileProblem("the header says the data set is compressed (deflated), but it cannot be "
                                       "decompressed: the file is damaged") from None
            except _HEADER_ERRORS:
                raise DicomFileProblem("damaged DICOM header: an element has an impossible length or "
                                       "value type") from None
            try:
                ts = str(getattr(ds.get("file_meta", None), "TransferSyntaxUID", "") or "")
                if not ts:
                    ts = "1.2.840.10008.1.2" if ds.original_encoding[0] else "1.2.840.10008.1.2.1"
                header = header_from_dataset(ds, path, stat_key, ts)
            except _HEADER_ERRORS:
                # pydicom converts raw elements lazily, so a damaged one raises only when it is read
                raise DicomFileProblem("damaged DICOM header: an element has an impossible length or "
                                       "value type") from None
            pixel_tag = None if ts == DEFLATED_SYNTAX else _read_pixel_element(fp, ds, size, header)
    except OSError as exc:
        raise DicomFileProblem(f"cannot read file ({exc.strerror or 'input/output error'})") from None
    if ts == DEFLATED_SYNTAX:
        pixel_tag = "PixelData" if header.rows else None
    if pixel_tag is None:
        what = _non_image_kind(header)
        if what:
            raise DicomFileProblem(f"is a DICOM {what}, not an image")
        if header.rows and header.cols or "Image Storage" in pydicom.uid.UID(header.sop_class).name:
            raise DicomFileProblem("truncated: the file ends before its pixel data (cut short, or an element "
                                   "length in the header is damaged)")
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
    if header.pixel_offset is None and header.fragments and header.frames > header.fragments:
        raise DicomFileProblem(f"the header says {header.frames} images (NumberOfFrames) but the file holds "
                               f"{header.fragments} compressed image(s): the header is damaged")
    try:
        check_memory(path, header.decoded_bytes, f"{header.frames} image(s) of {header.cols} x {header.rows}")
    except StudyLoadError as exc:
        raise DicomFileProblem(exc.reason) from None
    return header


def _check_inflated_size(fp, path: Path, chunk: int = 1 << 20) -> None:
    """A deflated data set is inflated whole by pydicom: count what it unpacks to first (a zip bomb must not)."""
    pos = 132
    while True:  # walk the file meta elements (explicit VR little endian), as pydicom does, to where they end
        fp.seek(pos)
        head = fp.read(12)
        if len(head) < 8 or head[:2] != b"\x02\x00":
            break
        if head[4:6] in _LONG_VRS:
            if len(head) < 12:
                return
            pos += 12 + struct.unpack("<I", head[8:12])[0]
        else:
            pos += 8 + struct.unpack("<H", head[6:8])[0]
    fp.seek(pos)
    limit = memory_budget() // 3  # pydicom keeps the compressed and the inflated bytes, then builds the data set
    inflater, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
    try:
        while block := inflater.unconsumed_tail or fp.read(chunk):
            total += len(inflater.decompress(block, chunk))
            if total > limit:
                raise DicomFileProblem(f"the compressed (deflated) data set unpacks to more than "
                                       f"{human_bytes(limit)}, more than this computer can hold: it is damaged")
            if inflater.eof:
                return
    except zlib.error:
        raise DicomFileProblem("the header says the data set is compressed (deflated), but it cannot be "
                               "decompressed: the file is damaged") from None


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
        header.fragments = _check_encapsulated(fp, offset, size, endian, header)
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


def _check_encapsulated(fp, offset: int, size: int, endian: str, header: DicomHeader) -> int:
    """Walk the fragments to the sequence delimiter; returns how many follow the offset table."""
    pos, items = offset, 0
    while True:
        fp.seek(pos)
        raw = fp.read(8)
        if len(raw) < 8:
            raise DicomFileProblem("truncated: pixel data ends early (compressed frames cut off)")
        group, element, length = struct.unpack(endian + "HHI", raw)
        if (group, element) == (0xFFFE, 0xE0DD):
            if items < 2:
                raise DicomFileProblem("the compressed pixel data hold no image")
            return items - 1
        if (group, element) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
            raise DicomFileProblem("corrupt compressed pixel data (unexpected element in the fragments)")
        if items == 1 and header.transfer_syntax in _J2K_SYNTAXES:
            _check_j2k_size(fp.read(min(length, 64)), header)
        items += 1
        pos += 8 + length
        if pos > size:
            raise DicomFileProblem("truncated: pixel data ends early (compressed frames cut off)")


def _check_j2k_size(start: bytes, header: DicomHeader) -> None:
    """A JPEG 2000 codestream's SIZ marker gives the image's real size: it must match Rows and Columns."""
    if len(start) < 42 or start[:4] != b"\xff\x4f\xff\x51":
        return  # not a bare codestream (e.g. a JP2 file wrapper): the decoder will judge
    x, y, x0, y0 = struct.unpack(">4I", start[8:24])
    components = struct.unpack(">H", start[40:42])[0]
    width, height = x - x0, y - y0
    if (width, height) != (header.cols, header.rows):
        raise DicomFileProblem(f"the compressed image is {width} x {height} pixels but the header says "
                               f"{header.cols} x {header.rows} (Columns x Rows): the file is damaged")
    if components != header.samples:
        raise DicomFileProblem(f"the compressed image has {components} colour component(s) but the header says "
                               f"{header.samples} (SamplesPerPixel): the file is damaged")


def clear_header_cache() -> None:
    """Forget cached headers (benchmarks; tests that rewrite files in place with the same size and time)."""
    with _cache_lock:
        _cache.clear()
