"""DICOM Structured Report export: a highdicom Comprehensive SR that references the source series.

Content tree (root: LOINC 18748-4 "Diagnostic Imaging Report"): the disclaimer and signature state as comments,
Current Procedure Descriptions (technique), Findings with one container per level (finding site, finding texts,
graded terms as coded values, measurements as NUM with UCUM units), Impressions, Recommendations (patient advice and
treatment options), risk and prognosis, post-operative management, and the diagnostic basis (source study/series
UIDs, the key image's source instance, the knowledge passages). Graded terms and SpineMed sections without a
standard code use the local coding scheme ``99SPINEMED``.

Evidence: the headers of the source series' files; its instances are listed in the Current Requested Procedure
Evidence Sequence. When the series has no DICOM Study/Series Instance UID (anonymised exports, NIfTI, PNG) UIDs are
generated deterministically from SpineMed's series id and the document says so in a comment. A signed report is
written VERIFIED and FINAL with the signer as verifying observer; an incomplete draft is PARTIAL.
"""
from __future__ import annotations

from pathlib import Path

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from core.report.export import outline as o
from core.report.model import ASPECT_TITLES, SECTION_TITLES, SpineReport, Statement
from core.studies.volume import Volume

LOCAL = "99SPINEMED"
MANUFACTURER = "SpineMed Workstation"
SR_SERIES_NUMBER = 990
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_STORAGE = {"CT": CT_IMAGE_STORAGE, "MR": "1.2.840.10008.5.1.4.1.1.4", "CR": "1.2.840.10008.5.1.4.1.1.1",
            "DX": "1.2.840.10008.5.1.4.1.1.1.1"}
_UCUM = {"mm": ("mm", "millimeter"), "cm": ("cm", "centimeter"), "deg": ("deg", "degree"), "°": ("deg", "degree"),
         "%": ("%", "percent"), "": ("1", "no units"), "HU": ("[hnsf'U]", "Hounsfield unit"), "ml": ("mL", "milliliter")}
_TITLES = ("Dr", "Dr.", "Prof", "Prof.", "Mr", "Mrs", "Ms", "Miss")


def _local(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value[:16], scheme_designator=LOCAL, meaning=meaning[:64])


def person_name(name: str) -> str:
    """'Dr Jane Smith' -> 'Smith^Jane^^Dr' (DICOM PN); a name already containing '^' is kept."""
    if "^" in name:
        return name
    parts = name.split()
    prefix = [p for p in parts if p in _TITLES]
    rest = [p for p in parts if p not in _TITLES] or parts
    family, given = rest[-1], " ".join(rest[:-1])
    pn = f"{family}^{given}"
    return pn + (f"^^{' '.join(prefix)}" if prefix else "")


def _text(concept, text: str, rel: str = "CONTAINS") -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=concept, value=text, relationship_type=rel)


def _container(concept, items: list, rel: str | None = "CONTAINS") -> hd.sr.ContainerContentItem:
    c = hd.sr.ContainerContentItem(name=concept, relationship_type=rel)
    c.ContentSequence = hd.sr.ContentSequence(items)
    return c


def _statement_text(s: Statement) -> str:
    label = ASPECT_TITLES.get(s.aspect, "")
    marker = f" {o.UNREVIEWED}" if s.status == "drafted" else ""
    return (f"{label}: {s.text}" if label and s.aspect not in ("note", "measurement") else s.text) + marker


# --- evidence -----------------------------------------------------------------------------------------------------
def _evidence(report: SpineReport, volume: Volume | None) -> tuple[list[Dataset], list[str], bool]:
    """(evidence datasets, notes, real_instances) for the source series."""
    series_id = report.study.series_uid or report.report_id
    study_uid = report.study.study_uid or generate_uid(entropy_srcs=["spinemed-study", series_id])
    series_uid = series_id if _is_uid(series_id) else generate_uid(entropy_srcs=["spinemed-series", series_id])
    notes = []
    if not report.study.study_uid:
        notes.append(f"The source study has no DICOM Study Instance UID: SpineMed generated {study_uid}.")
    if not _is_uid(series_id):
        notes.append(f"The source series has no DICOM Series Instance UID (SpineMed id {series_id}): SpineMed "
                     f"generated {series_uid}; it does not exist outside this document.")
    files = [Path(p) for p in (volume.source_paths if volume is not None else [])]
    out = []
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001 - not a DICOM file (NIfTI, PNG): no instance to reference
            notes.append(f"{f.name} is not a DICOM file ({type(exc).__name__}): not referenced")
            continue
        meta = getattr(ds, "file_meta", Dataset())
        ev = Dataset()
        ev.StudyInstanceUID = ds.get("StudyInstanceUID") or study_uid
        ev.SeriesInstanceUID = ds.get("SeriesInstanceUID") or series_uid
        ev.SOPClassUID = ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or \
            _STORAGE.get(report.study.modality, SECONDARY_CAPTURE)
        ev.SOPInstanceUID = ds.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID") or \
            generate_uid(entropy_srcs=["spinemed-instance", str(f.resolve())])
        for key in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                    "StudyDate", "StudyTime", "ReferringPhysicianName"):
            setattr(ev, key, ds.get(key, "") or "")
        out.append(ev)
    if out:
        return out, notes, True
    ev = Dataset()  # carries the generated study identity only; removed from the document after creation
    ev.StudyInstanceUID, ev.SeriesInstanceUID = study_uid, series_uid
    ev.SOPClassUID, ev.SOPInstanceUID = SECONDARY_CAPTURE, generate_uid(entropy_srcs=["spinemed-none", series_id])
    for key in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                "StudyDate", "StudyTime", "ReferringPhysicianName"):
        setattr(ev, key, "")
    ev.StudyDate = report.study.study_date or ""
    notes.append("The source images are not DICOM instances: no image instance is referenced.")
    return [ev], notes, False


def _is_uid(value: str) -> bool:
    return bool(value) and len(value) <= 64 and all(part.isdigit() for part in value.split("."))


# --- content ------------------------------------------------------------------------------------------------------
def _level_container(report: SpineReport, row) -> hd.sr.ContainerContentItem:
    items: list = [_text(codes.SCT.FindingSite, row.level, "HAS CONCEPT MOD")]
    if row.note:
        items.append(_text(codes.DCM.Comment, row.note))
    for s in row.statements:
        if not s.included:
            continue
        if s.aspect == "measurement":
            m = report.measurement(s.basis.measurements[0]) if s.basis.measurements else None
            if m is not None:
                unit = _UCUM.get(m.unit, (m.unit or "1", m.unit or "no units"))
                items.append(hd.sr.NumContentItem(
                    name=_local(f"M-{m.id}", m.name), value=m.value, relationship_type="CONTAINS",
                    unit=hd.sr.CodedConcept(value=unit[0], scheme_designator="UCUM", meaning=unit[1])))
                continue
        if s.grade is not None:
            items.append(hd.sr.CodeContentItem(
                name=_local(s.aspect.upper(), ASPECT_TITLES[s.aspect]),
                value=_local(f"{s.aspect[:8].upper()}-{s.grade[:7]}", s.text.rstrip(".")[:64]),
                relationship_type="CONTAINS"))
            items.append(_text(codes.DCM.Finding, _statement_text(s)))
            continue
        items.append(_text(codes.DCM.Finding, _statement_text(s)))
    return _container(_local("LEVEL", "Findings at a spinal level"), items)


def _section(report: SpineReport, name: str, concept, item_concept) -> hd.sr.ContainerContentItem:
    lines = o.section_lines(report, name)
    return _container(concept, [_text(item_concept, ln.plain()) for ln in lines] or
                      [_text(item_concept, "none")])


def build_content(report: SpineReport, notes: list[str], key_instance: Dataset | None) -> hd.sr.ContainerContentItem:
    items: list = [_text(codes.DCM.Comment, o.disclaimer()), _text(codes.DCM.Comment, report.signature_text())]
    items += [_text(codes.DCM.Comment, n) for n in report.notes + notes]
    items.append(_section(report, "technique", codes.DCM.CurrentProcedureDescriptions,
                          codes.DCM.ProcedureDescription))
    findings = [_level_container(report, row) for row in report.levels]
    findings += [_text(codes.DCM.Finding, ln.plain()) for ln in o.section_lines(report, "general")]
    items.append(_container(codes.DCM.Findings, findings or [_text(codes.DCM.Finding, "no level rows")]))
    items.append(_section(report, "impression", codes.DCM.Impressions, codes.DCM.Impression))
    items.append(_container(codes.DCM.Recommendations, [
        _section(report, "advice", _local("ADVICE", SECTION_TITLES["advice"]), codes.DCM.Recommendation),
        _section(report, "treatment", _local("TREATMENT", SECTION_TITLES["treatment"]), codes.DCM.Recommendation),
    ]))
    items.append(_section(report, "risk", _local("RISK", SECTION_TITLES["risk"]), codes.DCM.Comment))
    items.append(_section(report, "postop", _local("POSTOP", SECTION_TITLES["postop"]), codes.DCM.Comment))
    basis: list = []
    if report.study.study_uid or key_instance is not None:
        study_uid = key_instance.StudyInstanceUID if key_instance is not None else report.study.study_uid
        basis.append(hd.sr.UIDRefContentItem(name=codes.DCM.StudyInstanceUID, value=study_uid,
                                             relationship_type="CONTAINS"))
    if key_instance is not None:
        basis.append(hd.sr.UIDRefContentItem(name=codes.DCM.SeriesInstanceUID, value=key_instance.SeriesInstanceUID,
                                             relationship_type="CONTAINS"))
        basis.append(hd.sr.ImageContentItem(
            name=_local("KEYSRC", "Source instance of the key image"),
            referenced_sop_class_uid=key_instance.SOPClassUID,
            referenced_sop_instance_uid=key_instance.SOPInstanceUID, relationship_type="CONTAINS"))
    basis += [_text(codes.DCM.Comment, line) for line in o.basis_lines(report) + o.support_lines(report)]
    items.append(_container(_local("BASIS", "Diagnostic basis"), basis))
    return _container(codes.LN.DiagnosticImagingReport, items, rel=None)


def build_sr(report: SpineReport, volume: Volume | None = None) -> hd.sr.ComprehensiveSR:
    evidence, notes, real = _evidence(report, volume)
    key_instance = evidence[len(evidence) // 2] if real else None
    content = build_content(report, notes, key_instance)
    signed = report.signature is not None
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence, content=content, series_instance_uid=generate_uid(), series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=max(1, report.version), manufacturer=MANUFACTURER,
        is_complete=report.incomplete is None, is_final=signed, is_verified=signed,
        verifying_observer_name=person_name(report.signature.name) if signed else None,
        verifying_organization="SpineMed Workstation user" if signed else None,
        series_description="SpineMed structured spine report", specific_character_set="ISO_IR 192",
    )
    if not real:
        for key in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
            if key in sr:
                del sr[key]
    return sr


def write_sr(report: SpineReport, path: Path, volume: Volume | None = None, **_: object) -> None:
    build_sr(report, volume).save_as(str(path), enforce_file_format=True)
