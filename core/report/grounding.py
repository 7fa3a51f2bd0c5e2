"""Report statements held to the study's facts (core.findings), before drafting and again after it.

Before: :func:`fixed_grades` gives every graded scale of a disc row its value from a fact (a measured slip ->
Meyerding, a measured AP canal diameter -> canal stenosis threshold) or, when no fact exists, a "not assessed"
statement saying what would have to be measured or looked at; the model is then never asked for a grade (its schema
has no enum left to choose from), so no grade without a fact can be drafted.

After: :func:`ground_report` re-checks every model statement with :func:`core.findings.check_statement`: a statement
that asserts or denies an image finding no fact supports is kept for the record as *rejected* (exports leave it out,
the editor shows it struck out) with the reason, and a template statement in its place says what was not assessed;
a graded statement whose grade no fact gives is treated the same way. Supported statements get the fact's
measurement in their basis.
"""
from __future__ import annotations

from core.findings import FactSheet
from core.findings.check import check_statement
from core.findings.topics import TOPICS
from core.report.model import ASPECT_TITLES, SCALES, Basis, SpineReport, Statement
from core.report.templates import NOT_ASSESSABLE, ReportTemplate

ASPECT_TOPICS = {"body": ("fracture",), "alignment": ("listhesis",), "disc": ("disc_height",),
                 "canal": ("canal_stenosis",), "foramina": ("foraminal",), "facets": ("facets",), "cord": ("nerve",)}
SCALE_TOPICS = {"meyerding": "listhesis", "canal_stenosis": "canal_stenosis", "pfirrmann": "degeneration",
                "modic": "modic"}


def _measurement_ids(report: SpineReport, sheet: FactSheet, fact_ids: list[str]) -> list[str]:
    out = []
    for fid in fact_ids:
        f = sheet.fact(fid)
        if f is None or f.value is None:
            continue
        ref = next((m for m in report.measurements if m.level == f.level and abs(m.value - f.value) < 0.01), None)
        if ref is not None and ref.id not in out:
            out.append(ref.id)
    return out


def _canal_grade(template: ReportTemplate, fact) -> str | None:
    """The template's canal-stenosis choice for a canal fact ('none', 'mild', 'moderate', 'severe')."""
    choice = {"none": "none", "relative stenosis": "moderate", "absolute stenosis": "severe"}.get(fact.grade)
    return choice if choice in template.scales["canal_stenosis"].values else None


def fixed_grades(report: SpineReport, template: ReportTemplate, sheet: FactSheet) -> None:
    """Set every assessable graded scale of each disc row from a fact, or as not assessed; see the module text."""
    for row in report.levels:
        for scale in template.scales_for(row.kind):
            if not scale.assessable or row.get(scale.name) is not None:
                continue
            topic = TOPICS[SCALE_TOPICS[scale.name]]
            facts = [f for f in sheet.about(topic.name, row.level) if f.scale]
            grade = None
            if facts and scale.name == "canal_stenosis":
                grade = _canal_grade(template, facts[0])
            if grade is not None:
                basis = Basis(measurements=_measurement_ids(report, sheet, [facts[0].id]))
                row.statements.append(Statement(f"{row.level}.{scale.name}", template.grade_text(scale.name, grade)
                                                [:-1] + f" (from the measured value: {facts[0].grade_label}).",
                                                source="measurement", aspect=scale.name, grade=grade, basis=basis))
                continue
            why = f"needs {topic.needs()}" if topic.measure else \
                f"needs {topic.look}: the drafting model saw no images"
            row.statements.append(Statement(f"{row.level}.{scale.name}", f"{scale.label}: not assessed ({why}).",
                                            source="template", aspect=scale.name, grade=NOT_ASSESSABLE))


def _replace(row_statements: list[Statement], index: int, s: Statement, reason: str, needs: str) -> None:
    struck = Statement(f"{s.id}.unsupported", f"Not shown as a finding: \u00ab{s.text}\u00bb ({reason})",
                       source="model", status="rejected", aspect=s.aspect, grade=s.grade, basis=s.basis.copy())
    grade = NOT_ASSESSABLE if s.aspect in SCALES else None
    # aspect rows are labelled by the editor and the exports ("Vertebral body: ..."); scales and sections are not
    title = f"{ASPECT_TITLES[s.aspect]}: " if grade is not None else "" if s.aspect in ASPECT_TITLES else \
        "Not stated as a finding: "
    text = "not assessed from this study's data" + (f" (needs {needs})" if needs else "") + "."
    labelled = s.aspect in ASPECT_TITLES and grade is None
    row_statements[index] = Statement(s.id, title + (text if title or labelled else text[0].upper() + text[1:]),
                                      source="template", aspect=s.aspect, grade=grade)
    row_statements.insert(index + 1, struck)


def _check(s: Statement, level: str | None, sheet: FactSheet, report: SpineReport) -> tuple[str, str]:
    """('', '') when ``s`` may stand, else (reason, what would be needed)."""
    if s.source != "model" or s.status == "rejected":
        return "", ""
    if s.aspect in SCALES and s.grade not in (None, NOT_ASSESSABLE):
        topic = TOPICS[SCALE_TOPICS[s.aspect]]
        if not [f for f in sheet.about(topic.name, level) if f.scale and f.grade.lower() in (s.grade or "").lower()]:
            return f"no measurement of this study gives this grade at {level}", topic.needs(level)
        return "", ""
    text = s.text
    if level and s.aspect not in ("", "note"):
        text = f"{text} ({level})"  # a row's text speaks of its own level
    default = [TOPICS[t] for t in ASPECT_TOPICS.get(s.aspect, ())]
    checked = check_statement({"text": text, "kind": "finding" if level else ""}, sheet, set(), [],
                              [level] if level else [], default_topics=default)
    if checked.shown:
        ids = [c for c in checked.cites if sheet.fact(c) is not None]
        s.basis.measurements += [m for m in _measurement_ids(report, sheet, ids) if m not in s.basis.measurements]
        return "", ""
    needs = "; ".join(TOPICS[t].needs(level or ", ".join(checked.levels) or None) for t in checked.topics)
    return checked.reason, needs


def ground_report(report: SpineReport, sheet: FactSheet) -> int:
    """Re-check every model statement of ``report`` against ``sheet``; returns how many were not kept as findings."""
    n = 0
    for row in report.levels:
        for i in range(len(row.statements) - 1, -1, -1):
            s = row.statements[i]
            reason, needs = _check(s, row.level, sheet, report)
            if reason:
                _replace(row.statements, i, s, reason, needs)
                n += 1
    for items in report.sections.values():
        for i in range(len(items) - 1, -1, -1):
            s = items[i]
            reason, needs = _check(s, None, sheet, report)
            if reason:
                _replace(items, i, s, reason, needs)
                n += 1
    if n:
        report.notes.append(f"{n} drafted statement(s) were not kept as findings: nothing measured in this study "
                            "supports them (kept struck out, with the reason, in the report record)")
    return n
