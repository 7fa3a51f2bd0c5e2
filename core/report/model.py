"""The structured spine report: study/technique, findings per level, impression, recommendations, risk, post-op care
and the diagnostic basis, as plain dataclasses with JSON (de)serialisation. No Qt.

Every piece of text a clinician signs is a :class:`Statement` with an id, its ``source`` (who wrote it: ``model``,
``measurement``, ``user`` or ``template``) and its review ``status`` (``drafted`` -> ``accepted`` / ``rejected`` /
``edited``). A statement's ``basis`` names the images, measurements and knowledge passages that support it; the
report's diagnostic basis is the registry of those items (``images``, ``measurements``, ``passages``).

    report.accept("T11-T12.disc"); report.edit("impression.1", "No acute finding.", by="Dr A")
    report.sign("Dr A")      # locked from now on: every mutator raises ReportLockedError
    SpineReport.from_json(report.to_json())   # validated against core.report.schema

Findings per level exist only for levels in the labelling (in the field of view), ordered cranial to caudal.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from core.spine.measure.measurement import Measurement

FORMAT = "spinemed.report"
FORMAT_VERSION = 1
SOURCES = ("model", "measurement", "user", "template")
STATUSES = ("drafted", "accepted", "rejected", "edited")
ASPECTS = ("alignment", "body", "disc", "canal", "foramina", "facets", "cord")
SCALES = ("pfirrmann", "modic", "meyerding", "canal_stenosis")
SECTIONS = ("technique", "general", "impression", "advice", "treatment", "risk", "postop")
SECTION_TITLES = {
    "technique": "Technique and study",
    "general": "General findings",
    "impression": "Impression",
    "advice": "Recommendations: advice for the patient",
    "treatment": "Recommendations: evidence-based treatment options",
    "risk": "Risk and prognosis",
    "postop": "Post-operative management",
}
ASPECT_TITLES = {
    "alignment": "Alignment", "body": "Vertebral body", "disc": "Disc", "canal": "Spinal canal",
    "foramina": "Neural foramina", "facets": "Facet joints", "cord": "Cord / cauda equina",
    "pfirrmann": "Pfirrmann grade", "modic": "Modic type", "meyerding": "Meyerding grade",
    "canal_stenosis": "Canal stenosis grade", "measurement": "Measurement", "note": "Note",
}
DISCLAIMER = ("Decision support only - not a diagnosis. This report was drafted with software assistance and must be "
              "checked against the images by a qualified clinician before any clinical use.")


class ReportLockedError(RuntimeError):
    """A signed report (or signed stored version) was about to be changed."""


class ReportFormatError(ValueError):
    """A report document that does not follow the report schema; the message says where."""


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Basis:
    """Ids of what supports a statement: images (ImageRef ids), measurements (Measurement ids), passage ids."""

    images: list[str] = field(default_factory=list)
    measurements: list[str] = field(default_factory=list)
    passages: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.images or self.measurements or self.passages)

    def copy(self) -> Basis:
        return Basis(list(self.images), list(self.measurements), list(self.passages))


@dataclass
class Statement:
    id: str
    text: str
    source: str = "model"
    status: str = "drafted"
    aspect: str = ""  # finding aspect ("disc"), graded scale ("pfirrmann"), "measurement" or "note"
    grade: str | None = None  # the graded term's value for scales ("II", "1", "mild", "not assessable")
    basis: Basis = field(default_factory=Basis)
    original: str | None = None  # the text as drafted, kept when a user edits it

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"statement {self.id}: unknown source {self.source!r}")
        if self.status not in STATUSES:
            raise ValueError(f"statement {self.id}: unknown status {self.status!r}")

    @property
    def reviewed(self) -> bool:
        return self.status != "drafted"

    @property
    def included(self) -> bool:
        """Whether exports show it (rejected statements stay in the JSON record only)."""
        return self.status != "rejected"


@dataclass
class LevelFindings:
    """One row of the findings table: a vertebra or a disc (segment) in the field of view."""

    level: str
    kind: str  # "vertebra" | "disc"
    statements: list[Statement] = field(default_factory=list)
    position: tuple[float, float, float] | None = None  # LPS mm (labelling centroid), for viewer navigation
    partial: bool = False  # cut by the edge of the field of view
    note: str = ""  # e.g. "disc position inferred between labelled T11 and T12"

    def get(self, aspect: str) -> Statement | None:
        return next((s for s in self.statements if s.aspect == aspect), None)


@dataclass
class ImageRef:
    id: str
    description: str
    series_uid: str = ""
    kind: str = "series"  # "series" | "key image"


@dataclass
class PassageRecord:
    id: str
    title: str


@dataclass
class StudyInfo:
    modality: str = ""
    region: str = ""
    study_description: str = ""
    study_date: str = ""
    series_description: str = ""
    series_uid: str = ""
    study_uid: str = ""
    n_images: int = 0
    patient_age: str | None = None
    patient_sex: str | None = None
    labelling: str = ""  # who/what named the levels, e.g. "reference label map, 2026-..."
    levels_in_view: list[str] = field(default_factory=list)


@dataclass
class Signature:
    name: str
    signed_at: str
    version: int = 0  # the stored version that was signed (0 when signed outside a store)


@dataclass
class SpineReport:
    study: StudyInfo = field(default_factory=StudyInfo)
    levels: list[LevelFindings] = field(default_factory=list)
    sections: dict[str, list[Statement]] = field(default_factory=lambda: {s: [] for s in SECTIONS})
    images: list[ImageRef] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    passages: list[PassageRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    incomplete: str | None = None  # "incomplete: <reason>" when drafting stopped early
    template: str = ""
    model: str = ""
    report_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = field(default_factory=now_iso)
    signature: Signature | None = None
    version: int = 0  # set by the store: the version this object was loaded as / saved as

    def __post_init__(self) -> None:
        for name in SECTIONS:
            self.sections.setdefault(name, [])
        unknown = set(self.sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown report sections: {', '.join(sorted(unknown))}")

    # --- queries ---------------------------------------------------------------------------------------------
    @property
    def locked(self) -> bool:
        return self.signature is not None

    @property
    def state(self) -> str:
        """'signed' | 'incomplete' | 'draft'."""
        if self.signature is not None:
            return "signed"
        return "incomplete" if self.incomplete else "draft"

    def signature_text(self) -> str:
        """What every export prints about sign-off."""
        if self.signature is None:
            state = "NOT SIGNED - draft for review"
            return state + (f" ({self.incomplete})" if self.incomplete else "")
        version = f", version {self.signature.version}" if self.signature.version else ""
        return f"Signed by {self.signature.name} at {self.signature.signed_at}{version}"

    def statements(self) -> Iterator[tuple[str, Statement]]:
        """(where, statement) for every statement: where is a section name or a level name."""
        for name in SECTIONS:
            for s in self.sections[name]:
                yield name, s
        for row in self.levels:
            for s in row.statements:
                yield row.level, s

    def statement(self, statement_id: str) -> Statement:
        for _, s in self.statements():
            if s.id == statement_id:
                return s
        raise KeyError(f"no statement {statement_id!r} in this report")

    def level(self, name: str) -> LevelFindings | None:
        return next((row for row in self.levels if row.level == name), None)

    def unreviewed(self) -> list[Statement]:
        return [s for _, s in self.statements() if s.status == "drafted"]

    def image(self, image_id: str) -> ImageRef | None:
        return next((i for i in self.images if i.id == image_id), None)

    def measurement(self, measurement_id: str) -> Measurement | None:
        return next((m for m in self.measurements if m.id == measurement_id), None)

    def passage(self, passage_id: str) -> PassageRecord | None:
        return next((p for p in self.passages if p.id == passage_id), None)

    # --- editing (refused once signed) -------------------------------------------------------------------------
    def _check_unlocked(self) -> None:
        if self.signature is not None:
            raise ReportLockedError(f"the report was signed by {self.signature.name} at {self.signature.signed_at} "
                                    "and is locked")

    def accept(self, statement_id: str) -> Statement:
        self._check_unlocked()
        s = self.statement(statement_id)
        s.status = "accepted" if s.original is None else "edited"
        return s

    def reject(self, statement_id: str) -> Statement:
        self._check_unlocked()
        s = self.statement(statement_id)
        s.status = "rejected"
        return s

    def edit(self, statement_id: str, text: str, grade: str | None = None) -> Statement:
        """Replace a statement's text (and grade); the drafted text is kept in ``original``."""
        self._check_unlocked()
        s = self.statement(statement_id)
        text = text.strip()
        if text == s.text and (grade is None or grade == s.grade):
            return s
        if s.original is None and s.source != "user":
            s.original = s.text
        s.text = text
        if grade is not None:
            s.grade = grade
        s.status = "accepted" if s.source == "user" else "edited"
        return s

    def add_statement(self, where: str, text: str, aspect: str = "") -> Statement:
        """A user-written statement in a section or at a level in view."""
        self._check_unlocked()
        if where in SECTIONS:
            target = self.sections[where]
        else:
            row = self.level(where)
            if row is None:
                raise KeyError(f"{where!r} is neither a report section nor a level in this report")
            target = row.statements
        existing = {s.id for _, s in self.statements()}
        n = 1
        while f"{where}.u{n}" in existing:
            n += 1
        s = Statement(f"{where}.u{n}", text.strip(), source="user", status="accepted", aspect=aspect or "note")
        target.append(s)
        return s

    def sign(self, name: str, when: str | None = None, accept_remaining: bool = False, version: int = 0) -> None:
        """Sign off. Statements still 'drafted' must be reviewed first, or accepted here with ``accept_remaining``."""
        self._check_unlocked()
        name = " ".join(name.split())
        if not name:
            raise ValueError("sign-off needs the signer's name")
        pending = self.unreviewed()
        if pending and not accept_remaining:
            ids = ", ".join(s.id for s in pending[:6]) + (" ..." if len(pending) > 6 else "")
            raise ValueError(f"{len(pending)} drafted statement(s) are not reviewed yet ({ids}): accept or reject "
                             "them, or sign with accept_remaining")
        for s in pending:
            s.status = "accepted"
        self.signature = Signature(name=name, signed_at=when or now_iso(), version=version)

    # --- JSON ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d = {"format": FORMAT, "format_version": FORMAT_VERSION, "disclaimer": DISCLAIMER,
             "signature_state": self.signature_text(), **d}
        for row in d["levels"]:
            row["position"] = list(row["position"]) if row["position"] is not None else None
        return d

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> SpineReport:
        from core.report.schema import validate_report

        validate_report(d)
        if d["format_version"] > FORMAT_VERSION:
            raise ReportFormatError(f"report format version {d['format_version']} is newer than this program")

        def statement(x: dict) -> Statement:
            return Statement(**{**x, "basis": Basis(**x["basis"])})

        return cls(
            study=StudyInfo(**d["study"]),
            levels=[LevelFindings(level=r["level"], kind=r["kind"], statements=[statement(s) for s in r["statements"]],
                                  position=tuple(r["position"]) if r["position"] is not None else None,
                                  partial=r["partial"], note=r["note"]) for r in d["levels"]],
            sections={name: [statement(s) for s in items] for name, items in d["sections"].items()},
            images=[ImageRef(**i) for i in d["images"]],
            measurements=[Measurement(**m) for m in d["measurements"]],
            passages=[PassageRecord(**p) for p in d["passages"]],
            notes=list(d["notes"]), incomplete=d["incomplete"], template=d["template"], model=d["model"],
            report_id=d["report_id"], created_at=d["created_at"],
            signature=Signature(**d["signature"]) if d["signature"] else None, version=d["version"],
        )

    @classmethod
    def from_json(cls, text: str) -> SpineReport:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ReportFormatError(f"not JSON: {exc}") from exc
        return cls.from_dict(doc)
