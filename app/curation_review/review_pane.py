"""The review pane: the queue of curated items awaiting a clinician's decision, one item at a time.

Shows the item's task, source and provenance, its chat messages (as exported for training), the MCQ options with the
keyed answer, and the supporting source passage. A named reviewer accepts, rejects (with a reason) or edits the
assistant's answer (saved as an ``edit`` decision, validated against the item's schema). Every read and write goes
through :mod:`curation.review` and the :class:`~curation.store.CurationStore` API, exactly as the
``spinemed-curate review`` command does; the widget holds no SQL.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from curation import review
from curation.export import LETTERS, messages_for
from curation.store import CurationStore

DECISION_MARK = {"accept": "✓", "reject": "✗", "edit": "✎"}
ROLE_COLOUR = {"system": "#777777", "user": "#1f5fa8", "assistant": "#2e7d32"}


def _esc(text: str) -> str:
    return html.escape(str(text)).replace("\n", "<br>")


def messages_html(item: dict[str, Any]) -> str:
    """The item's chat messages as readable HTML: one block per turn, images as a placeholder."""
    blocks = []
    for msg in messages_for(item):
        content = msg["content"]
        if isinstance(content, list):
            n_images = sum(1 for p in content if p.get("type") == "image")
            text = "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
            body = (f"<i>[{n_images} key image{'s' if n_images != 1 else ''}]</i><br>" if n_images else "") + _esc(text)
        else:
            body = _esc(content)
        colour = ROLE_COLOUR.get(msg["role"], "#000000")
        size = ' style="font-size:small; color:#777777"' if msg["role"] == "system" else ""
        blocks.append(f'<p><b style="color:{colour}">{html.escape(msg["role"])}</b><br><span{size}>{body}</span></p>')
    return "".join(blocks)


def options_html(item: dict[str, Any]) -> str:
    """MCQ options with the keyed answer marked; empty for other tasks."""
    if item["task"] != "mcq":
        return ""
    c = item["content"]
    rows = []
    for n, option in enumerate(c["options"]):
        if n == c["answer_index"]:
            rows.append(f'<b style="color:#2e7d32">✓ {LETTERS[n]}. {html.escape(option)} (keyed answer)</b>')
        else:
            rows.append(f"&nbsp;&nbsp;&nbsp;{LETTERS[n]}. {html.escape(option)}")
    return "<br>".join(rows)


def provenance_html(item: dict[str, Any], source: dict[str, Any] | None) -> str:
    title = html.escape(source["title"]) if source else "<i>unknown source</i>"
    lines = [
        (f"<b>{html.escape(item['task'])}</b> / {html.escape(item['subtask'] or '')} &nbsp; "
        f"status: <b>{html.escape(item['review_status'])}</b> &nbsp; id {html.escape(item['id'])}"),
        f"source: {title} <span style='color:#777777'>({html.escape(item['source_id'])})</span>",
        f"at: {html.escape(item['location'] or '')}",
        (f"generator: {html.escape(item['generator'])} ({html.escape(item['generator_kind'])}), template "
         f"{html.escape(item['prompt_template'])} v{html.escape(str(item['prompt_version']))}, seed {item['seed']}"),
    ]
    if item.get("levels"):
        lines.append("levels: " + html.escape(", ".join(item["levels"])))
    if item.get("gate_report"):
        lines.append("gates: " + html.escape(str(item["gate_report"])))
    return "<br>".join(lines)


class ReviewPane(QWidget):
    """Review the items of the curation store at ``store_path`` (see module doc)."""

    decided = Signal(str, str)  # item id, decision ("accept" / "reject" / "edit")

    def __init__(self, store_path: Path | str, reviewer: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store_path = Path(store_path)
        self.store = CurationStore(self.store_path)
        self.items: list[dict[str, Any]] = []
        self.session: dict[str, str] = {}  # item id -> this session's decision
        self.index = -1
        self.editing = False
        self.setWindowTitle(f"Curation review — {self.store_path.name}")

        # top: reviewer, queue kind, counts
        self.reviewer_edit = QLineEdit(reviewer)
        self.reviewer_edit.setPlaceholderText("reviewer id (required)")
        self.reviewer_edit.setMaximumWidth(220)
        self.reviewer_edit.editingFinished.connect(self.reload)
        self.reviewer_edit.textChanged.connect(lambda _t: self._update_buttons())
        self.second_check = QCheckBox("Second review")
        self.second_check.setToolTip("Queue the items another reviewer decided and you have not (for agreement)")
        self.second_check.toggled.connect(lambda _on: self.reload())
        self.reload_button = QPushButton("Reload")
        self.reload_button.clicked.connect(self.reload)
        self.counts_label = QLabel()
        top = QHBoxLayout()
        top.addWidget(QLabel("Reviewer:"))
        top.addWidget(self.reviewer_edit)
        top.addWidget(self.second_check)
        top.addWidget(self.reload_button)
        top.addStretch(1)
        top.addWidget(self.counts_label)

        # left: the queue
        self.queue_list = QListWidget()
        self.queue_list.currentRowChanged.connect(self._on_row)

        # right: the item
        self.provenance_label = QLabel()
        self.provenance_label.setTextFormat(Qt.RichText)
        self.provenance_label.setWordWrap(True)
        self.provenance_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.messages_view = QTextBrowser()
        self.options_label = QLabel()
        self.options_label.setTextFormat(Qt.RichText)
        self.options_label.setWordWrap(True)
        self.images_label = QLabel()
        self.answer_edit = QPlainTextEdit()
        self.answer_edit.setReadOnly(True)
        self.key_combo = QComboBox()
        self.key_combo.setToolTip("The keyed (correct) option")
        self.edit_reason = QLineEdit()
        self.edit_reason.setPlaceholderText("what did you change (optional)")
        self.passage_view = QTextBrowser()
        answer_row = QHBoxLayout()
        answer_row.addWidget(QLabel("Keyed option:"))
        answer_row.addWidget(self.key_combo)
        answer_row.addWidget(self.edit_reason, 1)
        self.key_row = QWidget()
        self.key_row.setLayout(answer_row)
        answer_row.setContentsMargins(0, 0, 0, 0)

        detail = QWidget()
        dl = QVBoxLayout(detail)
        dl.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(self.provenance_label)
        dl.addWidget(QLabel("<b>Messages</b>"))
        dl.addWidget(self.messages_view, 3)
        dl.addWidget(self.options_label)
        dl.addWidget(self.images_label)
        dl.addWidget(QLabel("<b>Assistant answer</b> (editable after <i>Edit</i>)"))
        dl.addWidget(self.answer_edit, 2)
        dl.addWidget(self.key_row)
        dl.addWidget(QLabel("<b>Supporting source passage</b>"))
        dl.addWidget(self.passage_view, 2)

        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.queue_list)
        splitter.addWidget(detail)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([300, 900])

        # bottom: navigation and decisions
        self.prev_button = QPushButton("◀ Previous")
        self.prev_button.clicked.connect(self.previous)
        self.next_button = QPushButton("Next ▶")
        self.next_button.clicked.connect(self.next)
        self.position_label = QLabel()
        self.accept_button = QPushButton("Accept")
        self.accept_button.clicked.connect(self.accept_current)
        self.reject_button = QPushButton("Reject…")
        self.reject_button.clicked.connect(lambda: self.reject_current())
        self.edit_button = QPushButton("Edit")
        self.edit_button.clicked.connect(self._on_edit_clicked)
        self.cancel_edit_button = QPushButton("Cancel edit")
        self.cancel_edit_button.clicked.connect(self.cancel_edit)
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        bottom = QHBoxLayout()
        for w in (self.prev_button, self.position_label, self.next_button):
            bottom.addWidget(w)
        bottom.addSpacing(20)
        bottom.addWidget(self.message_label, 1)
        for w in (self.accept_button, self.reject_button, self.edit_button, self.cancel_edit_button):
            bottom.addWidget(w)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        layout.addLayout(bottom)
        self.reload()

    # -- state ----------------------------------------------------------------------------------------------------
    @property
    def reviewer(self) -> str:
        return self.reviewer_edit.text().strip()

    def current_item(self) -> dict[str, Any] | None:
        return self.items[self.index] if 0 <= self.index < len(self.items) else None

    def counts(self) -> dict[str, int]:
        return review.status_counts(self.store)

    def reload(self) -> None:
        """Rebuild the queue for the current reviewer (items they have not decided yet)."""
        self.cancel_edit()
        self.items = review.queue(self.store, self.reviewer, second=self.second_check.isChecked())
        self.session = {}
        self.queue_list.blockSignals(True)
        self.queue_list.clear()
        for item in self.items:
            self.queue_list.addItem(QListWidgetItem(self._list_text(item)))
        self.queue_list.blockSignals(False)
        self._show(0 if self.items else -1)
        self._update_counts()

    def _list_text(self, item: dict[str, Any]) -> str:
        c = item["content"]
        headline = c.get("question") or (c.get("turns") or [{}])[0].get("text") or c.get("impression") or ""
        mark = DECISION_MARK.get(self.session.get(item["id"], ""), " ")
        return f"{mark} [{item['task']}] {headline[:70]}"

    def _update_counts(self) -> None:
        c = self.counts()
        self.counts_label.setText(
            f"awaiting review: <b>{c['awaiting']}</b> &nbsp; accepted: <b>{c['accepted']}</b> &nbsp; "
            f"edited: <b>{c['edited']}</b> &nbsp; rejected: <b>{c['rejected']}</b> &nbsp; "
            f"auto-rejected: {c['auto_rejected']}")

    def _update_buttons(self) -> None:
        item = self.current_item()
        can_decide = item is not None and bool(self.reviewer)
        self.accept_button.setEnabled(can_decide and not self.editing)
        self.reject_button.setEnabled(can_decide and not self.editing)
        self.edit_button.setEnabled(can_decide)
        self.edit_button.setText("Save edit" if self.editing else "Edit")
        self.cancel_edit_button.setVisible(self.editing)
        self.prev_button.setEnabled(self.index > 0 and not self.editing)
        self.next_button.setEnabled(0 <= self.index < len(self.items) - 1 and not self.editing)
        self.position_label.setText(f"{self.index + 1} / {len(self.items)}" if item else "0 / 0")
        if not self.reviewer and item is not None:
            self.message_label.setText("Enter your reviewer id to decide.")

    def _show(self, index: int) -> None:
        self.index = index
        item = self.current_item()
        if item is None:
            self.provenance_label.setText("<i>Nothing to review.</i>" if self.reviewer or not self.items
                                          else "")
            for view in (self.messages_view, self.passage_view):
                view.clear()
            self.options_label.clear()
            self.images_label.clear()
            self.answer_edit.clear()
            self.key_row.setVisible(False)
            self._update_buttons()
            return
        source = self.store.source(item["source_id"])
        chunk = self.store.chunk(item["chunk_id"]) if item.get("chunk_id") else None
        self.provenance_label.setText(provenance_html(item, source))
        self.messages_view.setHtml(messages_html(item))
        options = options_html(item)
        self.options_label.setText(options)
        self.options_label.setVisible(bool(options))
        self._show_images(item)
        self.answer_edit.setPlainText(review.assistant_text(item))
        self.key_combo.clear()
        if item["task"] == "mcq":
            for n, option in enumerate(item["content"]["options"]):
                self.key_combo.addItem(f"{LETTERS[n]}. {option}", n)
            self.key_combo.setCurrentIndex(item["content"]["answer_index"])
        self.key_combo.setVisible(item["task"] == "mcq")
        self.key_row.setVisible(False)
        self.passage_view.setPlainText(f"{chunk['location']}\n\n{chunk['text']}" if chunk else "(no passage)")
        decided = self.session.get(item["id"])
        self.message_label.setText(f"you decided: {decided} (status now {item['review_status']})" if decided else "")
        if self.queue_list.currentRow() != index:
            self.queue_list.blockSignals(True)
            self.queue_list.setCurrentRow(index)
            self.queue_list.blockSignals(False)
        self._update_buttons()

    def _show_images(self, item: dict[str, Any]) -> None:
        paths = [Path(p) for p in item.get("images") or []]
        if not paths:
            self.images_label.clear()
            self.images_label.setVisible(False)
            return
        self.images_label.setVisible(True)
        first = paths[0]
        pixmap = QPixmap(str(first)) if first.is_file() else QPixmap()
        if not pixmap.isNull():
            self.images_label.setPixmap(pixmap.scaledToHeight(min(220, pixmap.height()), Qt.SmoothTransformation))
            self.images_label.setToolTip("\n".join(str(p) for p in paths))
        else:
            self.images_label.setText("key images: " + ", ".join(p.name for p in paths))

    def _on_row(self, row: int) -> None:
        if self.editing:
            self.cancel_edit()
        self._show(row)

    # -- navigation -----------------------------------------------------------------------------------------------
    def next(self) -> None:
        if self.index < len(self.items) - 1:
            self._show(self.index + 1)

    def previous(self) -> None:
        if self.index > 0:
            self._show(self.index - 1)

    # -- decisions ------------------------------------------------------------------------------------------------
    def _decide(self, decision: str, reason: str = "", edited: dict[str, Any] | None = None) -> bool:
        item = self.current_item()
        if item is None or not self.reviewer:
            self.message_label.setText("Enter your reviewer id to decide.")
            return False
        try:
            review.decide(self.store, item["id"], self.reviewer, decision, reason=reason, edited=edited)
        except (ValueError, KeyError) as exc:
            self.message_label.setText(f'<span style="color:#b00020">not saved: {html.escape(str(exc))}</span>')
            return False
        self.session[item["id"]] = decision
        self.items[self.index] = self.store.item(item["id"]) or item
        self.queue_list.item(self.index).setText(self._list_text(self.items[self.index]))
        self._update_counts()
        self.decided.emit(item["id"], decision)
        self._advance()
        return True

    def _advance(self) -> None:
        """Show the next item this session has not decided; stay (refreshed) when there is none."""
        for n in list(range(self.index + 1, len(self.items))) + list(range(self.index)):
            if self.items[n]["id"] not in self.session:
                self._show(n)
                return
        self._show(self.index)
        self.message_label.setText("Queue done: every item has your decision. " + self.message_label.text())

    def accept_current(self) -> bool:
        return self._decide("accept")

    def ask_reason(self) -> str | None:
        """Ask the reviewer why the item is rejected; None when cancelled."""
        text, ok = QInputDialog.getMultiLineText(self, "Reject item", "Reason for rejecting this item (required):")
        return text.strip() if ok else None

    def reject_current(self, reason: str | None = None) -> bool:
        """Reject the current item; without ``reason``, ask for one (a rejection always has a reason)."""
        if reason is None:
            reason = self.ask_reason()
        if reason is None:
            return False
        if not reason.strip():
            self.message_label.setText('<span style="color:#b00020">A rejection needs a reason.</span>')
            return False
        return self._decide("reject", reason=reason.strip())

    def _on_edit_clicked(self) -> None:
        if self.editing:
            self.save_edit()
        else:
            self.start_edit()

    def start_edit(self) -> None:
        if self.current_item() is None or not self.reviewer:
            return
        self.editing = True
        self.answer_edit.setReadOnly(False)
        self.answer_edit.setStyleSheet("QPlainTextEdit { background: #fffbe6; }")
        self.key_row.setVisible(True)
        self.edit_reason.clear()
        self.answer_edit.setFocus()
        if self.current_item()["task"] == "consultation":
            self.message_label.setText("One text per clinician turn, separated by a line '---'.")
        self._update_buttons()

    def cancel_edit(self) -> None:
        was_editing = self.editing
        self.editing = False
        self.answer_edit.setReadOnly(True)
        self.answer_edit.setStyleSheet("")
        self.key_row.setVisible(False)
        item = self.current_item()
        if was_editing and item is not None:
            self.answer_edit.setPlainText(review.assistant_text(item))
        self._update_buttons()

    def save_edit(self) -> bool:
        """Save the edited assistant answer as an ``edit`` decision (validated against the item's schema)."""
        item = self.current_item()
        if item is None:
            return False
        key = self.key_combo.currentData() if item["task"] == "mcq" else None
        try:
            edited = review.with_assistant_text(item, self.answer_edit.toPlainText(), answer_index=key)
        except ValueError as exc:
            self.message_label.setText(f'<span style="color:#b00020">not saved: {html.escape(str(exc))}</span>')
            return False
        if edited == item["content"]:
            self.message_label.setText("No change to save (use Accept to keep the item as it is).")
            return False
        reason = self.edit_reason.text().strip() or "edited in the review pane"
        self.editing = False
        self.answer_edit.setReadOnly(True)
        self.answer_edit.setStyleSheet("")
        if not self._decide("edit", reason=reason, edited=edited):
            self.editing = True
            self.answer_edit.setReadOnly(False)
            self._update_buttons()
            return False
        return True

    def closeEvent(self, event) -> None:
        self.store.close()
        super().closeEvent(event)


def open_review_window(store_path: Path | str, parent: QWidget | None = None, reviewer: str = "") -> ReviewPane:
    """The review pane in its own top-level window (deleted, and its store closed, when closed)."""
    pane = ReviewPane(store_path, reviewer=reviewer, parent=parent)
    pane.setWindowFlag(Qt.Window, True)
    pane.setAttribute(Qt.WA_DeleteOnClose, True)
    pane.resize(1400, 900)
    pane.show()
    return pane
