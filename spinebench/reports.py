"""Report-generation items (study context + clinical question -> structured report) and their deterministic checks.

The context is the product's own study context text (``core.consult.context.StudyContext``): modality, levels in
view from the label map, and measurements read from the label map (``studies.column_height_mm``). The model is asked
for three sections, ``TECHNIQUE``, ``FINDINGS`` (one line per level in view) and ``IMPRESSION``.

Deterministic checks of a report (:func:`check_report`), each reported separately and averaged into a 0-1 score:

- ``parses``: the three section headings are present, in order, and FINDINGS has content of its own: it names at
  least one level (when the study has named levels) and is not the instruction's placeholder echoed back (Markdown
  ``#``/``**`` decorations and a trailing colon are tolerated);
- ``levels_covered``: fraction of the levels in view that FINDINGS names (the whole text when it does not parse);
  for a study without named levels, 1 when the report parses;
- ``no_outside_level``: no level is named that is not in view (any named level fails when none are known);
- ``values_match``: every length the report quotes (mm / cm) is one of the context's measurements within
  ``VALUE_TOLERANCE_MM`` (rounding), and no angle is quoted that the context does not give; a report quoting none
  passes (``n_values`` says so).

The combined check score is the mean of the four, except that a report with no content of its own (it does not
parse and names no level in view) gets no credit for the two "nothing invented" checks: saying nothing must not
score 50 %.

Level mentions are found with ``core.knowledge.levels.find_levels`` (so "L4/5", "L4-5" count; a bare "T1"/"T2" is
read as an MRI weighting, not a level).
"""
from __future__ import annotations

import re
from typing import Any

from core.consult.context import Measurement, StudyContext
from core.spine.anatomy import find_levels
from spinebench import render
from spinebench.schema import Item
from spinebench.studies import LabelledStudy, column_height_mm

AXIS = "report_generation"
SECTIONS = ("TECHNIQUE", "FINDINGS", "IMPRESSION")
VALUE_TOLERANCE_MM = 0.5
MAX_MEASUREMENTS = 6

REPORT_SYSTEM = (
    "You are SpineMed, a decision-support assistant for spine imaging. You draft structured reports for a clinician "
    "to check. Use only the study context you are given: never invent findings, measurements or levels, and do not "
    "describe levels that are not in view.")

REPORT_INSTRUCTION = (
    "Write the report in exactly this structure:\n"
    "TECHNIQUE: one line on the examination.\n"
    "FINDINGS:\n- <level>: <what can be said about this level>   (one line for each level in view)\n"
    "IMPRESSION: one to three sentences.\n"
    "Quote measurements exactly as given. Do not describe levels outside the field of view.")


def study_context(study: LabelledStudy, max_measurements: int = MAX_MEASUREMENTS) -> StudyContext:
    measurements = []
    for name in study.levels_in_view():
        value = column_height_mm(study, name)
        if value is None:
            continue
        what = "disc height (label mask, mid column)" if "-" in name else "vertebral body height (label mask, mid column)"
        measurements.append(Measurement(what, name, value, "mm"))
    return StudyContext(modality=study.spec.modality, series=[study.spec.description],
                        levels_in_view=study.levels_in_view(), measurements=measurements[:max_measurements])


def report_items(study: LabelledStudy, questions: list[str], out_dir, rel: str = "images") -> list[Item]:
    """One report item per clinical question; a plain sagittal slice is attached when the study has an image."""
    ctx = study_context(study)
    images: list[str] = []
    if study.image is not None:
        centre = study.centre()
        view = render.render_plane(study.image, centre, "sagittal", fov_mm=max(study.spec.fov_mm, 180.0))
        name = f"report-{study.spec.key}.png"
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / name).write_bytes(render.png_bytes(view.image))
        images = [f"{rel}/{name}"]
    items = []
    for n, question in enumerate(questions):
        text = (f"Study context:\n{ctx.to_text()}\n\nClinical question: {question}\n\n"
                + ("A sagittal slice of the study is attached.\n\n" if images else "") + REPORT_INSTRUCTION)
        items.append(Item(
            id=f"report-{study.spec.key}-{n}", axis=AXIS, format="report",
            modality="image+text" if images else "text", subtype="structured_report", system=REPORT_SYSTEM,
            turns=[text], images=images, case_id=study.case_id, review_status="by_construction",
            checks={"levels_in_view": ctx.levels_in_view,
                    "measurements": [{"name": m.name, "level": m.level, "value": m.value, "unit": m.unit}
                                     for m in ctx.measurements]},
            source={"kind": "label_map", "folder": study.spec.folder, "labels": study.spec.labels,
                    "image": study.spec.image, "licence": study.spec.licence, "origin": study.spec.origin},
            meta={"question": question},
        ))
    return items


# --- checks ---------------------------------------------------------------------------------------------------
_HEADING = re.compile(r"^[ \t>*_#-]*(TECHNIQUE|FINDINGS|IMPRESSION)[ \t*_]*:?[ \t*_]*", re.IGNORECASE | re.MULTILINE)
_LENGTH = re.compile(r"(\d+(?:[.,]\d+)?)\s*(mm|cm|millimet(?:er|re)s?|centimet(?:er|re)s?)\b", re.IGNORECASE)
_ANGLE = re.compile(r"(\d+(?:[.,]\d+)?)\s*(°|deg(?:rees?)?\b)", re.IGNORECASE)


_PLACEHOLDER = re.compile(r"<level>|<what can be said|one line for each level", re.IGNORECASE)


def parse_report(text: str, levels_in_view: list[str] | None = None) -> dict[str, str] | None:
    """Section -> body when all three sections are present in order and FINDINGS has content of its own (a level
    name when ``levels_in_view`` is not empty; not the placeholder of the instruction); else None."""
    marks = [(m.group(1).upper(), m.start(), m.end()) for m in _HEADING.finditer(text)]
    firsts: dict[str, tuple[int, int]] = {}
    for name, start, end in marks:
        firsts.setdefault(name, (start, end))
    if set(firsts) != set(SECTIONS):
        return None
    order = sorted(SECTIONS, key=lambda s: firsts[s][0])
    if order != list(SECTIONS):
        return None
    bodies = {}
    for i, name in enumerate(SECTIONS):
        end = firsts[SECTIONS[i + 1]][0] if i + 1 < len(SECTIONS) else len(text)
        bodies[name] = text[firsts[name][1]:end].strip()
    findings = bodies["FINDINGS"]
    if not findings or _PLACEHOLDER.search(findings):
        return None
    if levels_in_view and not find_levels(findings):
        return None
    return bodies


def quoted_values(text: str) -> tuple[list[float], list[float]]:
    """Lengths in mm and angles in degrees quoted in a text."""
    lengths = []
    for m in _LENGTH.finditer(text):
        value = float(m.group(1).replace(",", "."))
        lengths.append(value * 10.0 if m.group(2).lower().startswith("c") else value)
    angles = [float(m.group(1).replace(",", ".")) for m in _ANGLE.finditer(text)]
    return lengths, angles


def check_report(text: str, checks: dict[str, Any]) -> dict[str, Any]:
    in_view = list(checks.get("levels_in_view") or [])
    allowed = set(in_view) | {v for lv in in_view for v in lv.split("-")}
    measurements = checks.get("measurements") or []
    sections = parse_report(text, in_view)
    findings = sections["FINDINGS"] if sections else text
    named_in_findings = set(find_levels(findings))
    covered = [lv for lv in in_view if lv in named_in_findings]
    named = find_levels(text)
    outside = [lv for lv in named if lv not in allowed]
    lengths, angles = quoted_values(text)
    known_mm = [m["value"] * (10.0 if m["unit"] == "cm" else 1.0) for m in measurements if m["unit"] in ("mm", "cm")]
    known_deg = [m["value"] for m in measurements if m["unit"] in ("°", "deg", "degrees")]
    unmatched = [v for v in lengths if not any(abs(v - k) <= VALUE_TOLERANCE_MM for k in known_mm)]
    unmatched += [v for v in angles if not any(abs(v - k) <= 0.5 for k in known_deg)]
    result = {
        "parses": sections is not None,
        "levels_covered": len(covered) / len(in_view) if in_view else float(sections is not None),
        "no_outside_level": not outside,
        "values_match": not unmatched,
        "n_values": len(lengths) + len(angles),
        "missing_levels": [lv for lv in in_view if lv not in covered],
        "outside_levels": outside,
        "unmatched_values": unmatched,
        "has_content": sections is not None or bool(covered),
    }
    result["score"] = deterministic_score(result)
    return result


def deterministic_score(result: dict[str, Any]) -> float:
    """Mean of the four checks (levels_covered counts as its fraction), 0-1; the two "nothing invented" checks
    count only for a report with content of its own."""
    content = result.get("has_content", True)
    parts = [float(result["parses"]), float(result["levels_covered"]),
             float(result["no_outside_level"] and content), float(result["values_match"] and content)]
    return sum(parts) / len(parts)
