"""What the DICOM loader keeps of one file (:class:`DicomHeader`) and how it is taken from a pydicom dataset.

Only geometry, pixel layout and de-identified descriptors are kept: no names or IDs; the patient's age is kept (or
derived from the birth and study dates), the birth date itself is not. Enhanced multi-frame functional groups fill in
per-frame positions and rescale.
"""
from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pydicom.datadict
import pydicom.multival

NATIVE_LE_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_MAX_NUMBER = 1e12  # beyond this a rescale, spacing or thickness value is damage, not data
_MAX_POSITION_MM = 1e6  # a kilometre from the scanner's origin: not a position in a patient
_MAX_SPACING_MM = 1e4
_MAX_FRAMES = 1 << 31
_US_VRS = {"US", "SS", "UN", "OW", None}  # as written, as some old writers wrote it, or implicit VR (None)


class DicomFileProblem(Exception):
    """One file cannot be imported; ``reason`` is shown to the user next to the file name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class DicomHeader:
    """What the loader keeps of one file: geometry, pixel layout and de-identified descriptors (no names/IDs)."""

    path: Path
    stat_key: tuple[int, int]
    transfer_syntax: str
    sop_class: str = ""
    series_uid: str = ""
    study_uid: str = ""
    frame_of_reference: str = ""
    modality: str = "OT"
    series_description: str = ""
    study_description: str = ""
    study_date: str = ""
    series_time: str = ""
    series_number: str = ""
    body_part: str = ""
    patient_age: str | None = None
    patient_sex: str | None = None
    rows: int = 0
    cols: int = 0
    frames: int = 1
    samples: int = 1
    photometric: str = "MONOCHROME2"
    bits_allocated: int = 16
    bits_stored: int = 16
    pixel_rep: int = 0
    ipp: tuple[float, float, float] | None = None
    iop: tuple[float, ...] | None = None
    pixel_spacing: tuple[float, float] | None = None  # (between rows, between columns) mm
    pixel_spacing_source: str = ""
    spacing_between_slices: float | None = None
    slice_thickness: float | None = None
    slope: float = 1.0
    intercept: float = 0.0
    patient_orientation: tuple[str, str] | None = None
    echo: str = ""
    temporal: str = ""
    acquisition: str = ""
    frame_ipps: list[tuple[float, float, float]] | None = None  # enhanced multi-frame, per frame
    frame_rescale: list[tuple[float, float]] | None = None
    pixel_offset: int | None = None  # byte offset of native (uncompressed) pixel values in the file
    pixel_length: int = 0
    fragments: int = 0  # compressed: number of fragments after the offset table (at least one per frame)
    verified: bool = False  # compressed: the first frame was decoded once (import)

    @property
    def has_geometry(self) -> bool:
        return self.iop is not None and (self.ipp is not None or bool(self.frame_ipps))

    @property
    def fast_native(self) -> bool:
        return (self.pixel_offset is not None and self.transfer_syntax in NATIVE_LE_SYNTAXES
                and self.samples == 1 and self.bits_allocated in (8, 16, 32))

    @property
    def decoded_bytes(self) -> int:
        """Bytes of all frames once decoded, as the header declares them."""
        return self.rows * self.cols * self.frames * self.samples * max(1, self.bits_allocated // 8)

    @property
    def stored_dtype(self) -> np.dtype:
        if self.bits_allocated == 1:
            return np.dtype(np.uint8)
        kind = "i" if self.pixel_rep else "u"
        return np.dtype(f"<{kind}{max(1, self.bits_allocated // 8)}")


@functools.cache
def _tag(keyword: str) -> int:
    return int(pydicom.datadict.tag_for_keyword(keyword))


def _value(ds, keyword: str):
    """The element's value without pydicom's conversion when it is still raw (bytes): ~5x faster for scanning."""
    elem = ds.get_item(_tag(keyword))
    return None if elem is None else elem.value


def _text(ds, keyword: str) -> str:
    """ASCII-valued elements (UI, CS, DA, TM, AS, DS, IS); multiple values stay backslash-separated."""
    value = _value(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ").strip()
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def _described(ds, keyword: str) -> str:
    """Free-text elements (LO, SH): decoded by pydicom with the dataset's character set."""
    try:
        value = ds.get(keyword)
    except (ValueError, LookupError, UnicodeError):
        return ""
    return "" if value is None else str(value).strip()


def _us(ds, keyword: str, default: int) -> int:
    elem = ds.get_item(_tag(keyword))
    if elem is None or elem.value is None:
        return default
    if getattr(elem, "VR", None) not in _US_VRS:
        raise DicomFileProblem(f"{keyword} is stored as {elem.VR} instead of US: the header is damaged")
    value = elem.value
    if isinstance(value, bytes):
        if len(value) < 2:
            return default
        return struct.unpack("<H" if elem.is_little_endian is not False else ">H", value[:2])[0]
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _number(ds, keyword: str, default: float | None = None) -> float | None:
    return _float(_text(ds, keyword).split("\\")[0], default)


def _numbers(ds, keyword: str, n: int) -> tuple[float, ...] | None:
    text = _text(ds, keyword)
    return _floats(text.split("\\"), n) if text else None


def _float(value, default: float | None = None) -> float | None:
    """A finite number of sensible size, else ``default`` (NaN, inf and 1e308 are damage, not values)."""
    try:
        number = float(value) if value is not None and value != "" else default
    except (TypeError, ValueError, OverflowError):
        return default
    return number if number is None or abs(number) < _MAX_NUMBER else default


def _floats(value, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def header_from_dataset(ds, path: Path, stat_key: tuple[int, int], ts: str) -> DicomHeader:
    file_meta = ds.get("file_meta", None)
    sop_class = _text(ds, "SOPClassUID") or str(getattr(file_meta, "MediaStorageSOPClassUID", "") or "")
    h = DicomHeader(path=path, stat_key=stat_key, transfer_syntax=ts, sop_class=sop_class)
    h.series_uid = _text(ds, "SeriesInstanceUID")
    h.study_uid = _text(ds, "StudyInstanceUID")
    h.frame_of_reference = _text(ds, "FrameOfReferenceUID")
    h.modality = _text(ds, "Modality").upper() or "OT"
    h.series_description = _described(ds, "SeriesDescription")
    h.study_description = _described(ds, "StudyDescription")
    h.study_date = _text(ds, "StudyDate")
    h.series_time = _text(ds, "SeriesTime")
    h.series_number = _text(ds, "SeriesNumber")
    h.body_part = _text(ds, "BodyPartExamined").upper()
    h.patient_age = _patient_age(ds)
    sex = _text(ds, "PatientSex").upper()
    h.patient_sex = sex if sex in ("M", "F", "O") else None
    h.rows = _us(ds, "Rows", 0)
    h.cols = _us(ds, "Columns", 0)
    h.frames = _frames(ds)
    h.samples = _us(ds, "SamplesPerPixel", 1)
    h.photometric = _text(ds, "PhotometricInterpretation").upper() or "MONOCHROME2"
    h.bits_allocated = _us(ds, "BitsAllocated", 16)
    h.bits_stored = _us(ds, "BitsStored", h.bits_allocated) or h.bits_allocated
    h.pixel_rep = _us(ds, "PixelRepresentation", 0)
    _check_pixel_layout(h)
    h.ipp = _position(_numbers(ds, "ImagePositionPatient", 3))
    h.iop = _orientation(_numbers(ds, "ImageOrientationPatient", 6))
    spacing = _numbers(ds, "PixelSpacing", 2)
    h.pixel_spacing_source = "PixelSpacing" if spacing else ""
    if spacing is None:
        spacing = _numbers(ds, "ImagerPixelSpacing", 2)
        h.pixel_spacing_source = "ImagerPixelSpacing" if spacing else ""
    h.pixel_spacing = _spacing(spacing)  # type: ignore[assignment]
    h.spacing_between_slices = _step(_number(ds, "SpacingBetweenSlices"))
    h.slice_thickness = _step(_number(ds, "SliceThickness"))
    h.slope = _number(ds, "RescaleSlope", 1.0) or 1.0
    h.intercept = _number(ds, "RescaleIntercept", 0.0) or 0.0
    orientation = _text(ds, "PatientOrientation").split("\\")
    if len(orientation) == 2 and all(orientation):
        h.patient_orientation = (orientation[0].upper(), orientation[1].upper())
    h.echo = _text(ds, "EchoNumbers")
    h.temporal = _text(ds, "TemporalPositionIdentifier")
    h.acquisition = _text(ds, "AcquisitionNumber")
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        _read_functional_groups(ds, h)
    return h


def _frames(ds) -> int:
    text = _text(ds, "NumberOfFrames").split("\\")[0]
    if not text:
        return 1
    try:
        value = float(text)
    except ValueError:
        raise DicomFileProblem(f"NumberOfFrames {text!r} is not a number: the header is damaged") from None
    if not -_MAX_FRAMES < value < _MAX_FRAMES:  # also NaN
        raise DicomFileProblem(f"NumberOfFrames {text!r} is not a possible number of images: the header is damaged")
    return max(1, int(value))


def _check_pixel_layout(h: DicomHeader) -> None:
    if h.bits_allocated not in (1, 8, 16, 32):
        what = "floating-point or 64-bit pixels are" if h.bits_allocated == 64 else "it is"
        raise DicomFileProblem(f"BitsAllocated is {h.bits_allocated} (1, 8, 16 or 32 expected): {what} not "
                               "supported")
    if h.samples not in (1, 3, 4):
        raise DicomFileProblem(f"SamplesPerPixel is {h.samples} (1 for grey, 3 for colour): the header is damaged")
    h.bits_stored = min(h.bits_stored, h.bits_allocated)


def _position(ipp: tuple[float, ...] | None) -> tuple[float, ...] | None:
    if ipp is not None and max(abs(v) for v in ipp) > _MAX_POSITION_MM:
        coords = ", ".join(f"{v:g}" for v in ipp)
        raise DicomFileProblem(f"ImagePositionPatient ({coords}) mm is not a position in a patient: the header is "
                               "damaged")
    return ipp


def _orientation(iop: tuple[float, ...] | None) -> tuple[float, ...] | None:
    """Row and column directions that are not zero and not parallel, else no orientation (a projection)."""
    if iop is None:
        return None
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:])
    if np.linalg.norm(row) < 1e-3 or np.linalg.norm(col) < 1e-3 or np.linalg.norm(np.cross(row, col)) < 1e-3 * (
            np.linalg.norm(row) * np.linalg.norm(col)):
        return None
    return iop


def _spacing(spacing: tuple[float, ...] | None) -> tuple[float, ...] | None:
    return spacing if spacing and 0 < min(spacing) and max(spacing) < _MAX_SPACING_MM else None


def _step(value: float | None) -> float | None:
    return value if value is not None and 0 < abs(value) < _MAX_SPACING_MM else None


def _read_functional_groups(ds, h: DicomHeader) -> None:
    """Enhanced multi-frame: geometry and rescale from the shared / per-frame functional groups."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared = shared[0] if shared else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []

    def first(item, seq: str, attr: str):
        if item is None or seq not in item or not item[seq].value:
            return None
        return item[seq][0].get(attr)

    def lookup(seq: str, attr: str, frame_item=None):
        value = first(frame_item, seq, attr)
        return value if value is not None else first(shared, seq, attr)

    frame0 = per_frame[0] if per_frame else None
    iop = _orientation(_floats(lookup("PlaneOrientationSequence", "ImageOrientationPatient", frame0), 6))
    h.iop = iop or h.iop
    spacing = _spacing(_floats(lookup("PixelMeasuresSequence", "PixelSpacing", frame0), 2))
    if spacing:
        h.pixel_spacing, h.pixel_spacing_source = spacing, "PixelSpacing"
    h.spacing_between_slices = _step(_float(lookup("PixelMeasuresSequence", "SpacingBetweenSlices", frame0),
                                            h.spacing_between_slices))
    h.slice_thickness = _step(_float(lookup("PixelMeasuresSequence", "SliceThickness", frame0), h.slice_thickness))
    positions, rescale = [], []
    for item in per_frame:
        positions.append(_position(_floats(first(item, "PlanePositionSequence", "ImagePositionPatient"), 3)))
        slope = _float(lookup("PixelValueTransformationSequence", "RescaleSlope", item), h.slope)
        inter = _float(lookup("PixelValueTransformationSequence", "RescaleIntercept", item), h.intercept)
        rescale.append((slope or 1.0, inter or 0.0))
    if per_frame and len(per_frame) == h.frames and all(p is not None for p in positions):
        h.frame_ipps = positions  # type: ignore[assignment]
    elif shared is not None and h.ipp is None:
        h.ipp = _position(_floats(first(shared, "PlanePositionSequence", "ImagePositionPatient"), 3))
    if rescale and len(rescale) == h.frames:
        h.frame_rescale = rescale
        h.slope, h.intercept = rescale[0]
    else:
        h.slope = _float(first(shared, "PixelValueTransformationSequence", "RescaleSlope"), h.slope) or 1.0
        h.intercept = _float(first(shared, "PixelValueTransformationSequence", "RescaleIntercept"), h.intercept) or 0.0


def _patient_age(ds) -> str | None:
    """PatientAge as stored, else derived from birth and study dates (the birth date itself is not kept)."""
    age = _text(ds, "PatientAge")
    if age:
        return age
    birth = _parse_date(_text(ds, "PatientBirthDate"))
    ref = None
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        ref = _parse_date(_text(ds, keyword))
        if ref:
            break
    if birth is None or ref is None or ref < birth:
        return None
    years = ref.year - birth.year - ((ref.month, ref.day) < (birth.month, birth.day))
    if years >= 2:
        return f"{min(years, 999):03d}Y"
    months = (ref.year - birth.year) * 12 + ref.month - birth.month - (ref.day < birth.day)
    if months >= 1:
        return f"{months:03d}M"
    return f"{(ref - birth).days:03d}D"


def _parse_date(text: str) -> date | None:
    text = text.replace(".", "").replace("-", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None
