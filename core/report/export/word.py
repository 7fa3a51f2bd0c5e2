"""DOCX export (python-docx): the SpineMed report layout as an editable Word document, with the key image, the
disclaimer at the top and in the footer of every page, and the signature state."""
from __future__ import annotations

import io
from pathlib import Path

from docx import Document
from docx.enum.text import WD_COLOR_INDEX
from docx.shared import Cm, Pt, RGBColor

from core.report.export import outline as o
from core.report.export.keyimage import KeyImage
from core.report.model import SpineReport

ACCENT = RGBColor(0x1F, 0x4E, 0x79)


def _add_item(cell_or_doc, item: o.Line, prefix: str = "", style: str | None = None) -> None:
    p = cell_or_doc.add_paragraph(style=style) if style else cell_or_doc.add_paragraph()
    if prefix:
        p.add_run(prefix)
    if item.label:
        p.add_run(item.label + ": ").bold = True
    p.add_run(item.text)
    if item.marker:
        run = p.add_run(" " + item.marker)
        run.italic = True
        run.font.color.rgb = RGBColor(0x8A, 0x6D, 0x00)


def _heading(doc, text: str, level: int = 2) -> None:
    h = doc.add_heading(text, level=level)
    for run in h.runs:
        run.font.color.rgb = ACCENT


def _warning(doc, text: str) -> None:
    p = doc.add_paragraph()
    run = p.add_run(text)
    run.bold = True
    run.font.highlight_color = WD_COLOR_INDEX.YELLOW


def build_document(report: SpineReport, key_image: KeyImage | None = None):
    doc = Document()
    doc.core_properties.title = o.TITLE
    doc.core_properties.author = "SpineMed Workstation"
    # core properties hold at most 255 characters (python-docx raises beyond): a long "incomplete" reason would
    comments = f"{o.disclaimer()} {report.signature_text()}"
    doc.core_properties.comments = comments if len(comments) <= 255 else comments[:252] + "..."
    normal = doc.styles["Normal"]
    normal.font.name = "Calibri"
    normal.font.size = Pt(10)
    section = doc.sections[0]
    section.left_margin = section.right_margin = Cm(1.8)
    footer = section.footer.paragraphs[0]
    footer.text = f"Decision support only - not a diagnosis. {report.signature_text()}"
    footer.runs[0].font.size = Pt(7.5)

    _heading(doc, o.TITLE, level=1)
    _warning(doc, o.disclaimer())
    table = doc.add_table(rows=0, cols=2)
    table.style = "Table Grid"
    for k, v in o.header_rows(report):
        cells = table.add_row().cells
        cells[0].text = k
        cells[0].paragraphs[0].runs[0].bold = True
        cells[1].text = v
    for note in o.notes(report):
        p = doc.add_paragraph()
        run = p.add_run("Note: " + note)
        run.font.color.rgb = RGBColor(0x9C, 0x2F, 0x00)
    _heading(doc, o.section_title("technique"))
    for item in o.section_lines(report, "technique"):
        _add_item(doc, item, style="List Bullet")
    if key_image is not None:
        # at most the text width and, for a tall whole-trunk view, the page's text height less the caption
        w_cm = min(17.0, 22.0 * key_image.width / key_image.height)
        doc.add_picture(io.BytesIO(key_image.png), width=Cm(w_cm))
        cap = doc.add_paragraph(key_image.caption)
        cap.runs[0].font.size = Pt(8)
    _heading(doc, "Findings by level")
    if not report.levels:
        doc.add_paragraph("No level rows: this study has no vertebral level labels (see the note above).")
    else:
        grid = doc.add_table(rows=1, cols=3)
        grid.style = "Table Grid"
        for cell, title in zip(grid.rows[0].cells, ("Level", "Findings", "Graded terms")):
            cell.text = title
            cell.paragraphs[0].runs[0].bold = True
        for row in o.rows(report):
            cells = grid.add_row().cells
            cells[0].text = row.level
            cells[0].paragraphs[0].runs[0].bold = True
            cells[0].add_paragraph(row.kind + (f"; {row.note}" if row.note else ""))
            for item in row.findings:
                _add_item(cells[1], item)
            for item in row.grades:
                _add_item(cells[2], item)
            for cell in cells[1:]:  # drop the empty first paragraph a new cell has
                if len(cell.paragraphs) > 1 and not cell.paragraphs[0].text:
                    cell._tc.remove(cell.paragraphs[0]._p)
    for name in o.BODY_SECTIONS:
        items = o.section_lines(report, name)
        if name == "general" and not items:
            continue
        _heading(doc, o.section_title(name))
        for item in items:
            _add_item(doc, item, style="List Number" if name == "impression" else "List Bullet")
    _heading(doc, "Diagnostic basis")
    for line in o.basis_lines(report) + ["Support of each statement (statement ids: basis tags):"] + o.support_lines(report):
        p = doc.add_paragraph(line)
        p.runs[0].font.size = Pt(8)
    refs = o.references(report)
    if refs:
        _heading(doc, "References (grading systems named in this template)")
        for r in refs:
            doc.add_paragraph(r, style="List Bullet")
    _heading(doc, "Signature")
    doc.add_paragraph().add_run(o.status_line(report)).bold = True
    _warning(doc, o.disclaimer())
    return doc


def write_docx(report: SpineReport, path: Path, key_image: KeyImage | None = None, **_: object) -> None:
    build_document(report, key_image).save(str(path))
