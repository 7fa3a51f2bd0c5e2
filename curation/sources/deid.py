"""DICOM de-identification following the PS3.15 Annex E Basic Application Level Confidentiality Profile.

What is done to every file (and, recursively, to every dataset inside a sequence):

- the attributes of :data:`PROFILE` (the identifying attributes of Table E.1-1 met in spine imaging) are removed
  (``X``), emptied (``Z``), replaced by a dummy (``D``) or have their UID replaced (``U``), as the Basic Profile
  column says; PatientID gets the case pseudonym (a dummy value is allowed for ``Z``);
- private tags are removed, overlays (60xx) and curves (50xx) are removed;
- every other UID that is not a DICOM-defined one (``1.2.840.10008.*``) is remapped too, and every other Person Name
  is emptied (conservative "clean" for attributes the table does not list);
- UIDs are remapped with a keyed hash, ``2.25.<128 bits of HMAC-SHA256(salt, uid)>``: the same UID gives the same
  new UID for every file processed with the same salt, so references inside a study stay consistent
  (StudyInstanceUID, FrameOfReferenceUID, ReferencedSOPInstanceUID ...), and nobody without the salt can invert it;
- BurnedInAnnotation = YES refuses the file (:class:`BurnedInAnnotationError`) unless ``allow_burned_in`` is given, in
  which case the report flags it; a missing BurnedInAnnotation on modalities that often carry burned-in text
  (US, SC, OT, XA, ES...) is flagged for a human to look at the pixels;
- PatientIdentityRemoved = YES, DeidentificationMethod and DeidentificationMethodCodeSequence (DCM 113100, plus
  113108 when patient characteristics are retained) are written; LongitudinalTemporalInformationModified = REMOVED.

Keywords are checked against pydicom's data dictionary when this module is imported (an unknown or renamed keyword
raises instead of silently doing nothing), and the work runs inside :func:`strict_pydicom`, which makes pydicom raise
for unknown keywords and invalid values. The names found in PN attributes are returned as salted token hashes (never
the names) so the PHI scan can look for them in generated text.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom import config as dcm_config
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from core.studies.deid_profile import PATIENT_CHARACTERISTICS, PROFILE

DICOM_ROOT = "1.2.840.10008."
METHOD = "DICOM PS3.15 Basic Profile; private tags removed; UIDs hashed"  # LO: at most 64 characters

BURNED_IN_RISK_MODALITIES = frozenset({"US", "SC", "OT", "XA", "ES", "XC", "GM", "SM", "DOC"})
DUMMY = {"PN": "ANONYMOUS", "LO": "ANONYMOUS", "SH": "ANON", "DA": "19000101", "TM": "000000",
         "DT": "19000101000000", "CS": "ANON", "ST": "ANONYMOUS", "LT": "ANONYMOUS", "UT": "ANONYMOUS"}


def _resolve(keywords) -> dict[str, int]:
    out = {}
    for kw in keywords:
        tag = tag_for_keyword(kw)
        if tag is None:  # an old or misspelt keyword would silently match nothing: refuse to run instead
            raise KeyError(f"de-identification profile keyword {kw!r} is not in pydicom's data dictionary")
        out[kw] = int(tag)
    return out


PROFILE_TAGS: dict[int, tuple[str, str]] = {tag: (kw, PROFILE[kw]) for kw, tag in _resolve(PROFILE).items()}
_CHARACTERISTIC_TAGS = set(_resolve(PATIENT_CHARACTERISTICS).values())


class DeidentificationError(ValueError):
    """A file that must not be de-identified automatically; the message says why."""


class BurnedInAnnotationError(DeidentificationError):
    pass


@contextlib.contextmanager
def strict_pydicom() -> Iterator[None]:
    """Make pydicom raise on unknown keywords (``ds.PatientsName = ...``), unknown keys and invalid values."""
    saved = (dcm_config.INVALID_KEYWORD_BEHAVIOR, dcm_config.INVALID_KEY_BEHAVIOR,
             dcm_config.settings._writing_validation_mode)
    dcm_config.INVALID_KEYWORD_BEHAVIOR = "RAISE"
    dcm_config.INVALID_KEY_BEHAVIOR = "RAISE"
    dcm_config.settings.writing_validation_mode = dcm_config.RAISE
    try:
        yield
    finally:
        (dcm_config.INVALID_KEYWORD_BEHAVIOR, dcm_config.INVALID_KEY_BEHAVIOR,
         dcm_config.settings._writing_validation_mode) = saved


def remap_uid(uid: str, salt: bytes) -> str:
    """Deterministic replacement UID under the 2.25 (UUID-derived) root: 2.25 + a 128-bit decimal (<= 44 chars)."""
    digest = hmac.new(salt, str(uid).strip().encode("ascii", "replace"), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def pseudonym(value: str, salt: bytes, prefix: str = "ANON") -> str:
    return f"{prefix}-{hmac.new(salt, value.encode('utf-8'), hashlib.sha256).hexdigest()[:10].upper()}"


_NAME_TOKEN = re.compile(r"[^\W\d_]{2,}", re.UNICODE)


def name_token_hash(token: str, salt: bytes) -> str:
    return hmac.new(salt, b"name:" + token.lower().encode("utf-8"), hashlib.sha256).hexdigest()[:32]


@dataclass
class DeidReport:
    source: Path
    output: Path | None = None
    actions: dict[str, int] = field(default_factory=dict)  # "X PatientAddress" -> count
    removed_private: int = 0
    flags: list[str] = field(default_factory=list)  # for a human: burned-in annotation risk etc.
    name_hashes: dict[str, str] = field(default_factory=dict)  # salted token hash -> "PN" origin (no names)
    study_uid: str = ""  # the NEW StudyInstanceUID
    series_uid: str = ""

    def count(self, action: str, keyword: str) -> None:
        key = f"{action} {keyword}"
        self.actions[key] = self.actions.get(key, 0) + 1


class Deidentifier:
    """Applies the Basic Profile to datasets; one instance (one salt) per project keeps UIDs consistent."""

    def __init__(self, salt: bytes | str, *, retain_patient_characteristics: bool = False,
                 allow_burned_in: bool = False) -> None:
        if isinstance(salt, str):
            salt = salt.encode("utf-8")
        if len(salt) < 16:
            raise ValueError("the de-identification salt must be at least 16 bytes (keep it secret, keep it stable)")
        self.salt = salt
        self.retain = retain_patient_characteristics
        self.allow_burned_in = allow_burned_in

    # --- one dataset --------------------------------------------------------------------------------------------
    def deidentify(self, ds: Dataset, report: DeidReport, patient_pseudonym: str | None = None) -> Dataset:
        with strict_pydicom():
            self._check_burned_in(ds, report)
            original_patient = str(ds.get("PatientID", "") or "") + "|" + str(ds.get("StudyInstanceUID", "") or "")
            meta = getattr(ds, "file_meta", None)
            if meta is not None:  # some files carry the instance UIDs only in the file meta
                if not ds.get("SOPInstanceUID") and meta.get("MediaStorageSOPInstanceUID"):
                    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
                if not ds.get("SOPClassUID") and meta.get("MediaStorageSOPClassUID"):
                    ds.SOPClassUID = meta.MediaStorageSOPClassUID
                if "SourceApplicationEntityTitle" in meta:  # may name the sending site
                    del meta.SourceApplicationEntityTitle
                    report.count("X", "SourceApplicationEntityTitle")
            report.removed_private += self._remove_private(ds)
            self._walk(ds, report)
            pid = patient_pseudonym or pseudonym(original_patient, self.salt)
            ds.PatientID = pid
            ds.PatientName = ""
            ds.PatientIdentityRemoved = "YES"
            ds.LongitudinalTemporalInformationModified = "REMOVED"
            ds.DeidentificationMethod = METHOD
            ds.DeidentificationMethodCodeSequence = self._method_codes()
            if meta is not None and ds.get("SOPInstanceUID"):
                meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                if "SOPClassUID" in ds:
                    meta.MediaStorageSOPClassUID = ds.SOPClassUID
            report.study_uid = str(ds.get("StudyInstanceUID", ""))
            report.series_uid = str(ds.get("SeriesInstanceUID", ""))
        return ds

    def _method_codes(self) -> Sequence:
        codes = [("113100", "Basic Application Confidentiality Profile")]
        if self.retain:
            codes.append(("113108", "Retain Patient Characteristics Option"))
        items = []
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            items.append(item)
        return Sequence(items)

    def _check_burned_in(self, ds: Dataset, report: DeidReport) -> None:
        value = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
        modality = str(ds.get("Modality", "") or "").upper()
        if value == "YES":
            if not self.allow_burned_in:
                raise BurnedInAnnotationError(
                    f"{report.source.name}: BurnedInAnnotation is YES - identifying text may be in the pixels; "
                    "refused (review the pixels and pass allow_burned_in to import it flagged)")
            report.flags.append("burned-in annotation: YES (pixels not cleaned; human check required)")
        elif not value and modality in BURNED_IN_RISK_MODALITIES:
            report.flags.append(f"burned-in annotation not stated for modality {modality}: check the pixels")

    @staticmethod
    def _remove_private(ds: Dataset) -> int:
        n = 0
        for elem in list(ds):
            if elem.tag.is_private:
                del ds[elem.tag]
                n += 1
            elif elem.VR == "SQ" and elem.value:
                for item in elem.value:
                    n += Deidentifier._remove_private(item)
        return n

    def _walk(self, ds: Dataset, report: DeidReport) -> None:
        for elem in list(ds):
            tag = int(elem.tag)
            group = tag >> 16
            if 0x5000 <= group <= 0x50FF or (0x6000 <= group <= 0x60FF and (tag & 0xFFFF) in (0x3000, 0x4000)):
                del ds[elem.tag]
                report.count("X", "overlay/curve data")
                continue
            rule = PROFILE_TAGS.get(tag)
            if rule is not None and not (self.retain and tag in _CHARACTERISTIC_TAGS):
                self._apply(ds, elem, rule[0], rule[1], report)
                continue
            if elem.VR == "SQ":
                for item in elem.value or []:
                    self._walk(item, report)
            elif elem.VR == "UI" and elem.value:
                self._remap(ds, elem, report, elem.keyword or f"{elem.tag}")
            elif elem.VR == "PN" and elem.value:
                self._collect_names(elem.value, report)
                ds[elem.tag].value = ""
                report.count("Z", elem.keyword or str(elem.tag))

    def _apply(self, ds: Dataset, elem, keyword: str, action: str, report: DeidReport) -> None:
        if elem.VR == "PN" and elem.value:
            self._collect_names(elem.value, report)
        if action == "X":
            del ds[elem.tag]
        elif action == "Z":
            if elem.VR == "SQ":
                ds[elem.tag].value = Sequence([])
            else:
                ds[elem.tag].value = ""
        elif action == "D":
            if elem.VR == "SQ":
                ds[elem.tag].value = Sequence([])
            else:
                ds[elem.tag].value = DUMMY.get(elem.VR, "ANONYMOUS") if elem.value not in (None, "") else ""
        elif action == "U":
            self._remap(ds, elem, report, keyword)
            return
        report.count(action, keyword)

    def _remap(self, ds: Dataset, elem, report: DeidReport, keyword: str) -> None:
        values = elem.value if elem.VM > 1 else [elem.value]
        new = [v if str(v).startswith(DICOM_ROOT) else remap_uid(str(v), self.salt) for v in values if v]
        if new != [str(v) for v in values if v]:
            ds[elem.tag].value = new if elem.VM > 1 else new[0]
            report.count("U", keyword)

    def _collect_names(self, value, report: DeidReport) -> None:
        values = value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
        for v in values:
            for token in _NAME_TOKEN.findall(str(v).replace("^", " ")):
                report.name_hashes[name_token_hash(token, self.salt)] = "DICOM PN"

    # --- files ----------------------------------------------------------------------------------------------
    def deidentify_file(self, path: Path, out_dir: Path, patient_pseudonym: str | None = None) -> DeidReport:
        """Read one DICOM file, de-identify it and write ``<out_dir>/<new SOPInstanceUID>.dcm`` (the original
        file name may itself identify the patient). Raises DeidentificationError for refused files."""
        report = DeidReport(source=Path(path))
        try:
            ds = pydicom.dcmread(path)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types for broken files
            raise DeidentificationError(f"{Path(path).name}: not a readable DICOM file ({exc})") from None
        self.deidentify(ds, report, patient_pseudonym)
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"{ds.SOPInstanceUID}.dcm"
        with strict_pydicom():
            ds.save_as(out, enforce_file_format=True)
        report.output = out
        return report


def deidentify_folder(src: Path, out_dir: Path, salt: bytes | str, **options) -> tuple[list[DeidReport], list[str]]:
    """De-identify every DICOM file under ``src`` into ``out_dir``; returns (reports, refusals as messages)."""
    from core.studies.loaders import detect_kind

    deid = Deidentifier(salt, **options)
    reports: list[DeidReport] = []
    refused: list[str] = []
    for path in sorted(p for p in Path(src).rglob("*") if p.is_file()):
        if detect_kind(path) != "dicom":
            continue
        try:
            reports.append(deid.deidentify_file(path, out_dir))
        except DeidentificationError as exc:
            refused.append(str(exc))
    return reports, refused
