"""Mutation fuzzing of the study loaders: seeds from real images, structure-aware mutators, an isolated runner.

Shared by ``tests/test_studies_fuzz.py`` (hypothesis draws the mutations, about a minute in ``make test``) and
``benchmarks/fuzz_loaders.py`` (thousands of random mutants, counts per outcome).

- Seeds: slices of the bundled JPEG 2000 CT (as stored, and re-encoded uncompressed), NIfTI-1/NIfTI-2 files made from
  that CT (plain and gzip) plus the NIfTI samples in ../shared when present, and JPEG/PNG radiographs rendered from a
  CT slice (plus the AASCE radiographs in ../shared when present, read in place, never copied into the repo).
- Mutators know each format's fields (DICOM elements, NIfTI header fields, JPEG marker segments, PNG chunks) and
  put "interesting" values there (NaN, inf, 0, -1, 2**31-1, 65535, 1e308, unknown codes), change value types and
  lengths, cut files short and flip bytes, 1-3 edits per mutant.
- :class:`LoaderWorker` runs ``scan`` + ``load_series`` on each mutant in a child process under an address-space
  cap (RLIMIT_AS) with a time limit, and classifies the outcome: loaded, clean error, fallback (the loaders' safety
  net caught an exception no check foresaw), escape (an exception other than the project's own got out), memory
  (MemoryError or the child killed while allocating), hang, crash (the child died).
"""
from __future__ import annotations

import io
import multiprocessing
import os
import random
import re
import shutil
import struct
import tempfile
import traceback
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parents[1]
BUNDLED_CT = REPO / "resources" / "samples" / "ct_dicom_T11-T12"
SHARED = REPO.parent / "shared" / "data"
OUTCOMES = ("loaded", "clean error", "fallback", "escape", "memory", "hang", "crash")
# Words of library/Python error texts that must never reach a user's message.
RAW_TEXT = re.compile(r"Error\b|Exception|Traceback|broadcast|dtype|<[uif]\d|has no attribute|unpack requires|"
                      r"invalid literal|codec can't|out of range|errno|NoneType|\bint\(\)|\bfloat\(\)")


# --------------------------------------------------------------------------------------------------------------
# Choosers: the same mutators driven by hypothesis (tests) or random.Random (benchmark)


class RandomChooser:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, seq: Sequence):
        return seq[self.rng.randrange(len(seq))]

    def bytes(self, n: int) -> bytes:
        return self.rng.randbytes(n)


class HypothesisChooser:
    def __init__(self, data) -> None:
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def choice(self, seq: Sequence):
        return seq[self.data.draw(self.st.integers(0, len(seq) - 1))]

    def bytes(self, n: int) -> bytes:
        return self.data.draw(self.st.binary(min_size=n, max_size=n))


# --------------------------------------------------------------------------------------------------------------
# Generic byte mutations

def _truncate(buf: bytes, c) -> bytes:
    if len(buf) < 2:
        return buf
    cut = c.choice([c.int(0, min(len(buf) - 1, 600)), c.int(0, len(buf) - 1), len(buf) - c.int(1, 64)])
    return buf[:max(0, cut)]


def _flip(buf: bytes, c, lo: int = 0, hi: int | None = None) -> bytes:
    hi = len(buf) if hi is None else min(hi, len(buf))
    if hi - lo < 1:
        return buf
    start = c.int(lo, hi - 1)
    n = min(c.int(1, 16), hi - start)
    return buf[:start] + c.bytes(n) + buf[start + n:]


def _splice(buf: bytes, c) -> bytes:
    if len(buf) < 4:
        return buf
    start = c.int(0, len(buf) - 1)
    if c.int(0, 1):
        return buf[:start] + buf[start + c.int(1, 64):]  # delete
    return buf[:start] + c.bytes(c.int(1, 32)) + buf[start:]  # insert


# --------------------------------------------------------------------------------------------------------------
# DICOM

_ASCII_VALUES = [b"nan", b"inf", b"-inf", b"-1e308\\0\\1e308", b"1e308", b"0", b"-1", b"1", b"4", b"24", b"2147483647",
                 b"4294967296", b"99999999999", b"1e-300", b"0\\0\\0\\0\\0\\0", b"1\\0\\0\\1\\0\\0", b"", b"abc",
                 b"1\\2", b"\x00\x00", b"-0", b"1.5", b"NaN\\NaN", b"3\\3\\3"]
_BINARY_VALUES = [struct.pack("<H", v) for v in (0, 1, 3, 7, 12, 15, 16, 24, 32, 64, 0x7FFF, 0x8000, 0xFFFF)] + [
    struct.pack("<I", v) for v in (0, 1, 0x7FFFFFFF, 0xFFFFFFFF)] + [b"", b"\x00"]
_VRS = [b"US", b"UL", b"SS", b"SL", b"DS", b"IS", b"OB", b"OW", b"UN", b"SQ", b"LO", b"CS", b"UI", b"XX", b"zz",
        b"\x00\x00", b"FD", b"FL", b"AT", b"UT"]
_LONG = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_ADD_ELEMENTS = [(0x00280008, b"IS"), (0x00280100, b"US"), (0x00280002, b"US"), (0x00200032, b"DS"),
                 (0x00200037, b"DS"), (0x00280030, b"DS"), (0x00281053, b"DS"), (0x00281052, b"DS"),
                 (0x00180050, b"DS"), (0x00280004, b"CS"), (0x00280010, b"US"), (0x00280011, b"US")]


@dataclass
class Element:
    tag: int
    vr: bytes
    start: int  # offset of the element's tag
    header: int  # bytes of tag + VR + length
    length: int  # value length as stored (0xFFFFFFFF for undefined)
    end: int  # offset after the value (after the sequence delimiter for undefined length)


def dicom_elements(buf: bytes) -> list[Element]:
    """Top-level elements of an explicit VR little-endian Part 10 file (meta group included)."""
    out, pos = [], 132
    while pos + 8 <= len(buf):
        group, elem = struct.unpack("<HH", buf[pos:pos + 4])
        vr = buf[pos + 4:pos + 6]
        if vr in _LONG:
            if pos + 12 > len(buf):
                break
            length, header = struct.unpack("<I", buf[pos + 8:pos + 12])[0], 12
        else:
            length, header = struct.unpack("<H", buf[pos + 6:pos + 8])[0], 8
        if length == 0xFFFFFFFF:
            end = buf.find(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", pos + header)
            end = len(buf) if end < 0 else end + 8
        else:
            end = pos + header + length
        out.append(Element((group << 16) | elem, vr, pos, header, length, min(end, len(buf))))
        pos = end
    return out


def _element_bytes(tag: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b" " if vr not in (b"OB", b"UN", b"UI") else b"\x00"
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    if vr in _LONG:
        return head + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value) & 0xFFFF) + value


def mutate_dicom(buf: bytes, c) -> bytes:
    for _ in range(c.int(1, 3)):
        elements = dicom_elements(buf)
        pixel = next((e for e in elements if e.tag == 0x7FE00010), None)
        op = c.choice(["value", "value", "value", "vr", "length", "truncate", "flip", "flip_pixels", "delete",
                       "add", "splice"])
        if op in ("value", "vr", "length", "delete") and elements:
            e = c.choice(elements)
            if op == "value":
                value = c.choice(_BINARY_VALUES if e.vr in (b"US", b"UL", b"SS", b"SL") else _ASCII_VALUES)
                buf = buf[:e.start] + _element_bytes(e.tag, e.vr, value) + buf[e.end:]
            elif op == "vr":
                buf = buf[:e.start + 4] + c.choice(_VRS) + buf[e.start + 6:]
            elif op == "length":
                field = e.start + (8 if e.header == 12 else 6)
                fmt = "<I" if e.header == 12 else "<H"
                top = 0xFFFFFFFF if e.header == 12 else 0xFFFF
                value = c.choice([0, 1, top, max(0, e.length - 2), e.length + 2, c.int(0, top)])
                buf = buf[:field] + struct.pack(fmt, value & top) + buf[field + struct.calcsize(fmt):]
            else:
                buf = buf[:e.start] + buf[e.end:]
        elif op == "add":
            tag, vr = c.choice(_ADD_ELEMENTS)
            value = c.choice(_BINARY_VALUES if vr == b"US" else _ASCII_VALUES)
            at = next((e.start for e in elements if e.tag > tag), len(buf))
            if any(e.tag == tag for e in elements):
                old = next(e for e in elements if e.tag == tag)
                buf = buf[:old.start] + _element_bytes(tag, vr, value) + buf[old.end:]
            else:
                buf = buf[:at] + _element_bytes(tag, vr, value) + buf[at:]
        elif op == "truncate":
            buf = _truncate(buf, c)
        elif op == "flip_pixels" and pixel is not None:
            buf = _flip(buf, c, pixel.start + pixel.header, pixel.end)
        elif op == "splice":
            buf = _splice(buf, c)
        else:
            buf = _flip(buf, c)
    return buf


# --------------------------------------------------------------------------------------------------------------
# NIfTI

_NII1_FIELDS = ([(40 + 2 * k, "h") for k in range(8)] + [(70, "h"), (72, "h"), (108, "f"), (112, "f"), (116, "f"),
                (0, "i"), (252, "h"), (254, "h"), (348, "B")] + [(76 + 4 * k, "f") for k in range(8)]
                + [(256 + 4 * k, "f") for k in range(18)])
_NII2_FIELDS = ([(16 + 8 * k, "q") for k in range(8)] + [(12, "h"), (14, "h"), (168, "q"), (176, "d"), (184, "d"),
                (0, "i"), (344, "i"), (348, "i"), (540, "B")] + [(104 + 8 * k, "d") for k in range(8)]
                + [(352 + 8 * k, "d") for k in range(18)])
_INTS = [0, 1, -1, 2, 3, 4, 7, 8, 16, 24, 32, 64, 128, 255, 256, 511, 512, 1536, 2304, 32767, -32768, 2**31 - 1,
         2**62, 30000]
_FLOATS = [0.0, -0.0, 1.0, -1.0, 2.0, float("nan"), float("inf"), float("-inf"), 1e38, -1e38, 1e-38, 3e38, 1e300,
           352.0, 1e9]


def _pack(fmt: str, value) -> bytes:
    if fmt in "fd":
        try:
            return struct.pack("<" + fmt, float(value))
        except (OverflowError, struct.error):
            return struct.pack("<" + fmt, float("inf"))
    bits = struct.calcsize(fmt) * 8
    value = int(value) & ((1 << bits) - 1)
    signed = fmt.islower() and fmt != "B"
    if signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return struct.pack("<" + fmt, value)


def mutate_nifti_raw(raw: bytes, c) -> bytes:
    """Mutate an uncompressed little-endian NIfTI-1 or NIfTI-2 file."""
    fields = _NII2_FIELDS if raw[4:8] == b"n+2\x00" else _NII1_FIELDS
    for _ in range(c.int(1, 3)):
        op = c.choice(["field", "field", "field", "field", "truncate", "flip_header", "flip", "extension"])
        if op == "field":
            offset, fmt = c.choice(fields)
            if offset + struct.calcsize(fmt) > len(raw):
                continue
            value = c.choice(_FLOATS) if fmt in "fd" else c.choice(_INTS)
            raw = raw[:offset] + _pack(fmt, value) + raw[offset + struct.calcsize(fmt):]
        elif op == "extension":
            size = 540 if fields is _NII2_FIELDS else 348
            ext = struct.pack("<4B", 1, 0, 0, 0) + struct.pack("<2i", c.choice([0, 7, 8, 16, 32, -16, 1 << 30]), 6)
            raw = raw[:size] + ext + raw[size + len(ext):]
        elif op == "truncate":
            raw = _truncate(raw, c)
        elif op == "flip_header":
            raw = _flip(raw, c, 0, 560)
        else:
            raw = _flip(raw, c)
    return raw


def mutate_nifti(buf: bytes, c) -> bytes:
    """A .nii or .nii.gz mutant; for gzip, either the content (recompressed) or the compressed stream itself."""
    if buf[:2] != b"\x1f\x8b":
        return mutate_nifti_raw(buf, c)
    if c.int(0, 3) == 0:
        return _truncate(buf, c) if c.int(0, 1) else _flip(buf, c, 10)
    raw = zlib.decompress(buf, 31)
    return _gzip(mutate_nifti_raw(raw, c))


def _gzip(raw: bytes) -> bytes:
    out = io.BytesIO()
    import gzip

    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0) as gz:
        gz.write(raw)
    return out.getvalue()


# --------------------------------------------------------------------------------------------------------------
# Raster (JPEG, PNG)

def jpeg_segments(buf: bytes) -> list[tuple[int, int, int]]:
    """(offset of the marker, marker byte, segment length) up to the start of scan."""
    out, pos = [], 2
    while pos + 4 <= len(buf) and buf[pos] == 0xFF:
        marker = buf[pos + 1]
        length = struct.unpack(">H", buf[pos + 2:pos + 4])[0]
        out.append((pos, marker, length))
        if marker == 0xDA:
            break
        pos += 2 + length
    return out


def mutate_jpeg(buf: bytes, c) -> bytes:
    for _ in range(c.int(1, 3)):
        segments = jpeg_segments(buf)
        sof = next((s for s in segments if s[1] in (0xC0, 0xC1, 0xC2)), None)
        sos = next((s for s in segments if s[1] == 0xDA), None)
        op = c.choice(["sof", "sof", "segment", "length", "truncate", "flip_scan", "flip", "marker"])
        if op == "sof" and sof is not None:
            pos = sof[0] + 4
            field = c.choice([(1, ">H"), (3, ">H"), (0, ">B"), (5, ">B"), (7, ">B"), (8, ">B")])
            value = c.choice([0, 1, 2, 3, 4, 8, 12, 16, 255, 12000, 30000, 65535])
            off, fmt = field
            value &= (1 << (8 * struct.calcsize(fmt))) - 1
            buf = buf[:pos + off] + struct.pack(fmt, value) + buf[pos + off + struct.calcsize(fmt):]
        elif op == "segment" and segments:
            pos, _, length = c.choice(segments)
            buf = _flip(buf, c, pos + 4, pos + 2 + length)
        elif op == "length" and segments:
            pos = c.choice(segments)[0]
            buf = buf[:pos + 2] + struct.pack(">H", c.choice([0, 1, 2, 3, 0xFFFF, c.int(0, 0xFFFF)])) + buf[pos + 4:]
        elif op == "marker" and segments:
            pos = c.choice(segments)[0]
            buf = buf[:pos + 1] + bytes([c.choice([0xC0, 0xC2, 0xC3, 0xC9, 0xCF, 0xD9, 0xDA, 0xDB, 0xC4, 0x00])]) + \
                buf[pos + 2:]
        elif op == "flip_scan" and sos is not None:
            buf = _flip(buf, c, sos[0] + 2 + sos[2])
        elif op == "truncate":
            buf = _truncate(buf, c)
        else:
            buf = _flip(buf, c)
    return buf


def png_chunks(buf: bytes) -> list[tuple[int, bytes, int]]:
    """(offset of the length field, chunk type, data length)."""
    out, pos = [], 8
    while pos + 8 <= len(buf):
        length = struct.unpack(">I", buf[pos:pos + 4])[0]
        out.append((pos, buf[pos + 4:pos + 8], length))
        pos += 12 + length
    return out


def _fix_crc(buf: bytes, pos: int, length: int) -> bytes:
    end = pos + 8 + length
    if end + 4 > len(buf):
        return buf
    crc = zlib.crc32(buf[pos + 4:end]) & 0xFFFFFFFF
    return buf[:end] + struct.pack(">I", crc) + buf[end + 4:]


def mutate_png(buf: bytes, c) -> bytes:
    for _ in range(c.int(1, 3)):
        chunks = png_chunks(buf)
        ihdr = next((ch for ch in chunks if ch[1] == b"IHDR"), None)
        idats = [ch for ch in chunks if ch[1] == b"IDAT"]
        op = c.choice(["ihdr", "ihdr", "idat", "length", "truncate", "flip"])
        if op == "ihdr" and ihdr is not None:
            pos = ihdr[0] + 8
            off, fmt = c.choice([(0, ">I"), (4, ">I"), (8, ">B"), (9, ">B"), (10, ">B"), (12, ">B")])
            value = c.choice([0, 1, 2, 3, 4, 6, 7, 8, 16, 255, 30000, 65535, 0x7FFFFFFF, 0xFFFFFFFF])
            value &= (1 << (8 * struct.calcsize(fmt))) - 1
            buf = buf[:pos + off] + struct.pack(fmt, value) + buf[pos + off + struct.calcsize(fmt):]
            if c.int(0, 3):
                buf = _fix_crc(buf, ihdr[0], ihdr[2])
        elif op == "idat" and idats:
            pos, _, length = c.choice(idats)
            buf = _flip(buf, c, pos + 8, pos + 8 + length)
            if c.int(0, 3):
                buf = _fix_crc(buf, pos, length)
        elif op == "length" and chunks:
            pos = c.choice(chunks)[0]
            buf = buf[:pos] + struct.pack(">I", c.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, c.int(0, 1 << 20)])) + \
                buf[pos + 4:]
        elif op == "truncate":
            buf = _truncate(buf, c)
        else:
            buf = _flip(buf, c)
    return buf


def mutate(kind: str, buf: bytes, c) -> bytes:
    if kind == "dicom":
        return mutate_dicom(buf, c)
    if kind == "nifti":
        return mutate_nifti(buf, c)
    if buf.startswith(b"\x89PNG"):
        return mutate_png(buf, c)
    return mutate_jpeg(buf, c)


# --------------------------------------------------------------------------------------------------------------
# Seeds

@dataclass
class Seed:
    kind: str  # dicom | nifti | raster
    name: str  # file name the mutant gets (extension matters for NIfTI / raster)
    data: bytes
    neighbours: tuple[tuple[str, bytes], ...] = ()  # written beside the mutant (the rest of a DICOM series)


def make_seeds(workdir: Path, include_shared: bool = True) -> dict[str, list[Seed]]:
    """Seeds per kind, written from the bundled CT (always there) and ../shared samples when present."""
    import nibabel as nib
    import numpy as np
    import pydicom
    from PIL import Image
    from pydicom.uid import ExplicitVRLittleEndian

    workdir.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in BUNDLED_CT.iterdir() if p.is_file())
    middle = files[len(files) // 2 - 1:len(files) // 2 + 2]
    native = []
    for path in middle:
        ds = pydicom.dcmread(path)
        ds.decompress()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        native.append(out.getvalue())
    # keep the seeds small: the native slice cropped to 128 x 128 keeps the real header and real pixels
    ds = pydicom.dcmread(io.BytesIO(native[1]))
    crop = ds.pixel_array[192:320, 192:320].copy()
    ds.Rows, ds.Columns = crop.shape
    ds.PixelData = crop.tobytes()
    small = io.BytesIO()
    ds.save_as(small, enforce_file_format=True)
    neighbours = (("n0.dcm", native[0]), ("n2.dcm", native[2]))
    seeds: dict[str, list[Seed]] = {
        "dicom": [Seed("dicom", "j2k.dcm", middle[1].read_bytes(), neighbours),
                  Seed("dicom", "native.dcm", native[1], neighbours),
                  Seed("dicom", "small.dcm", small.getvalue()),
                  *_multiframe_seeds(native), _radiograph_seed(small.getvalue()), _deflated_seed(small.getvalue())],
    }
    ct = pydicom.dcmread(middle[1])
    pixels = ct.pixel_array.astype(np.int16)
    hu = pixels * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
    volume = np.stack([pixels[::4, ::4]] * 6, axis=-1)
    nifti = []
    for klass, name in ((nib.Nifti1Image, "ct.nii"), (nib.Nifti1Image, "ct.nii.gz"), (nib.Nifti2Image, "ct2.nii")):
        img = klass(volume, np.diag([-0.98 * 4, -0.98 * 4, 2.0, 1.0]))
        img.header.set_slope_inter(1.0, -1024.0)
        nib.save(img, workdir / name)
        nifti.append(Seed("nifti", name, (workdir / name).read_bytes()))
    if include_shared:
        for rel in ("spine-samples/sct_cervical_t2_mri_C2-C5/t2.nii.gz",
                    "spine-samples/tptbox_ct_lumbar_crop_L2-L4/sub-ct_seg-vert_label-22_msk.nii.gz"):
            if (SHARED / rel).is_file():
                nifti.append(Seed("nifti", Path(rel).name, (SHARED / rel).read_bytes()))
    nifti.append(Seed("nifti", "volume.data", nifti[1].data))  # found by content, opened without a .nii name
    seeds["nifti"] = nifti
    grey = np.clip((hu + 160) / 400 * 255, 0, 255).astype(np.uint8)[::2, ::2]
    raster = []
    for name, kwargs in (("ct.jpg", {"quality": 85}), ("ct_progressive.jpg", {"quality": 85, "progressive": True}),
                         ("ct.png", {})):
        Image.fromarray(grey).save(workdir / name, **kwargs)
        raster.append(Seed("raster", name, (workdir / name).read_bytes()))
    Image.fromarray(grey.astype(np.uint16) * 257).save(workdir / "ct16.png")
    raster.append(Seed("raster", "ct16.png", (workdir / "ct16.png").read_bytes()))
    if include_shared:
        images = SHARED / "xray-aasce-train" / "images"
        if images.is_dir():
            for path in sorted(images.iterdir())[:2]:
                if path.suffix.lower() in (".jpg", ".jpeg", ".png") and path.stat().st_size < 4 << 20:
                    raster.append(Seed("raster", path.name, path.read_bytes()))
    seeds["raster"] = raster
    return seeds


def _multiframe_seeds(native: list[bytes]) -> list[Seed]:
    """An enhanced multi-frame file of three real slices (cropped), uncompressed and JPEG 2000 (one frame each)."""
    import numpy as np
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import JPEG2000Lossless

    slices = [pydicom.dcmread(io.BytesIO(b)) for b in native]
    ds = slices[1]
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT
    frames = np.stack([s.pixel_array[224:288, 224:288] for s in slices])
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.NumberOfFrames = len(frames)
    ds.PixelData = frames.tobytes()
    per_frame = []
    for s in slices:
        position, item = Dataset(), Dataset()
        position.ImagePositionPatient = s.ImagePositionPatient
        item.PlanePositionSequence = DicomSequence([position])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    out = []
    for name, compress in (("multiframe.dcm", False), ("multiframe_j2k.dcm", True)):
        if compress:
            ds.compress(JPEG2000Lossless)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(Seed("dicom", name, buf.getvalue()))
    return out


def _deflated_seed(small: bytes) -> Seed:
    """The cropped slice with its data set deflated (zlib), as some archives send it."""
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = pydicom.dcmread(io.BytesIO(small))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return Seed("dicom", "deflated.dcm", buf.getvalue())


def _radiograph_seed(small: bytes) -> Seed:
    """A DX projection (no patient position, MONOCHROME1, imager pixel spacing) from the cropped CT slice."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(small))
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # DX for presentation
    ds.Modality, ds.PhotometricInterpretation = "DX", "MONOCHROME1"
    ds.ImagerPixelSpacing = ["0.15", "0.15"]
    ds.PatientOrientation = ["P", "F"]
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return Seed("dicom", "dx.dcm", buf.getvalue())


# --------------------------------------------------------------------------------------------------------------
# Running one case, in a child process under an address-space cap

def classify(case_dir: Path, extract_dir: Path) -> tuple[str, str]:
    """Scan + load everything in ``case_dir``; the worst outcome and a one-line detail."""
    from core.studies import StudyLoadError, load_series, scan

    worst, detail = "loaded", ""

    def note(outcome: str, text: str) -> None:
        nonlocal worst, detail
        if OUTCOMES.index(outcome) > OUTCOMES.index(worst):
            worst, detail = outcome, text

    try:
        result = scan(case_dir, extract_dir=extract_dir)
    except MemoryError:
        return "memory", "scan: MemoryError"
    except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
        return "escape", f"scan: {_where(exc)}"
    for problem in result.problems:
        if "not enough memory" in problem.reason:  # a MemoryError was caught: an allocation was attempted
            note("memory", str(problem))
        elif getattr(problem, "internal", ""):
            note("memory" if problem.internal == "MemoryError" else "fallback", f"{problem.internal}: {problem}")
        else:
            note("clean error", str(problem))
            if RAW_TEXT.search(problem.reason):
                detail_raw = f"raw text: {problem.reason}"
                note("fallback", detail_raw)
    for source in result.series:
        try:
            volume = load_series(source)
        except StudyLoadError as exc:
            if "not enough memory" in exc.reason:
                note("memory", f"load: {exc}")
            elif getattr(exc, "internal", ""):
                note("memory" if exc.internal == "MemoryError" else "fallback", f"load: {exc.internal}: {exc}")
            else:
                note("clean error", f"load: {exc}")
                if RAW_TEXT.search(exc.reason):
                    note("fallback", f"raw text: {exc.reason}")
            continue
        except MemoryError:
            note("memory", "load: MemoryError")
            continue
        except Exception as exc:  # noqa: BLE001
            note("escape", f"load: {_where(exc)}")
            continue
        import numpy as np

        if volume.data.ndim != 3 or 0 in volume.data.shape or not np.all(np.isfinite(volume.affine)):
            note("escape", f"load: unusable volume {volume.data.shape}")
        del volume
    return worst, detail


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/core/" in f.filename] or frames
    place = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    return f"{type(exc).__name__} at {place}: {str(exc)[:160]}"


def _worker_main(conn, mem_cap: int) -> None:
    import resource

    if mem_cap:
        resource.setrlimit(resource.RLIMIT_AS, (mem_cap, mem_cap))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import logging
    import warnings

    warnings.simplefilter("ignore")  # libraries warn about every damaged field; the outcome is what counts
    logging.disable(logging.CRITICAL)
    import core.studies  # noqa: F401 - imported once, before the first case
    from core.studies.dicom import clear_header_cache

    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        case_dir, extract_dir = (Path(p) for p in message)
        try:
            outcome = classify(case_dir, extract_dir)
        except MemoryError:
            outcome = ("memory", "MemoryError while classifying")
        clear_header_cache()
        conn.send(outcome)


class LoaderWorker:
    """A child process running :func:`classify` on case folders; restarted after a hang or a crash."""

    def __init__(self, mem_cap: int = 4 << 30, timeout: float = 60.0) -> None:
        self.mem_cap, self.timeout = mem_cap, timeout
        self._ctx = multiprocessing.get_context("spawn")
        self._proc = None
        self._conn = None

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_worker_main, args=(child, self.mem_cap), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        self._proc = self._conn = None

    def run(self, case_dir: Path, extract_dir: Path) -> tuple[str, str]:
        if self._proc is None or not self._proc.is_alive():
            self._start()
        self._conn.send((str(case_dir), str(extract_dir)))
        if not self._conn.poll(self.timeout):
            self._stop()
            return "hang", f"no answer within {self.timeout:.0f} s"
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(5)
            code = self._proc.exitcode
            self._stop()
            return "crash", f"worker died (exit code {code})"

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._proc.join(10)
        self._stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_case(root: Path, seed: Seed, data: bytes, n: int) -> Path:
    """A fresh folder per case (unique paths: the DICOM header cache keys on path, size and mtime)."""
    case_dir = root / f"case{n:06d}"
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    (case_dir / seed.name).write_bytes(data)
    for name, neighbour in seed.neighbours:
        (case_dir / name).write_bytes(neighbour)
    return case_dir


def temp_root(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
