"""Plain-text export (UTF-8): the SpineMed report layout as readable lines, disclaimer first and last."""
from __future__ import annotations

import textwrap
from pathlib import Path

from core.report.export import outline as o
from core.report.model import SpineReport

WIDTH = 100


def _wrap(text: str, indent: str = "", first: str | None = None) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=first if first is not None else indent,
                         subsequent_indent=indent) or [first or indent]


def render_text(report: SpineReport) -> str:
    out: list[str] = [o.TITLE.upper(), "=" * len(o.TITLE), ""]
    out += _wrap(o.disclaimer()) + [""]
    width = max(len(k) for k, _ in o.header_rows(report))
    out += [f"{k.ljust(width)}  {v}" for k, v in o.header_rows(report)] + [""]
    for note in o.notes(report):
        out += _wrap(note, "   ", "!! ")
    out += ["", o.section_title("technique").upper()]
    out += [w for item in o.section_lines(report, "technique") for w in _wrap(item.plain(), "  ", "- ")]
    out += ["", "FINDINGS BY LEVEL"]
    if not report.levels:
        out.append("  (no level rows: see the note above)")
    for row in o.rows(report):
        out.append(f"{row.level} ({row.kind})" + (f" - {row.note}" if row.note else ""))
        for item in row.findings + row.grades:
            out += _wrap(item.plain(), "      ", "    - ")
    for name in o.BODY_SECTIONS:
        items = o.section_lines(report, name)
        if name == "general" and not items:
            continue
        out += ["", o.section_title(name).upper()]
        numbered = name == "impression"
        for n, item in enumerate(items, 1):
            out += _wrap(item.plain(), "     ", f"  {n}. " if numbered else "  - ")
    out += ["", "DIAGNOSTIC BASIS"]
    out += [w for b in o.basis_lines(report) for w in _wrap(b, "    ", "  - ")]
    out.append("  Support of each statement (statement ids: basis tags):")
    out += [w for b in o.support_lines(report) for w in _wrap(b, "      ", "    ")]
    refs = o.references(report)
    if refs:
        out += ["", "REFERENCES (grading systems named in this template)"]
        out += [w for r in refs for w in _wrap(r, "    ", "  - ")]
    out += ["", "SIGNATURE", "  " + o.status_line(report), ""]
    out += _wrap(o.disclaimer())
    return "\n".join(out) + "\n"


def write_text(report: SpineReport, path: Path, **_: object) -> None:
    path.write_text(render_text(report), encoding="utf-8")
