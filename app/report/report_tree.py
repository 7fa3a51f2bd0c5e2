"""The report as an editable tree: sections and level rows at the top, one child per statement.

Columns: statement text (editable while the report is not signed), source, review status, citations (the
measurement and knowledge-passage ids of its basis). Level rows carry their
level name (``LEVEL_ROLE``) so a click can take the viewer there; statement items carry the statement id
(``STATEMENT_ROLE``). Rejected statements stay visible, struck through and grey, so a reviewer can restore them.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

from core.report.export.outline import POSTOP_NONE
from core.report.model import ASPECT_TITLES, SECTION_TITLES, SECTIONS, SpineReport, Statement

LEVEL_ROLE = Qt.ItemDataRole.UserRole + 1
STATEMENT_ROLE = Qt.ItemDataRole.UserRole + 2
SECTION_ROLE = Qt.ItemDataRole.UserRole + 3
STATUS_COLOURS = {"drafted": "#9a6a00", "accepted": "#1b7a2e", "rejected": "#888888", "edited": "#1f4e9c"}
FINDINGS = "Findings by level"


def _label(s: Statement) -> str:
    title = ASPECT_TITLES.get(s.aspect, "")
    if s.grade is not None or not title or s.aspect in ("note", "measurement"):
        return s.text
    return f"{title}: {s.text}"


def citations(s: Statement) -> str:
    """The Cites column: the measurement and passage ids a statement rests on ('unsupported' for one struck by the
    findings check)."""
    if s.status == "rejected" and s.text.startswith("Not shown as a finding"):
        return "unsupported"
    return " ".join(s.basis.measurements + s.basis.passages)


def style_statement(item: QTreeWidgetItem, s: Statement) -> None:
    item.setText(1, s.source)
    item.setText(3, citations(s))
    item.setForeground(3, QBrush(QColor("#9c2f00" if citations(s) == "unsupported" else "#1b5e20")))
    item.setText(2, s.status)
    colour = QColor(STATUS_COLOURS[s.status])
    item.setForeground(2, QBrush(colour))
    font = item.font(0)
    font.setStrikeOut(s.status == "rejected")
    item.setFont(0, font)
    item.setForeground(0, QBrush(QColor("#888888" if s.status == "rejected" else "#111111")))
    tip = [f"id {s.id}", f"source: {s.source}", f"status: {s.status}"]
    if s.original is not None:
        tip.append(f"drafted as: {s.original}")
    if not s.basis.is_empty():
        tip.append("basis: " + ", ".join(s.basis.images + s.basis.measurements + s.basis.passages))
    item.setToolTip(0, "\n".join(tip))


def _statement_item(parent: QTreeWidgetItem, s: Statement, editable: bool) -> QTreeWidgetItem:
    item = QTreeWidgetItem(parent, [_label(s), "", "", ""])
    item.setData(0, STATEMENT_ROLE, s.id)
    flags = item.flags() | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
    if editable:
        flags |= Qt.ItemFlag.ItemIsEditable
    else:
        flags &= ~Qt.ItemFlag.ItemIsEditable
    item.setFlags(flags)
    style_statement(item, s)
    return item


def _heading(tree: QTreeWidget, text: str, section: str) -> QTreeWidgetItem:
    item = QTreeWidgetItem(tree, [text, "", ""])
    item.setData(0, SECTION_ROLE, section)
    font = QFont(item.font(0))
    font.setBold(True)
    item.setFont(0, font)
    item.setForeground(0, QBrush(QColor("#1f4e79")))
    item.setFirstColumnSpanned(True)
    return item


def populate(tree: QTreeWidget, report: SpineReport, editable: bool) -> dict[str, QTreeWidgetItem]:
    """Fill ``tree`` with ``report``; returns statement id -> item (level rows under 'level:<name>')."""
    tree.clear()
    items: dict[str, QTreeWidgetItem] = {}
    order = ["technique", FINDINGS] + [s for s in SECTIONS if s != "technique"]
    for name in order:
        if name == FINDINGS:
            head = _heading(tree, FINDINGS, "levels")
            if not report.levels:
                note = QTreeWidgetItem(head, ["No level rows: this series has no vertebral level labels.", "", ""])
                note.setForeground(0, QBrush(QColor("#9c2f00")))
            for row in report.levels:
                kind = "vertebra" if row.kind == "vertebra" else "disc / segment"
                extra = f" — {row.note}" if row.note else ""
                level_item = QTreeWidgetItem(head, [f"{row.level}  ({kind}){extra}", "", ""])
                level_item.setData(0, LEVEL_ROLE, row.level)
                font = QFont(level_item.font(0))
                font.setBold(True)
                level_item.setFont(0, font)
                level_item.setToolTip(0, f"Click to show {row.level} in the viewer")
                items[f"level:{row.level}"] = level_item
                for s in row.statements:
                    items[s.id] = _statement_item(level_item, s, editable)
            continue
        if name == "general" and not report.sections[name]:
            continue
        head = _heading(tree, SECTION_TITLES[name], name)
        for s in report.sections[name]:
            items[s.id] = _statement_item(head, s, editable)
        if name == "postop" and not report.sections[name]:
            QTreeWidgetItem(head, [POSTOP_NONE, "", ""]).setForeground(0, QBrush(QColor("#666666")))
    tree.expandAll()
    return items


def statement_id(item: QTreeWidgetItem | None) -> str | None:
    return item.data(0, STATEMENT_ROLE) if item is not None else None


def level_of(item: QTreeWidgetItem | None) -> str | None:
    """The level a row belongs to: the level row itself or a statement under it."""
    while item is not None:
        level = item.data(0, LEVEL_ROLE)
        if level:
            return level
        item = item.parent()
    return None


def target_of(item: QTreeWidgetItem | None) -> str | None:
    """Where 'Add statement' puts a new statement: the level or section of the selected row."""
    while item is not None:
        if item.data(0, LEVEL_ROLE):
            return item.data(0, LEVEL_ROLE)
        section = item.data(0, SECTION_ROLE)
        if section and section != "levels":
            return section
        item = item.parent()
    return None
