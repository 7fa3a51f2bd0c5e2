"""Checking a NIfTI-1/NIfTI-2 header against itself and against the file, before nibabel is asked to read it.

nibabel trusts the header: a damaged one makes it raise its own errors (or allocate what the header declares).
:func:`check_header` reads the fixed header fields with ``struct`` and refuses, in plain words, what cannot be a
readable image: a header cut short, a dimension count or size out of range, an unknown or colour pixel type, a data
offset or scaling that is not a number, damaged extensions, or more pixel data than the file holds.
:func:`verify_gzip` reads a ``.nii.gz`` to its end to prove it is complete (done once, at import).
"""
from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.studies.limits import MAX_DEFLATE_RATIO, bytes_pair, human_bytes

# NIfTI datatype code -> numpy kind and size, for the scalar types a Volume can hold.
SCALAR_TYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8",
                1280: "u8"}
_OTHER_TYPES = {1: "1-bit (binary)", 32: "complex", 128: "RGB colour", 1536: "128-bit float", 1792: "complex",
                2048: "complex", 2304: "RGBA colour"}
GZIP_MAGIC = b"\x1f\x8b"


class NiftiProblem(Exception):
    """The file is not a readable NIfTI image; ``reason`` is for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class NiftiLayout:
    """What the header declares: version, shape, stored type, where the pixels start and how many bytes they are."""

    version: int
    shape: tuple[int, ...]
    dtype: np.dtype
    vox_offset: int
    nbytes: int  # all volumes
    scaled: bool

    @property
    def first_volume_bytes(self) -> int:
        return math.prod(self.shape[:3]) * self.dtype.itemsize


def read_head(path: Path, n: int = 540) -> tuple[bytes, bool]:
    """The first ``n`` bytes of the (decompressed) file and whether it is gzip-compressed."""
    with open(path, "rb") as fp:
        head = fp.read(n)
        if not head.startswith(GZIP_MAGIC):
            return head, False
    try:
        with gzip.open(path, "rb") as gz:
            return gz.read(n), True
    except (OSError, EOFError, zlib.error):
        raise NiftiProblem("damaged gzip compression: the start of the file cannot be decompressed") from None


def _dims_text(shape: tuple[int, ...]) -> str:
    return " x ".join(str(n) for n in shape)


def check_header(head: bytes, stored_size: int, compressed: bool) -> NiftiLayout:
    """The header's layout, or NiftiProblem saying what is wrong; ``stored_size`` is the file's size on disk."""
    version = 2 if len(head) >= 8 and head[4:8] in (b"n+2\x00", b"ni2\x00") else 1
    size = 540 if version == 2 else 348
    if len(head) < size:
        raise NiftiProblem(f"the NIfTI header is cut short ({len(head)} of {size} bytes): the file is incomplete")
    endian = "<" if struct.unpack("<i", head[:4])[0] == size else ">"
    if struct.unpack(endian + "i", head[:4])[0] != size:
        raise NiftiProblem("not a NIfTI file (the header size field is wrong)")
    if version == 1:
        dim = struct.unpack(endian + "8h", head[40:56])
        datatype = struct.unpack(endian + "h", head[70:72])[0]
        offset_value = struct.unpack(endian + "f", head[108:112])[0]
        slope, inter = struct.unpack(endian + "2f", head[112:120])
    else:
        datatype = struct.unpack(endian + "h", head[12:14])[0]
        dim = struct.unpack(endian + "8q", head[16:80])
        offset_value = struct.unpack(endian + "q", head[168:176])[0]
        slope, inter = struct.unpack(endian + "2d", head[176:192])
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise NiftiProblem(f"the header gives {ndim} as the number of dimensions (1 to 7 possible): it is damaged")
    shape = tuple(int(n) for n in dim[1:ndim + 1])
    for axis, n in enumerate(shape, start=1):
        if n < 1:
            raise NiftiProblem(f"the header gives the image size {n} along axis {axis}: an image needs at least 1")
    if ndim < 2 or len(shape) < 2:
        raise NiftiProblem(f"the header describes a {ndim}D list of values ({_dims_text(shape)}), not an image")
    if datatype not in SCALAR_TYPES:
        what = _OTHER_TYPES.get(datatype)
        if what:
            raise NiftiProblem(f"{what} NIfTI pixels are not supported (grey-level images only)")
        raise NiftiProblem(f"the header gives an unknown pixel type (code {datatype}): it is damaged")
    dtype = np.dtype(endian + SCALAR_TYPES[datatype])
    if not math.isfinite(offset_value) or offset_value < 0:
        raise NiftiProblem(f"the header gives an impossible start of the pixel data ({offset_value})")
    vox_offset = int(offset_value)
    if vox_offset < size + 4:  # a single-file NIfTI's pixels follow the header and its 4-byte extension flag
        raise NiftiProblem(f"the header puts the pixel data at byte {vox_offset}, inside the header itself")
    scaled = math.isfinite(slope) and slope != 0 and (slope, inter) != (1.0, 0.0)
    if scaled and not math.isfinite(inter):
        raise NiftiProblem(f"the header's value scaling is damaged (intercept {inter})")
    capacity = stored_size * MAX_DEFLATE_RATIO if compressed else stored_size
    if vox_offset > capacity:
        raise NiftiProblem(f"the header puts the pixel data at byte {vox_offset}, beyond the end of a "
                           f"{'compressed ' if compressed else ''}file of {human_bytes(stored_size)}: it is damaged")
    nbytes = math.prod(shape) * dtype.itemsize
    held, wanted = bytes_pair(max(0, stored_size - vox_offset), nbytes)
    declared = f"the header declares {_dims_text(shape)} voxels ({wanted} of pixel data)"
    if not compressed and vox_offset + nbytes > stored_size:
        raise NiftiProblem(f"{declared} but the file holds only {held} of them: it is damaged or incomplete")
    if compressed and vox_offset + nbytes > stored_size * MAX_DEFLATE_RATIO:
        raise NiftiProblem(f"{declared}, more than a compressed file of {human_bytes(stored_size)} can hold: "
                           "the header is damaged")
    return NiftiLayout(version, shape, dtype, vox_offset, nbytes, scaled)


def check_extensions(path: Path, layout: NiftiLayout, compressed: bool) -> None:
    """Header extensions (between the header and the pixel data) must chain to within the space before the pixels."""
    size = 540 if layout.version == 2 else 348
    end = min(layout.vox_offset, 1 << 24)  # nobody writes extensions of more than 16 MB before the pixels
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as fp:
            block = fp.read(end)
    except (OSError, EOFError, zlib.error):
        raise NiftiProblem("damaged gzip compression: the header cannot be decompressed") from None
    if len(block) < size + 4 or block[size] == 0:
        return
    endian = "<" if struct.unpack("<i", block[:4])[0] == size else ">"
    pos = size + 4
    while pos + 8 <= end:
        esize, _ = struct.unpack(endian + "2i", block[pos:pos + 8])
        if esize < 16 or esize % 16 or pos + esize > end:
            raise NiftiProblem("the header extension block is damaged (its size does not fit the file)")
        pos += esize


def verify_gzip(path: Path, needed: int, chunk: int = 1 << 20) -> None:
    """Decompress the whole file (nothing kept) to prove it is complete and holds ``needed`` bytes."""
    total = 0
    try:
        with gzip.open(path, "rb") as fp:
            while True:
                block = fp.read(chunk)
                if not block:
                    break
                total += len(block)
    except EOFError:
        raise NiftiProblem("the compressed file is cut short: it is incomplete") from None
    except (OSError, zlib.error):
        raise NiftiProblem("damaged gzip compression: the file cannot be decompressed to its end") from None
    if total < needed:
        held, wanted = bytes_pair(total, needed)
        raise NiftiProblem(f"the file holds {held} once decompressed, but its header declares {wanted} of header "
                           "and pixel data: it is damaged or incomplete")
