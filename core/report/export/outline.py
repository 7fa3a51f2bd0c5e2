"""What every export shows, in order, independent of the file format: the SpineMed report layout.

Header (study, status), technique, key image, findings by level (vertebra and disc rows, cranial to caudal),
general findings, impression, recommendations (patient advice, then treatment options), risk and prognosis,
post-operative management, diagnostic basis, references, signature, and the decision-support disclaimer.
Rejected statements are left out; statements not yet reviewed carry a visible marker.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.report.model import ASPECT_TITLES, DISCLAIMER, SECTION_TITLES, SpineReport, Statement
from core.report.templates import ReportTemplate, load_template, template_keys

TITLE = "SpineMed structured spine report"
UNREVIEWED = "[draft - not reviewed]"
POSTOP_NONE = "Not applicable: no surgery recorded for this study."
BODY_SECTIONS = ("general", "impression", "advice", "treatment", "risk", "postop")


@dataclass
class Line:
    label: str  # "" for section items, the aspect title for level rows
    text: str
    marker: str = ""  # UNREVIEWED or ""
    statement_id: str = ""

    def plain(self) -> str:
        label = f"{self.label}: " if self.label else ""
        return f"{label}{self.text}{' ' + self.marker if self.marker else ''}"


@dataclass
class Row:
    level: str
    kind: str
    note: str
    findings: list[Line] = field(default_factory=list)
    grades: list[Line] = field(default_factory=list)


def line(s: Statement, with_label: bool = False) -> Line:
    return Line(ASPECT_TITLES.get(s.aspect, "") if with_label and s.aspect not in ("note", "") else "", s.text,
                UNREVIEWED if s.status == "drafted" else "", s.id)


def status_line(report: SpineReport) -> str:
    return report.signature_text()


def header_rows(report: SpineReport) -> list[tuple[str, str]]:
    st = report.study
    patient = ", ".join(filter(None, [st.patient_age or "", st.patient_sex or ""])) or "not recorded"
    rows = [
        ("Modality / region", f"{st.modality or '?'} / {st.region or 'not determined'}"),
        ("Study", f"{st.study_description or '(no description)'} {st.study_date}".strip()),
        ("Series", st.series_description or "?"),
        ("Series UID", st.series_uid or "none"),
        ("Patient", patient),
        ("Levels in view", ", ".join(st.levels_in_view) or "none labelled"),
        ("Report", f"{report.report_id} (version {report.version or 'unsaved'}), template {report.template}"),
        ("Drafted with", report.model or "no model"),
        ("Status", status_line(report)),
    ]
    return rows


def section_lines(report: SpineReport, name: str) -> list[Line]:
    lines = [line(s) for s in report.sections[name] if s.included]
    if name == "postop" and not lines:
        lines = [Line("", POSTOP_NONE)]
    return lines


def section_title(name: str) -> str:
    return SECTION_TITLES[name]


def rows(report: SpineReport) -> list[Row]:
    out = []
    for r in report.levels:
        notes = [r.note] if r.note else []
        if r.partial and "partial" not in r.note:
            notes.append("partially in the field of view")
        row = Row(r.level, "vertebra" if r.kind == "vertebra" else "disc / segment", "; ".join(notes))
        for s in r.statements:
            if not s.included:
                continue
            if s.grade is not None:  # grade texts name their scale ("Meyerding grade I ...")
                row.grades.append(line(s))
            else:
                row.findings.append(line(s, with_label=True))
        out.append(row)
    return out


def basis_tags(report: SpineReport) -> dict[str, str]:
    """Short tags for the diagnostic basis: images I1.., measurements M1.., knowledge passages P1.."""
    tags = {i.id: f"I{n}" for n, i in enumerate(report.images, 1)}
    tags.update({m.id: f"M{n}" for n, m in enumerate(report.measurements, 1)})
    tags.update({p.id: f"P{n}" for n, p in enumerate(report.passages, 1)})
    return tags


def basis_lines(report: SpineReport) -> list[str]:
    """The registry of what statements rest on: images, measurements and knowledge passages, with their tags."""
    tags = basis_tags(report)
    out = [f"{tags[i.id]} image: {i.description}" + (f" (series {i.series_uid})" if i.series_uid else "")
           for i in report.images]
    out += [f"{tags[m.id]} measurement: {m.to_text()}" for m in report.measurements]
    out += [f"{tags[p.id]} knowledge passage {p.id}: {p.title}" for p in report.passages]
    return out


def support_lines(report: SpineReport) -> list[str]:
    """Which statements rest on which basis items, statements with the same support grouped on one line."""
    tags = basis_tags(report)
    groups: dict[str, list[str]] = {}
    for _, s in report.statements():
        if not s.included or s.basis.is_empty():
            continue
        key = " ".join(tags.get(x, x) for x in s.basis.images + s.basis.measurements + s.basis.passages)
        groups.setdefault(key, []).append(s.id)
    return [f"{', '.join(ids)}: {key}" for key, ids in groups.items()]


def template_of(report: SpineReport) -> ReportTemplate | None:
    for key in template_keys():
        t = load_template(key)
        if t.id == report.template:
            return t
    return None


def references(report: SpineReport) -> list[str]:
    t = template_of(report)
    return list(t.references) if t else []


def notes(report: SpineReport) -> list[str]:
    return list(report.notes)


def disclaimer() -> str:
    return DISCLAIMER
