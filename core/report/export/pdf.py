"""PDF export (reportlab): the SpineMed report layout on A4, with the key image and a footer on every page carrying
the decision-support disclaimer, the signature state and the page number.

Text is set in DejaVu Sans when the system has it (wide Unicode coverage), else reportlab's bundled Bitstream Vera.
"""
from __future__ import annotations

import io
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from core.report.export import outline as o
from core.report.export.keyimage import KeyImage
from core.report.model import SpineReport

_FONT_CANDIDATES = [
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
]
ACCENT = colors.HexColor("#1f4e79")
WARN_BG = colors.HexColor("#fff4ce")


def _fonts() -> tuple[str, str]:
    if "SpineMed" in pdfmetrics.getRegisteredFontNames():
        return "SpineMed", "SpineMed-Bold"
    import reportlab

    bundled = Path(reportlab.__file__).parent / "fonts"
    for regular, bold in _FONT_CANDIDATES + [(str(bundled / "Vera.ttf"), str(bundled / "VeraBd.ttf"))]:
        if Path(regular).is_file() and Path(bold).is_file():
            pdfmetrics.registerFont(TTFont("SpineMed", regular))
            pdfmetrics.registerFont(TTFont("SpineMed-Bold", bold))
            return "SpineMed", "SpineMed-Bold"
    return "Helvetica", "Helvetica-Bold"


def _styles() -> dict[str, ParagraphStyle]:
    regular, bold = _fonts()
    base = ParagraphStyle("base", fontName=regular, fontSize=9.5, leading=12.5, alignment=TA_LEFT)
    return {
        "base": base,
        "small": ParagraphStyle("small", parent=base, fontSize=8, leading=10),
        "title": ParagraphStyle("title", parent=base, fontName=bold, fontSize=16, leading=20, textColor=ACCENT),
        "h2": ParagraphStyle("h2", parent=base, fontName=bold, fontSize=11.5, leading=15, spaceBefore=8,
                             spaceAfter=3, textColor=ACCENT),
        "bold": ParagraphStyle("bold", parent=base, fontName=bold),
        "warn": ParagraphStyle("warn", parent=base, fontName=bold, fontSize=9, backColor=WARN_BG, borderPadding=4,
                               borderColor=colors.HexColor("#c9a227"), borderWidth=0.6, spaceBefore=4,
                               spaceAfter=6),
        "note": ParagraphStyle("note", parent=base, textColor=colors.HexColor("#9c2f00")),
    }


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text), style)


def _item(item: o.Line, st: dict, bullet: str = "") -> Paragraph:
    label = f"<b>{escape(item.label)}:</b> " if item.label else ""
    marker = f' <font color="#8a6d00"><i>{escape(item.marker)}</i></font>' if item.marker else ""
    return Paragraph(f"{escape(bullet)}{label}{escape(item.text)}{marker}", st["base"])


def _footer(report: SpineReport, font: str):
    text_left = "Decision support only - not a diagnosis. Check against the images."
    text_mid = report.signature_text()

    def draw(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(font, 7.5)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(doc.leftMargin, 10 * mm, text_left)
        canvas.drawString(doc.leftMargin, 6.5 * mm, text_mid[:120])
        canvas.drawRightString(A4[0] - doc.rightMargin, 10 * mm, f"page {doc.page}")
        canvas.restoreState()

    return draw


CAPTION_ROOM = 14 * mm  # the key image's caption and the spacer above it


def fit_image(img_w: float, img_h: float, width: float, height: float) -> tuple[float, float]:
    """(w, h) of an image scaled to the frame's width, and down to its height when it is taller (a whole-trunk
    sagittal view is): reportlab cannot split an image across pages and raises LayoutError instead."""
    w, h = width, width * img_h / img_w
    if h > height:
        w, h = height * img_w / img_h, height
    return w, h


def build_story(report: SpineReport, key_image: KeyImage | None, width: float, height: float | None = None) -> list:
    """The flowables of the PDF; ``width`` x ``height`` is the page frame the key image must fit in."""
    st = _styles()
    story: list = [_p(o.TITLE, st["title"]), _p(o.disclaimer(), st["warn"])]
    header = Table([[_p(k, st["bold"]), _p(v, st["base"])] for k, v in o.header_rows(report)],
                   colWidths=[38 * mm, width - 38 * mm])
    header.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                                ("LINEBELOW", (0, -1), (-1, -1), 0.5, colors.grey)]))
    story.append(header)
    for note in o.notes(report):
        story.append(_p("Note: " + note, st["note"]))
    story.append(_p(o.section_title("technique"), st["h2"]))
    story += [_item(item, st, "- ") for item in o.section_lines(report, "technique")]
    if key_image is not None:
        room = (height if height is not None else float("inf")) - CAPTION_ROOM
        img_w, img_h = fit_image(key_image.width, key_image.height, width, room)
        story.append(Spacer(1, 4))
        story.append(KeepTogether([Image(io.BytesIO(key_image.png), width=img_w, height=img_h),
                                   _p(key_image.caption, st["small"])]))
    story.append(_p("Findings by level", st["h2"]))
    if not report.levels:
        story.append(_p("No level rows: this study has no vertebral level labels (see the note above).", st["note"]))
    else:
        data = [[_p("Level", st["bold"]), _p("Findings", st["bold"]), _p("Graded terms", st["bold"])]]
        for row in o.rows(report):
            level = [_p(row.level, st["bold"]), _p(row.kind, st["small"])]
            if row.note:
                level.append(_p(row.note, st["small"]))
            data.append([level, [_item(i, st) for i in row.findings] or _p("-", st["base"]),
                         [_item(i, st) for i in row.grades] or _p("-", st["base"])])
        table = Table(data, colWidths=[24 * mm, width * 0.55, width - 24 * mm - width * 0.55], repeatRows=1)
        table.setStyle(TableStyle([
            ("VALIGN", (0, 0), (-1, -1), "TOP"), ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#b0b7c3")),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6edf5"))]))
        story.append(table)
    for name in o.BODY_SECTIONS:
        items = o.section_lines(report, name)
        if name == "general" and not items:
            continue
        story.append(_p(o.section_title(name), st["h2"]))
        story += [_item(item, st, f"{n}. " if name == "impression" else "- ") for n, item in enumerate(items, 1)]
    story.append(_p("Diagnostic basis", st["h2"]))
    story += [_p(line, st["small"]) for line in o.basis_lines(report)]
    support = o.support_lines(report)
    if support:
        story.append(_p("Support of each statement (statement ids: basis tags):", st["bold"]))
        story += [_p(line, st["small"]) for line in support]
    refs = o.references(report)
    if refs:
        story.append(_p("References (grading systems named in this template)", st["h2"]))
        story += [_p("- " + r, st["small"]) for r in refs]
    story.append(_p("Signature", st["h2"]))
    story.append(_p(o.status_line(report), st["bold"]))
    story.append(_p(o.disclaimer(), st["warn"]))
    return story


def write_pdf(report: SpineReport, path: Path, key_image: KeyImage | None = None, **_: object) -> None:
    doc = SimpleDocTemplate(str(path), pagesize=A4, leftMargin=16 * mm, rightMargin=16 * mm, topMargin=14 * mm,
                            bottomMargin=18 * mm, title=o.TITLE, author="SpineMed Workstation",
                            subject=f"{report.study.modality} {report.study.region}".strip())
    footer = _footer(report, _fonts()[0])
    # the frame's own padding (6 pt on each side) is not part of doc.height
    doc.build(build_story(report, key_image, doc.width - 12, doc.height - 12), onFirstPage=footer, onLaterPages=footer)
