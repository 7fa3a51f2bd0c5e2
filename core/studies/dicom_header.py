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

    @property
    def has_geometry(self) -> bool:
        return self.iop is not None and (self.ipp is not None or bool(self.frame_ipps))

    @property
    def fast_native(self) -> bool:
        return (self.pixel_offset is not None and self.transfer_syntax in NATIVE_LE_SYNTAXES
                and self.samples == 1 and self.bits_allocated in (8, 16, 32))

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
    try:
        return float(value) if value is not None and value != "" else default
    except (TypeError, ValueError):
        return default


def _floats(value, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
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
    h.frames = max(1, int(_number(ds, "NumberOfFrames", 1) or 1))
    h.samples = _us(ds, "SamplesPerPixel", 1)
    h.photometric = _text(ds, "PhotometricInterpretation").upper() or "MONOCHROME2"
    h.bits_allocated = _us(ds, "BitsAllocated", 16)
    h.bits_stored = _us(ds, "BitsStored", h.bits_allocated) or h.bits_allocated
    h.pixel_rep = _us(ds, "PixelRepresentation", 0)
    h.ipp = _numbers(ds, "ImagePositionPatient", 3)
    h.iop = _numbers(ds, "ImageOrientationPatient", 6)
    spacing = _numbers(ds, "PixelSpacing", 2)
    h.pixel_spacing_source = "PixelSpacing" if spacing else ""
    if spacing is None:
        spacing = _numbers(ds, "ImagerPixelSpacing", 2)
        h.pixel_spacing_source = "ImagerPixelSpacing" if spacing else ""
    h.pixel_spacing = spacing if spacing and min(spacing) > 0 else None  # type: ignore[assignment]
    h.spacing_between_slices = _number(ds, "SpacingBetweenSlices")
    h.slice_thickness = _number(ds, "SliceThickness")
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
    iop = _floats(lookup("PlaneOrientationSequence", "ImageOrientationPatient", frame0), 6)
    h.iop = iop or h.iop
    spacing = _floats(lookup("PixelMeasuresSequence", "PixelSpacing", frame0), 2)
    if spacing and min(spacing) > 0:
        h.pixel_spacing, h.pixel_spacing_source = spacing, "PixelSpacing"
    h.spacing_between_slices = _float(lookup("PixelMeasuresSequence", "SpacingBetweenSlices", frame0),
                                      h.spacing_between_slices)
    h.slice_thickness = _float(lookup("PixelMeasuresSequence", "SliceThickness", frame0), h.slice_thickness)
    positions, rescale = [], []
    for item in per_frame:
        positions.append(_floats(first(item, "PlanePositionSequence", "ImagePositionPatient"), 3))
        slope = _float(lookup("PixelValueTransformationSequence", "RescaleSlope", item), h.slope)
        inter = _float(lookup("PixelValueTransformationSequence", "RescaleIntercept", item), h.intercept)
        rescale.append((slope or 1.0, inter or 0.0))
    if per_frame and len(per_frame) == h.frames and all(p is not None for p in positions):
        h.frame_ipps = positions  # type: ignore[assignment]
    elif shared is not None and h.ipp is None:
        h.ipp = _floats(first(shared, "PlanePositionSequence", "ImagePositionPatient"), 3)
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
