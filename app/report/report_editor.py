"""The report editor: draft with the local model, review statement by statement, sign off, keep every version, export.

    editor = ReportEditor(store=ReportStore(library.path))
    editor.set_study(series_uid, context, labelling=labelling, volume=volume, study_key=key)
    editor.level_selected.connect(go_to_level)      # clicking a level row (or a statement under it)
    editor.draft()                                  # in a TaskWorker: progress bar and Cancel
    editor.accept_statement(sid); editor.reject_statement(sid); editor.sign_off("Dr A")

Statements are edited in place (double-click the text). Every save stores a new version with the signer-name field as
its author; the draft itself is saved as 'SpineMed draft (<model>)'. Once signed, the report is locked: the tree is
read-only and every editing control is disabled. Exports (PDF, DOCX, text, JSON, DICOM SR) run in a worker.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.report import report_tree
from app.workers import TaskWorker
from core.consult import StudyContext
from core.report import DISCLAIMER, ReportLockedError, ReportStore, SpineReport, export_formats
from core.report.export import outline
from core.report.model import ASPECT_TITLES
from core.report.tasks import DraftJob, run_draft, run_export

EXPORT_BUTTONS = ((".pdf", "PDF"), (".docx", "DOCX"), (".txt", "Text"), (".json", "JSON"), (".dcm", "DICOM SR"))


class ReportEditor(QWidget):
    level_selected = Signal(str)
    report_changed = Signal(object)  # SpineReport (after any edit, draft, load or sign-off)
    draft_finished = Signal(object)  # SpineReport
    draft_failed = Signal(str)
    signed = Signal(object)  # SpineReport
    exported = Signal(str)  # path
    export_failed = Signal(str)

    def __init__(self, store: ReportStore | None = None, backend_factory: Callable[[], Any] | None = None,
                 track: Callable[[TaskWorker], Any] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store or ReportStore()
        self.backend_factory = backend_factory
        self.track = track
        self.report: SpineReport | None = None
        self.viewing_version: int | None = None  # an older version shown read-only
        self.series_uid, self.study_key = "", ""
        self.context = StudyContext()
        self.labelling = None
        self.volume = None
        self.dirty = False
        self.draft_worker: TaskWorker | None = None
        self.export_worker: TaskWorker | None = None
        self._items: dict[str, QTreeWidgetItem] = {}
        self._filling = False
        self._job = DraftJob(backend_factory)
        self._build_ui()
        self._refresh()

    # --- UI ---------------------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.banner = QLabel(DISCLAIMER)
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#fff4ce; color:#5c4400; border:1px solid #e0c46c; padding:4px;")
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.notes_label = QLabel()
        self.notes_label.setWordWrap(True)
        self.notes_label.setStyleSheet("color:#9c2f00; font-weight:bold;")
        self.draft_button = QPushButton("Draft report")
        self.draft_button.setToolTip("Draft the report with the local model, level by level")
        self.draft_button.clicked.connect(lambda: self.draft())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_draft)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress_label = QLabel()
        self.progress_label.setStyleSheet("color:#555;")

        self.tree = QTreeWidget()
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Statement", "Source", "Status", "Cites"])
        self.tree.setColumnWidth(0, 560)
        self.tree.setColumnWidth(1, 90)
        self.tree.setWordWrap(True)
        self.tree.setEditTriggers(QTreeWidget.EditTrigger.DoubleClicked | QTreeWidget.EditTrigger.EditKeyPressed)
        self.tree.itemClicked.connect(self._on_item_clicked)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.currentItemChanged.connect(lambda *_: self._refresh_buttons())
        self.basis_view = QTextBrowser()
        self.evidence = QTextBrowser()  # what the clicked statement cites: its measurements and passages
        self.evidence.setMaximumHeight(120)
        self.evidence.setStyleSheet("background:#f3f8f3; border:1px solid #9cc39c;")
        self.evidence.setPlaceholderText("Click a statement to see the measurements and passages it cites.")
        self._knowledge = None
        self.history = QTreeWidget()
        self.history.setHeaderLabels(["Version", "Author", "Saved", "Changes"])
        self.history.setColumnWidth(0, 60)
        self.history.setColumnWidth(1, 160)
        self.history.setColumnWidth(2, 170)
        self.history.itemDoubleClicked.connect(self._on_history_double_clicked)
        self.back_button = QPushButton("Back to the latest version")
        self.back_button.clicked.connect(self.show_latest)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.tree, "Report")
        self.tabs.addTab(self.basis_view, "Diagnostic basis")
        history_page = QWidget()
        hl = QVBoxLayout(history_page)
        hl.setContentsMargins(0, 0, 0, 0)
        hl.addWidget(QLabel("Every saved version (double-click to view it read-only):"))
        hl.addWidget(self.history, 1)
        self.tabs.addTab(history_page, "History")

        self.accept_button = QPushButton("Accept")
        self.accept_button.clicked.connect(lambda: self._review_current("accept"))
        self.reject_button = QPushButton("Reject")
        self.reject_button.clicked.connect(lambda: self._review_current("reject"))
        self.accept_all_button = QPushButton("Accept level")
        self.accept_all_button.setToolTip("Accept every drafted statement of the selected level or section")
        self.accept_all_button.clicked.connect(self._accept_group)
        self.add_button = QPushButton("Add statement…")
        self.add_button.clicked.connect(self._ask_add_statement)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("Your name (author of saved versions, signer)")
        self.save_button = QPushButton("Save version")
        self.save_button.clicked.connect(self._on_save_clicked)
        self.sign_button = QPushButton("Sign off…")
        self.sign_button.clicked.connect(self._ask_sign)
        self.export_buttons: dict[str, QPushButton] = {}
        for ext, label in EXPORT_BUTTONS:
            b = QPushButton(label)
            b.setToolTip(f"Export as {export_formats()[ext]}")
            b.clicked.connect(lambda _=False, e=ext: self._ask_export(e))
            self.export_buttons[ext] = b

        row1 = QHBoxLayout()
        row1.addWidget(self.draft_button)
        row1.addWidget(self.cancel_button)
        row1.addWidget(self.progress, 1)
        review = QHBoxLayout()
        for b in (self.accept_button, self.reject_button, self.accept_all_button, self.add_button):
            review.addWidget(b)
        review.addStretch(1)
        review.addWidget(self.back_button)
        sign = QHBoxLayout()
        sign.addWidget(self.name_edit, 1)
        sign.addWidget(self.save_button)
        sign.addWidget(self.sign_button)
        export = QHBoxLayout()
        export.addWidget(QLabel("Export:"))
        for b in self.export_buttons.values():
            export.addWidget(b)
        export.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.status_label)
        layout.addWidget(self.notes_label)
        layout.addLayout(row1)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.evidence)
        layout.addLayout(review)
        layout.addLayout(sign)
        layout.addLayout(export)

    # --- state ------------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.draft_worker is not None and self.draft_worker.is_running

    @property
    def editable(self) -> bool:
        return self.report is not None and not self.report.locked and self.viewing_version is None

    def _refresh(self) -> None:
        """Re-render everything from ``self.report``."""
        self._filling = True
        try:
            if self.report is None:
                self.tree.clear()
                self._items = {}
            else:
                self._items = report_tree.populate(self.tree, self.report, self.editable)
        finally:
            self._filling = False
        self._refresh_status()
        self._refresh_basis()
        self._refresh_history()
        self._refresh_buttons()

    def _refresh_status(self) -> None:
        r = self.report
        if r is None:
            text, style = "No report for this series yet: press Draft report.", "color:#444;"
        elif self.viewing_version is not None:
            text, style = f"Viewing version {self.viewing_version} (read-only).", "color:#1f4e9c; font-weight:bold;"
        elif r.locked:
            text = f"{r.signature_text()} — locked."
            style = "color:#1b7a2e; font-weight:bold;"
        else:
            pending = len(r.unreviewed())
            version = f"version {r.version}" if r.version else "not saved"
            changed = " · unsaved changes" if self.dirty else ""
            text = f"Draft ({version}{changed}) · {pending} statement(s) to review · model {r.model or '-'}"
            style = "color:#9a6a00;" if pending else "color:#444;"
        self.status_label.setText(text)
        self.status_label.setStyleSheet(style)
        notes = list(r.notes) if r is not None else []
        self.notes_label.setText("\n".join(notes))
        self.notes_label.setVisible(bool(notes))

    def _refresh_basis(self) -> None:
        if self.report is None:
            self.basis_view.setPlainText("")
            return
        lines = ["Registry:"] + [f"  {x}" for x in outline.basis_lines(self.report)]
        lines += ["", "Support of each statement (statement ids: basis tags):"]
        lines += [f"  {x}" for x in outline.support_lines(self.report)]
        self.basis_view.setPlainText("\n".join(lines))

    def _refresh_history(self) -> None:
        self.history.clear()
        if self.report is None:
            return
        for v in self.store.versions(self.report.report_id):
            item = QTreeWidgetItem(self.history, [str(v.version), v.author, v.saved_at,
                                                  ("SIGNED · " if v.signed else "") + v.summary])
            item.setData(0, Qt.ItemDataRole.UserRole, v.version)
            item.setToolTip(3, v.summary)

    def _refresh_buttons(self) -> None:
        editable, busy = self.editable, self.busy
        current = report_tree.statement_id(self.tree.currentItem())
        self.draft_button.setEnabled(not busy and self.viewing_version is None
                                     and (self.report is None or not self.report.locked))
        self.cancel_button.setEnabled(busy)
        self.progress.setEnabled(busy)
        for b in (self.accept_button, self.reject_button):
            b.setEnabled(editable and not busy and current is not None)
        self.accept_all_button.setEnabled(editable and not busy)
        self.add_button.setEnabled(editable and not busy)
        self.save_button.setEnabled(editable and not busy)
        self.sign_button.setEnabled(editable and not busy)
        self.name_edit.setEnabled(not busy)
        for b in self.export_buttons.values():
            b.setEnabled(self.report is not None and not busy)
        self.back_button.setVisible(self.viewing_version is not None)

    # --- study ------------------------------------------------------------------------------------------------
    def set_study(self, series_uid: str, context: StudyContext, labelling=None, volume=None,
                  study_key: str = "") -> None:
        """Show the latest stored report of this series (if any) for this study context."""
        if self.busy:
            self.cancel_draft()
        self.series_uid, self.context, self.labelling, self.volume = series_uid, context, labelling, volume
        self.study_key = study_key or context.study_description
        self._job.study_key = self.study_key or None
        self.viewing_version = None
        self.dirty = False
        self.report = self.store.latest_for_series(series_uid) if series_uid else None
        self._refresh()

    def set_labelling(self, labelling) -> None:
        """The labelling the next draft uses (the viewer's current one)."""
        self.labelling = labelling

    def set_report(self, report: SpineReport | None, dirty: bool = False) -> None:
        self.report, self.viewing_version, self.dirty = report, None, dirty
        self._refresh()
        self.report_changed.emit(report)

    # --- drafting ---------------------------------------------------------------------------------------------
    def draft(self, without_levels: bool | None = None) -> TaskWorker | None:
        """Draft in a worker. Without level labels: ask (None), draft without level rows (True) or refuse (False)."""
        if self.busy or (self.report is not None and self.report.locked):
            return None
        names = self.labelling is not None and self.labelling.named
        if not names:
            if without_levels is None:
                answer = QMessageBox.question(
                    self, "No level labels",
                    "This series has no vertebral level labels.\n\nLabel the levels first (Levels panel), or draft "
                    "the report without level rows? A draft without level rows is clearly marked.",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                    QMessageBox.StandardButton.Cancel)
                without_levels = answer == QMessageBox.StandardButton.Yes
            if not without_levels:
                self.progress_label.setText("Label the levels first, then draft the report.")
                self.draft_failed.emit("no level labels: label the levels first")
                return None
        kwargs = {"series_uid": self.series_uid, "study_uid": getattr(self.volume, "study_uid", "") or "",
                  "n_images": int(self.volume.shape[2]) if self.volume is not None else 0,
                  "is_2d": bool(self.volume is not None and self.volume.is_2d), "has_volume": self.volume is not None,
                  "volume": self.volume}
        worker = TaskWorker(run_draft, self._job, self.context, self.labelling if names else None, kwargs,
                            description="Drafting the report")
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_drafted)
        worker.failed.connect(self._on_draft_failed)
        worker.cancelled.connect(self._on_draft_cancelled)
        worker.done.connect(self._refresh_buttons)
        self.draft_worker = worker
        self.progress.setValue(0)
        self.progress_label.setText("Starting…")
        if self.track is not None:
            self.track(worker)
        worker.start()
        self._refresh_buttons()
        return worker

    def cancel_draft(self) -> None:
        if self.draft_worker is not None:
            self.draft_worker.cancel()
            self.progress_label.setText("Cancelling…")

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress_label.setStyleSheet("color:#555;")
        self.progress_label.setText(message)

    def _on_drafted(self, report: SpineReport) -> None:
        self.set_report(report)
        self.store.save(report, author=f"SpineMed draft ({report.model or 'model'})", study_key=self.study_key)
        self._refresh()
        self.tabs.setCurrentIndex(0)
        self.draft_finished.emit(report)

    def _on_draft_failed(self, message: str) -> None:
        self._message(message)
        self.draft_failed.emit(message)

    def _on_draft_cancelled(self) -> None:
        self._message("Drafting cancelled: the previous report is unchanged.")

    # --- review -----------------------------------------------------------------------------------------------
    def statement_item(self, statement_id: str) -> QTreeWidgetItem | None:
        return self._items.get(statement_id)

    def level_item(self, level: str) -> QTreeWidgetItem | None:
        return self._items.get(f"level:{level}")

    def _changed(self, statement_id: str | None = None) -> None:
        self.dirty = True
        if statement_id and self.report is not None and statement_id in self._items:
            self._filling = True
            report_tree.style_statement(self._items[statement_id], self.report.statement(statement_id))
            self._filling = False
        self._refresh_status()
        self._refresh_basis()
        self._refresh_buttons()
        self.report_changed.emit(self.report)

    def accept_statement(self, statement_id: str) -> None:
        self._require_editable().accept(statement_id)
        self._changed(statement_id)

    def reject_statement(self, statement_id: str) -> None:
        self._require_editable().reject(statement_id)
        self._changed(statement_id)

    def edit_statement(self, statement_id: str, text: str) -> None:
        self._require_editable().edit(statement_id, text)
        self._changed(statement_id)
        item = self._items.get(statement_id)
        if item is not None:
            self._filling = True
            item.setText(0, report_tree._label(self.report.statement(statement_id)))
            self._filling = False

    def add_statement(self, where: str, text: str) -> str:
        s = self._require_editable().add_statement(where, text)
        self.dirty = True
        self._refresh()
        self.report_changed.emit(self.report)
        return s.id

    def _require_editable(self) -> SpineReport:
        if self.report is None:
            raise RuntimeError("no report to edit")
        if self.viewing_version is not None:
            raise ReportLockedError("an older version is shown read-only")
        if self.report.locked:
            self.report._check_unlocked()
        return self.report

    def _review_current(self, action: str) -> None:
        sid = report_tree.statement_id(self.tree.currentItem())
        if sid:
            (self.accept_statement if action == "accept" else self.reject_statement)(sid)

    def _accept_group(self) -> None:
        item = self.tree.currentItem()
        if item is None or self.report is None:
            return
        parent = item if item.childCount() else item.parent()
        for n in range(parent.childCount() if parent is not None else 0):
            sid = report_tree.statement_id(parent.child(n))
            if sid and self.report.statement(sid).status == "drafted":
                self.accept_statement(sid)

    def _ask_add_statement(self) -> None:
        where = report_tree.target_of(self.tree.currentItem()) or "impression"
        text, ok = QInputDialog.getMultiLineText(self, "Add statement", f"New statement ({where}):")
        if ok and text.strip():
            self.add_statement(where, text)

    def _on_item_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        level = report_tree.level_of(item)
        if level:
            self.level_selected.emit(level)
        sid = report_tree.statement_id(item)
        if sid and self.report is not None:
            self.show_evidence(sid)
        self._refresh_buttons()

    def show_evidence(self, statement_id: str) -> str:
        """Show (and return as HTML) what a statement cites: each measurement with its value, each passage with its
        text; a statement struck by the findings check shows why."""
        import html

        s = self.report.statement(statement_id)
        lines = [f"<b>{html.escape(s.id)}</b> ({html.escape(s.source)}, {html.escape(s.status)})"]
        if s.status == "rejected" and s.text.startswith("Not shown as a finding"):
            lines.append(f'<span style="color:#9c2f00;">{html.escape(s.text)}</span>')
        for mid in s.basis.measurements:
            m = self.report.measurement(mid)
            lines.append(f"[{html.escape(mid)}] measurement: " + html.escape(m.to_text() if m else "not in the report"))
        for pid in s.basis.passages:
            p = self.report.passage(pid)
            text = ""
            if self._knowledge is None:
                from core.consult.retrieval import default_retriever

                self._knowledge = default_retriever() or False
            found = self._knowledge.get(pid) if self._knowledge else None
            if found is not None:
                text = ": " + " ".join(found.text.split())[:500]
            lines.append(f"[{html.escape(pid)}] passage {html.escape(p.title if p else '')}{html.escape(text)}")
        if len(lines) == 1:
            lines.append("No measurement or passage: " + ("a template statement." if s.source == "template" else
                                                           "not supported by this study's data."))
        out = "<br>".join(lines)
        self.evidence.setHtml(out)
        return out

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._filling or column != 0 or self.report is None:
            return
        sid = report_tree.statement_id(item)
        if not sid:
            return
        s = self.report.statement(sid)
        if not self.editable:  # signed or an old version: put the stored text back
            self._filling = True
            item.setText(0, report_tree._label(s))
            self._filling = False
            return
        text = item.text(0).strip()
        title = ASPECT_TITLES.get(s.aspect, "")
        if title and text.startswith(f"{title}: "):
            text = text[len(title) + 2:]
        if text and text != s.text:
            self.edit_statement(sid, text)

    # --- versions and sign-off ----------------------------------------------------------------------------------
    def signer(self) -> str:
        return " ".join(self.name_edit.text().split())

    def save_version(self, author: str | None = None):
        author = author or self.signer()
        if not author:
            raise ValueError("enter your name to save a version")
        info = self.store.save(self._require_editable(), author=author, study_key=self.study_key)
        self.dirty = False
        self._refresh()
        return info

    def sign_off(self, name: str | None = None, accept_remaining: bool = False) -> SpineReport:
        name = name or self.signer()
        if not name:
            raise ValueError("enter your name to sign the report")
        report = self.store.sign(self._require_editable(), name, accept_remaining=accept_remaining)
        self.dirty = False
        self._refresh()
        self.signed.emit(report)
        self.report_changed.emit(report)
        return report

    def _on_save_clicked(self) -> None:
        try:
            self.save_version()
        except (ValueError, ReportLockedError) as exc:
            self._message(str(exc))

    def _ask_sign(self) -> None:
        if self.report is None:
            return
        name = self.signer()
        if not name:
            self._message("Enter your name to sign the report.")
            return
        pending = len(self.report.unreviewed())
        text = f"Sign this report as {name}? It is locked afterwards."
        if pending:
            text = (f"{pending} statement(s) are still drafted (not reviewed). Accept all of them and sign as {name}?"
                    " The report is locked afterwards.")
        answer = QMessageBox.question(self, "Sign off", text)
        if answer == QMessageBox.StandardButton.Yes:
            try:
                self.sign_off(name, accept_remaining=True)
            except (ValueError, ReportLockedError) as exc:
                self._message(str(exc))

    def show_version(self, version: int) -> None:
        if self.report is None:
            return
        self.report = self.store.load(self.report.report_id, version)
        latest = self.store.versions(self.report.report_id)[-1].version
        self.viewing_version = None if version == latest else version
        self._refresh()

    def show_latest(self) -> None:
        if self.report is not None:
            self.report = self.store.load(self.report.report_id)
        self.viewing_version = None
        self._refresh()

    def _on_history_double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        self.show_version(int(item.data(0, Qt.ItemDataRole.UserRole)))
        self.tabs.setCurrentIndex(0)

    # --- export -----------------------------------------------------------------------------------------------
    def export_to(self, path: str | Path) -> TaskWorker | None:
        if self.report is None:
            return None
        if self.dirty and self.editable:  # keep the edits as a version first: a failed export then loses nothing
            self.save_version(self.signer() or "autosave before export")
        worker = TaskWorker(run_export, self.report, Path(path), self.volume, description=f"Exporting {Path(path).name}")
        worker.finished.connect(lambda p: (self._message(f"Exported {p}", error=False), self.exported.emit(str(p))))
        worker.failed.connect(lambda msg: (self._message(msg), self.export_failed.emit(msg)))
        self.export_worker = worker
        if self.track is not None:
            self.track(worker)
        return worker.start()

    def _ask_export(self, ext: str) -> None:
        name = f"spine_report{'_signed' if self.report and self.report.locked else '_draft'}{ext}"
        path, _ = QFileDialog.getSaveFileName(self, "Export report", name, f"{export_formats()[ext]} (*{ext})")
        if path:
            if not path.lower().endswith(ext):
                path += ext
            self.export_to(path)

    def _message(self, text: str, error: bool = True) -> None:
        self.progress_label.setText(text)
        self.progress_label.setStyleSheet("color:#a33;" if error else "color:#1b7a2e;")

    def shutdown(self) -> None:
        self.cancel_draft()
        self._job.unload()
