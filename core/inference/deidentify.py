"""De-identification of what goes to a model server: the patient's identifiers never leave the workstation, and
free text from the DICOM header (study and series descriptions) is cleaned before it is sent.

    ids = identifiers_of_source(source)          # values from the header that identify the patient (memory only)
    scrub_text('Study "L-spine Doe^Jane 12/03/2024 MRN 4471234"', ids)  # 'Study "L-spine [name] [date] MRN [id]"'
    deidentify_context(context, ids)             # a StudyContext copy with cleaned descriptions and no study date

The reference for what identifies a patient is DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile
(Table E.1-1): the attributes below are the ones that profile removes or replaces. The study context never carries
them as fields (no name, ID or birth date); what the profile's "Clean Descriptors Option" asks for is done here on the
free text that the context does carry: the values of those attributes are removed wherever they appear (names also
word by word), then patterns that identify without being in the header: person names in DICOM form (Family^Given),
names after a title (Mr, Mrs, Dr...), labelled identifiers (MRN: ..., DOB ...), dates, e-mail addresses, telephone
numbers, and tokens holding 5 or more digits (record numbers, UIDs). Age and sex stay, as in the profile's "Retain
Patient Characteristics Option"; the study date goes (the profile blanks it unless dates are retained on purpose).

Pattern matching cannot recognise every name in free text (a name not in the header and without a title stays); the
server backend therefore also applies it to every message it sends, with the open study's header values.
"""
from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR

from core.studies.deid_profile import PROFILE

log = logging.getLogger(__name__)

# DICOM PS3.15 Table E.1-1 (Basic Profile): attributes whose values identify the patient or people and places
# around the study. Their values are looked for in the free text that goes to a server.
PERSON_NAME_ATTRIBUTES = tuple(k for k in PROFILE if dictionary_VR(k) == "PN")  # every person name of the table
IDENTIFIER_ATTRIBUTES = (
    "PatientID", "OtherPatientIDs", "IssuerOfPatientID", "AccessionNumber", "StudyID", "MedicalRecordLocator",
    "AdmissionID", "RequestedProcedureID", "PerformedProcedureStepID", "ScheduledProcedureStepID",
    "PatientBirthDate", "PatientBirthTime", "PatientAddress", "PatientTelephoneNumbers", "RegionOfResidence",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "StationName", "DeviceSerialNumber",
)
# Free-text attributes of the same table that the Clean Descriptors Option keeps only once cleaned.
FREE_TEXT_ATTRIBUTES = (
    "StudyDescription", "SeriesDescription", "ProtocolName", "ImageComments", "AdditionalPatientHistory",
    "PatientComments", "RequestedProcedureDescription", "PerformedProcedureStepDescription", "ReasonForStudy",
    "AdmittingDiagnosesDescription",
)

NAME, ID, DATE, CONTACT = "[name]", "[id]", "[date]", "[contact]"
_B, _E = r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"  # word edges that also hold next to punctuation and carets
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
          r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), CONTACT),
    # labelled identifiers: keep the label, drop what follows it (a name after "Name:", a value after "MRN")
    (re.compile(r"(?i)\b((?:patient(?:'s)?\s+)?(?:name|date\s+of\s+birth|birth\s*date|patient\s+id)\s*[:#=]\s*)"
                r"(?:[A-Za-z][\w'-]*(?:[ ^,]+[A-Za-z][\w'-]*){0,2}|[^\s,;]+)"), r"\1[removed]"),
    (re.compile(r"(?i)\b((?:dob|d\.o\.b\.?|mrn|pid|accession(?:\s+(?:no\.?|number))?|acc\.?\s*no\.?|nhs(?:\s+no\.?)?|"
                r"ssn)\s*[:#=]?\s*)(?=\S*\d)[^\s,;]+"), r"\1[removed]"),
    (re.compile(r"[A-Za-z][A-Za-z'-]*\^[A-Za-z'^ -]*[A-Za-z]"), NAME),  # DICOM person name Family^Given^Middle
    (re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sr|Herr|Frau|Mme|Mlle)\.?\s+[A-Z][A-Za-z'-]+"
                r"(?:\s+[A-Z][A-Za-z'-]+)?"), NAME),
    (re.compile(_B + r"(?:19|20)\d\d[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])" + _E), DATE),
    (re.compile(_B + r"\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})" + _E), DATE),
    (re.compile(r"(?i)" + _B + r"\d{1,2}(?:st|nd|rd|th)?\s+" + _MONTH + r",?\s+\d{2,4}" + _E), DATE),
    (re.compile(r"(?i)" + _B + _MONTH + r"\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}" + _E), DATE),
    (re.compile(r"(?<![\w.])\+?\(?\d{2,4}\)?[ -]\d{3,4}[ -]\d{3,4}(?![\w.])"), CONTACT),
    (re.compile(_B + r"\d+(?:\.\d+){4,}" + _E), ID),  # a DICOM UID
    (re.compile(r"(?<![A-Za-z0-9])(?<!\d\.)[A-Za-z0-9-]*\d{5,}[A-Za-z0-9-]*" + _E), ID),  # not a number's decimals
]


@dataclass(frozen=True)
class Identifiers:
    """Values from a study's header that must not leave the workstation: whole values and name words."""

    values: tuple[str, ...] = ()
    name_words: tuple[str, ...] = ()

    @classmethod
    def from_dataset(cls, ds: Any) -> Identifiers:
        """From a pydicom Dataset (or anything with those attributes)."""
        values: set[str] = set()
        words: set[str] = set()
        # every person name in the header counts, listed or not (the profile empties unlisted PN attributes too)
        pn_keywords = [e.keyword for e in ds if getattr(e, "VR", "") == "PN" and e.keyword] \
            if hasattr(ds, "__iter__") else []
        names = set(PERSON_NAME_ATTRIBUTES) | set(pn_keywords)
        for keyword in [*PERSON_NAME_ATTRIBUTES, *pn_keywords, *IDENTIFIER_ATTRIBUTES]:
            raw = getattr(ds, keyword, None)
            for value in _values(raw):
                text = value.strip()
                if len(text) < 2:
                    continue
                values.add(text)
                if keyword in names:
                    values.add(" ".join(p for p in re.split(r"[\^=]+", text) if p).strip())
                    words.update(w for w in re.split(r"[\s\^=,.]+", text) if len(w) >= 2 and w.isalpha())
                if keyword == "PatientBirthDate" and re.fullmatch(r"\d{8}", text):
                    y, m, d = text[:4], text[4:6], text[6:]
                    values.update({f"{y}-{m}-{d}", f"{d}/{m}/{y}", f"{m}/{d}/{y}", f"{d}.{m}.{y}"})
        return cls(tuple(sorted((v for v in values if v), key=len, reverse=True)),
                   tuple(sorted(words - _KEEP_WORDS, key=len, reverse=True)))

    def __bool__(self) -> bool:
        return bool(self.values or self.name_words)


_KEEP_WORDS = {"Dr", "Mr", "Mrs", "Ms", "Jr", "Sr", "MD", "PhD"}  # titles in a person name, not the person


def _values(raw: Any) -> Iterable[str]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, (list, tuple)) or type(raw).__name__ == "MultiValue":
        return [str(v) for v in raw if v not in (None, "")]
    return [str(raw)]


def identifiers_of_files(files: Iterable[Any]) -> Identifiers:
    """The identifiers in the header of the first readable DICOM file of ``files`` (pixels are not read)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    for path in list(files)[:3]:
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, AttributeError, EOFError) as exc:
            log.debug("no DICOM header in %s: %s", path, exc)
            continue
        return Identifiers.from_dataset(ds)
    return Identifiers()


def identifiers_of_source(source: Any) -> Identifiers:
    """The identifiers of a core.studies.sources.SeriesSource (DICOM series only; NIfTI and images carry none that
    the context uses)."""
    if getattr(source, "kind", "") != "dicom":
        return Identifiers()
    return identifiers_of_files(getattr(source, "files", []) or [])


def scrub_text(text: str, identifiers: Identifiers | None = None) -> str:
    """``text`` without the study's identifiers and without names, dates, IDs and contacts found by pattern."""
    if not text:
        return text
    ids = identifiers or Identifiers()
    for value in ids.values:
        text = re.sub(_B + re.escape(value) + _E, ID if any(c.isdigit() for c in value) else NAME, text,
                      flags=re.IGNORECASE)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if ids.name_words:  # last: a name word inside a labelled or Family^Given name went with it whole
        words = "|".join(re.escape(w) for w in ids.name_words)
        text = re.sub(_B + f"(?:{words})" + _E, NAME, text, flags=re.IGNORECASE)
    return text


def scrub_messages(messages: list[dict[str, Any]], identifiers: Identifiers | None = None) -> list[dict[str, Any]]:
    """Copies of chat messages with every text part scrubbed (images and other keys kept as they are)."""
    out = []
    for m in messages:
        m = dict(m)
        content = m.get("content")
        if isinstance(content, str):
            m["content"] = scrub_text(content, identifiers)
        elif isinstance(content, list):
            m["content"] = [{**part, "text": scrub_text(part["text"], identifiers)}
                            if isinstance(part, dict) and isinstance(part.get("text"), str) else part
                            for part in content]
        out.append(m)
    return out


def deidentify_context(context: Any, identifiers: Identifiers | None = None) -> Any:
    """A copy of a core.consult.StudyContext fit for a server: descriptions and prior findings cleaned, no study
    date; modality, levels, measurements, age and sex kept."""
    ctx = copy.deepcopy(context)
    ctx.study_description = scrub_text(ctx.study_description, identifiers)
    ctx.study_date = ""
    ctx.series = [scrub_text(s, identifiers) for s in ctx.series]
    ctx.prior_findings = [scrub_text(f, identifiers) for f in ctx.prior_findings]
    return ctx
