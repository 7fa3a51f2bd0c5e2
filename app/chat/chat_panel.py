"""The chat panel shown beside the viewer: a level-aware consultation with the local model.

    panel = ChatPanel(session=session)                    # store: the library database (core.paths)
    panel.set_study(study_key, StudyContext(...), series_uid)   # or session.open_study(...): study_changed
    panel.load_model()                                    # session.load_model: the registry's choice (or a path)
    panel.set_selected_level("L4-L5")                     # shown as a chip in the input
    panel.level_clicked.connect(viewer.select_level)      # level names in the transcript are links

The model belongs to the session (app/session.py), which loads it on its model thread; the panel's
:class:`ChatWorker` generates on that same thread, so neither runs on the GUI thread and a new model is loaded only
after the answer in flight. Without a session the panel makes its own. Tokens arrive through queued signals and the
transcript is re-rendered at most every ``RENDER_MS``. Stop cancels through the consultation's thread-safe cancel token (the worker's event loop is busy while it generates).
"""
from __future__ import annotations

import html
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QKeySequence, QPageSize, QPdfWriter, QShortcut, QTextDocument
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.session import Session
from core.consult import (
    AnswerStream,
    Consultation,
    ConversationStore,
    StoredMessage,
    StudyContext,
    conversation_markdown,
    default_retriever,
)
from core.inference.backend import BackendInfo, GenerationParams
from core.inference.choice import DEIDENTIFIED_NOTE
from core.spine.anatomy import level_mentions

RENDER_MS = 60
BANNER = "Decision support, not a diagnosis: check every statement against the images."
_STATUS = {"cancelled": "stopped", "interrupted": "interrupted", "error": "failed", "streaming": "incomplete"}


def linkify_levels(text: str) -> str:
    """Escape ``text`` for HTML and turn spine level names into ``level:`` links."""
    out, pos = [], 0
    for start, end, name in level_mentions(text):  # the names core.spine.anatomy finds (bare T1/T2: weightings)
        out.append(html.escape(text[pos:start]))
        out.append(f'<a href="level:{name}">{html.escape(text[start:end])}</a>')
        pos = end
    out.append(html.escape(text[pos:]))
    return "".join(out).replace("\n", "<br>")


class ChatWorker(QObject):
    """Generates answers; its slot runs on the session's model thread."""

    started = Signal(object)  # AnswerStream (question stored, notes known)
    token = Signal(str)
    finished = Signal(object)  # AnswerStream (final status and message)
    failed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.stop_requested = threading.Event()  # Stop pressed before the answer stream existed

    @Slot(object)
    def run(self, job: Callable[[], AnswerStream]) -> None:
        try:
            answer = job()
        except Exception as exc:  # noqa: BLE001
            self.failed.emit(str(exc))
            return
        if self.stop_requested.is_set():
            answer.cancel()
        self.started.emit(answer)
        try:
            for piece in answer:
                self.token.emit(piece)
        except Exception as exc:  # noqa: BLE001 - the answer is stored with status 'error'
            self.failed.emit(str(exc))
        self.finished.emit(answer)


def grounded_html(grounding: dict) -> str:
    """A checked answer (core.findings.CheckedAnswer JSON) as HTML: each statement with its citations as
    ``cite:`` links, statements not shown as findings struck out with the reason, then what would need measuring."""
    parts = []
    for s in grounding.get("statements", []):
        text = linkify_levels(s["text"])
        cites = " ".join(f'<a href="cite:{html.escape(c)}">[{html.escape(c)}]</a>' for c in s.get("cites", []))
        if not s.get("shown", True):
            parts.append(f'<span style="color:#888;"><s>{text}</s></span> <span style="color:#9c2f00;'
                         f' font-size:small;">not shown as a finding: {html.escape(s.get("reason", ""))}</span>')
            continue
        tag = {"general": " <i style=\"color:#666;\">(general knowledge)</i>",
               "cannot_tell": " <i style=\"color:#8a6d00;\">(cannot be told from this study's data)</i>",
               "fact": " <i style=\"color:#1b5e20;\">(measured: workstation fact)</i>"}.get(s.get("kind"), "")
        parts.append(f"{text}{tag} {cites}")
    if grounding.get("needs"):
        parts.append('<span style="color:#8a6d00;">To tell, this would need: '
                     + html.escape("; ".join(grounding["needs"])) + ".</span>")
    if grounding.get("text_only", True):
        from core.findings.check import TEXT_ONLY_NOTE

        parts.append(f'<span style="color:#a33; font-size:small;">{html.escape(TEXT_ONLY_NOTE)}</span>')
    return "<br>".join(parts)


class ChatPanel(QWidget):
    level_clicked = Signal(str)
    citation_clicked = Signal(str)  # a fact or passage id of a grounded answer
    answer_started = Signal(object)
    answer_token = Signal(str)
    answer_finished = Signal(object)  # AnswerStream
    model_loaded = Signal(object)  # BackendInfo
    busy_changed = Signal(bool)
    _run_requested = Signal(object)

    def __init__(self, store: ConversationStore | None = None, retriever: Any = "default",
                 params: GenerationParams | None = None, parent: QWidget | None = None,
                 session: Session | None = None) -> None:
        super().__init__(parent)
        self._own_session = session is None
        self.session = session if session is not None else Session(self)
        self.store = store or ConversationStore()
        self.store.mark_interrupted()
        self.retriever = default_retriever() if retriever == "default" else retriever
        self.params = params or GenerationParams(max_tokens=384, temperature=0.2)
        self.consultation: Consultation | None = None
        self.context = StudyContext()
        self.study_key, self.series_uid = "", ""
        self.selected_level: str | None = None
        self.busy = False
        self.grounded = True  # answers checked against the study's facts (core.findings); False: the raw model
        self.facts: Any = None  # core.findings.FactSheet pushed by the viewer (else built from the context)
        self._stream_text = ""
        self._current: AnswerStream | None = None
        self._pending_question = ""
        self._edit_id: int | None = None
        self._error = ""
        self._build_ui()
        self._render_timer = QTimer(self, singleShot=True, interval=RENDER_MS, timeout=self._render)
        self.worker = ChatWorker()
        self.worker.moveToThread(self.session.model_thread)
        self._run_requested.connect(self.worker.run)
        self.session.model_loading.connect(self._on_loading)
        self.session.model_changed.connect(self._on_loaded)
        self.session.model_failed.connect(self._on_load_failed)
        self.session.study_changed.connect(self._on_study_changed)
        self.worker.started.connect(self._on_started)
        self.worker.token.connect(self._on_token)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self._update_buttons()

    # --- UI ---------------------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.banner = QLabel(BANNER)
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#fff4ce; color:#5c4400; border:1px solid #e0c46c; padding:4px;")
        self.model_label = QLabel("Model: not loaded")
        self.model_label.setStyleSheet("color:#444;")
        self.conversations = QComboBox()
        self.conversations.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.conversations.activated.connect(self._on_conversation_chosen)
        self.new_button = QPushButton("New")
        self.new_button.setToolTip("Start a new conversation about this study")
        self.new_button.clicked.connect(self.new_conversation)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._export_dialog)
        self.transcript = QTextBrowser()
        self.transcript.setOpenLinks(False)
        self.transcript.anchorClicked.connect(self._on_anchor)
        self.evidence = QTextBrowser()  # what a clicked citation rests on: the measurement or the passage
        self.evidence.setMaximumHeight(110)
        self.evidence.setVisible(False)
        self.evidence.setStyleSheet("background:#f3f8f3; border:1px solid #9cc39c;")
        self.level_chip = QToolButton()
        self.level_chip.setToolTip("Selected level, sent with the question (click to clear)")
        self.level_chip.setStyleSheet("QToolButton{background:#dbe9ff; border:1px solid #7aa7e6; border-radius:9px;"
                                      " padding:2px 8px; color:#0b3d91; font-weight:bold;}")
        self.level_chip.clicked.connect(lambda: self.set_selected_level(None))
        self.input = QPlainTextEdit()
        self.input.setPlaceholderText("Ask about the selected level… (Ctrl+Enter to send)")
        self.input.setFixedHeight(64)
        self.send_button = QPushButton("Send")
        self.send_button.clicked.connect(self._on_send)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.regen_button = QPushButton("Regenerate")
        self.regen_button.clicked.connect(self.regenerate)
        self.edit_button = QPushButton("Edit last")
        self.edit_button.setToolTip("Edit the last question and send it again")
        self.edit_button.clicked.connect(self.edit_last)
        self.status = QLabel("")
        self.status.setStyleSheet("color:#666;")
        QShortcut(QKeySequence("Ctrl+Return"), self.input, activated=self._on_send)
        QShortcut(QKeySequence("Escape"), self, activated=self._cancel_edit)

        top = QHBoxLayout()
        top.addWidget(self.conversations, 1)
        top.addWidget(self.new_button)
        top.addWidget(self.export_button)
        entry = QHBoxLayout()
        entry.addWidget(self.level_chip, 0, Qt.AlignmentFlag.AlignTop)
        entry.addWidget(self.input, 1)
        buttons = QHBoxLayout()
        for b in (self.send_button, self.stop_button, self.regen_button, self.edit_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.model_label)
        layout.addLayout(top)
        layout.addWidget(self.transcript, 1)
        layout.addWidget(self.evidence)
        layout.addLayout(entry)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.set_selected_level(None)

    def _update_buttons(self) -> None:
        ready = self.backend is not None and not self.busy
        has_question = bool(self.consultation and any(m.role == "user" for m in self.consultation.messages()))
        self.send_button.setEnabled(ready)
        self.send_button.setText("Resend edited" if self._edit_id is not None else "Send")
        self.stop_button.setEnabled(self.busy)
        self.regen_button.setEnabled(ready and has_question)
        self.edit_button.setEnabled(ready and has_question)
        self.new_button.setEnabled(not self.busy)
        self.conversations.setEnabled(not self.busy)
        self.export_button.setEnabled(bool(self.consultation and self.consultation.id is not None))

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._update_buttons()
        self.busy_changed.emit(busy)

    # --- study, level, model ----------------------------------------------------------------------------------
    def set_study(self, study_key: str, context: StudyContext, series_uid: str = "") -> None:
        """Show the conversations of this study; the most recent one is continued."""
        self.stop()
        self.study_key, self.series_uid, self.context = study_key, series_uid, context
        self.facts = None  # the viewer pushes the new study's facts (ChatLink)
        if context.selected_level:
            self.set_selected_level(context.selected_level)
        self._refresh_conversations()
        rows = self.store.conversations(study_key)
        self._open_consultation(rows[0]["id"] if rows else None)

    @Slot(object)
    def _on_study_changed(self, study: Any) -> None:
        """The session opened a study (app.session.StudyRef)."""
        self.set_study(study.study_key, study.context, study.series_uid)

    def set_context(self, context: StudyContext) -> None:
        """New levels in view / measurements: sent with the next question as a context update."""
        self.context = context
        if self.consultation is not None:
            self.consultation.context = context

    def set_facts(self, sheet: Any) -> None:
        """The study's fact sheet (core.findings.FactSheet): what grounded answers may cite."""
        self.facts = sheet
        if self.consultation is not None and self.grounded:
            self.consultation.facts = sheet

    def current_facts(self) -> Any:
        """The fact sheet for the next answer: the pushed one, else built from the context's levels and
        measurements."""
        from core.findings import build_facts

        if self.facts is not None:
            return self.facts
        return build_facts(self.context.measurements, self.context.levels_in_view, modality=self.context.modality)

    def set_selected_level(self, level: str | None) -> None:
        self.selected_level = level or None
        self.context.selected_level = self.selected_level
        self.level_chip.setText(f"{level}  ✕" if level else "no level")
        self.level_chip.setEnabled(bool(level))

    @property
    def backend(self) -> Any:
        """The session's loaded model (None while loading or when none could be loaded)."""
        return self.session.backend

    @property
    def model_info(self) -> BackendInfo | None:
        return self.session.model_info

    @property
    def on_server(self) -> bool:
        info = self.session.model_info
        return info is not None and info.device.startswith("server")

    def load_model(self, path: Path | str | None = None, **options: Any) -> None:
        """Load ``path`` through the session (its model thread); without a path, the department's server when it is
        switched on (settings), else the registry's choice for this study."""
        self.session.load_model(path, study_key=self.study_key, **options)

    @Slot(str)
    def _on_loading(self, text: str) -> None:
        self.model_label.setText(f"Model: {text}…")
        self._update_buttons()

    @Slot(object)
    def _on_loaded(self, info: BackendInfo) -> None:
        backend = self.session.backend
        adapter = f" + {Path(info.lora_path).stem}" if info.lora_path else ""
        server = info.device.startswith("server")
        name = info.model_name if server else Path(info.model_path).name
        label = f"Model: {name}{adapter} · {info.device_label()} · ctx {info.n_ctx}"
        if server:
            label += f" · {DEIDENTIFIED_NOTE}"
        self.model_label.setText(label)
        self.model_label.setToolTip("\n".join([info.model_name, *info.notes]))
        self.model_label.setStyleSheet("color:#a33;" if info.notes else "color:#444;")
        if self.consultation is not None:
            self.consultation.backend = backend
        else:
            self._open_consultation(None)
        self._render()  # the empty transcript says where questions go (this workstation or the server)
        self._update_buttons()
        self.model_loaded.emit(info)

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        self.model_label.setText("Model: not loaded")
        self.model_label.setStyleSheet("color:#a33;")
        self.status.setText(f"Model could not be loaded: {message}")
        self._update_buttons()

    # --- conversations ----------------------------------------------------------------------------------------
    def _refresh_conversations(self) -> None:
        self.conversations.blockSignals(True)
        self.conversations.clear()
        self.conversations.addItem("New conversation", None)
        for row in self.store.conversations(self.study_key):
            self.conversations.addItem(f"{row['title']}  ({row['n_messages']} messages, {row['updated_at'][:16]})",
                                       row["id"])
        current = self.consultation.id if self.consultation else None
        index = self.conversations.findData(current) if current is not None else 0
        self.conversations.setCurrentIndex(max(index, 0))
        self.conversations.blockSignals(False)

    def _open_consultation(self, conversation_id: int | None) -> None:
        self.consultation = Consultation(
            self.backend, self.store, self.context, conversation_id=conversation_id, study_key=self.study_key,
            series_uid=self.series_uid, retriever=self.retriever, params=self.params)
        self._edit_id = None
        self._refresh_conversations()
        self._render()
        self._update_buttons()

    def _on_conversation_chosen(self, index: int) -> None:
        self._open_consultation(self.conversations.itemData(index))

    def new_conversation(self) -> None:
        if not self.busy:
            self._open_consultation(None)

    # --- asking -----------------------------------------------------------------------------------------------
    def ask(self, question: str) -> None:
        question = question.strip()
        if not question or self.busy or self.backend is None or self.consultation is None:
            return
        consult, level = self.consultation, self.selected_level
        consult.backend, consult.params, consult.context = self.backend, self.params, self.context
        consult.facts = self.current_facts() if self.grounded else None
        if self._edit_id is not None:
            edit_id, self._edit_id = self._edit_id, None
            job: Callable[[], AnswerStream] = lambda: consult.edit_and_resend(edit_id, question, level=level)
        else:
            draw = self.session.key_images_later(level)  # a model that sees images gets the level's slices
            job = lambda: consult.ask(question, level=level, images=draw() or None)
        self._start(job, question)

    def regenerate(self) -> None:
        if self.busy or self.consultation is None or self.backend is None:
            return
        consult = self.consultation
        consult.backend, consult.params = self.backend, self.params
        self._start(consult.regenerate, "")

    def edit_last(self) -> None:
        if self.busy or self.consultation is None:
            return
        last = next((m for m in reversed(self.consultation.messages()) if m.role == "user"), None)
        if last is None:
            return
        self._edit_id = last.id
        self.input.setPlainText(last.content)
        if last.level:
            self.set_selected_level(last.level)
        self.input.setFocus()
        self._update_buttons()

    def _cancel_edit(self) -> None:
        if self._edit_id is not None:
            self._edit_id = None
            self.input.clear()
            self._update_buttons()

    def stop(self) -> None:
        if self.busy:
            self.worker.stop_requested.set()
        if self.consultation is not None:
            self.consultation.cancel()
        if self.busy:
            self.status.setText("Stopping…")

    def _on_send(self) -> None:
        text = self.input.toPlainText()
        if text.strip() and not self.busy:
            self.input.clear()
            self.ask(text)

    def _start(self, job: Callable[[], AnswerStream], question: str) -> None:
        self._stream_text, self._pending_question, self._error = "", question, ""
        self.worker.stop_requested.clear()
        self._set_busy(True)
        self.status.setText("Thinking…")
        self._render()
        self._run_requested.emit(job)

    @Slot(object)
    def _on_started(self, answer: AnswerStream) -> None:
        self._current = answer
        self._pending_question = ""
        self._refresh_conversations()
        self.status.setText("Answering…")
        self._render()
        self.answer_started.emit(answer)

    @Slot(str)
    def _on_token(self, piece: str) -> None:
        self._stream_text += piece
        self.answer_token.emit(piece)
        if not self._render_timer.isActive():
            self._render_timer.start()

    @Slot(object)
    def _on_finished(self, answer: AnswerStream) -> None:
        self._current = None
        self._stream_text = ""
        stats = self.backend.last_stats if self.backend is not None else None
        text = {"complete": "Done", "cancelled": "Stopped"}.get(answer.status, f"Failed: {self._error}")
        if stats and stats.ttft_s is not None:
            speed = stats.decode_tokens_per_s
            text += f" · first token {stats.ttft_s:.2f} s" + (f" · {speed:.0f} tokens/s" if speed else "")
        self.status.setText(text)
        self._set_busy(False)
        self._refresh_conversations()
        self._render()
        self.answer_finished.emit(answer)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._error = message
        if self._current is None:  # failed before streaming began (e.g. the question does not fit)
            self.status.setText(f"Error: {message}")
            self._pending_question = ""
            self._set_busy(False)
            self._render()

    # --- transcript -------------------------------------------------------------------------------------------
    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme() == "level":
            self.level_clicked.emit(url.path())
        elif url.scheme() == "cite":
            self.show_citation(url.path())

    def show_citation(self, cite_id: str) -> None:
        """Show what a citation rests on (a fact's measurement, or a knowledge passage) and select its level."""
        fact = self.current_facts().fact(cite_id) if self.grounded or self.facts is not None else None
        if fact is not None:
            where = f"{fact.level}: " if fact.level else ""
            lines = [f"<b>[{html.escape(fact.id)}]</b> {html.escape(where + fact.text)}",
                     f"method: {html.escape(fact.method)}"]
            if fact.scale:
                lines.append(f"classification: {html.escape(fact.scale)} → {html.escape(fact.grade_label)}")
            if fact.measurement_id is not None:
                lines.append(f"stored measurement #{fact.measurement_id} (Measurements panel)")
            self.evidence.setHtml("<br>".join(lines))
            if fact.level:
                self.level_clicked.emit(fact.level)
        else:
            passage = self.retriever.get(cite_id) if hasattr(self.retriever, "get") else None
            if passage is not None:
                text = " ".join(passage.text.split())[:900]
                self.evidence.setHtml(f"<b>[{html.escape(cite_id)}] {html.escape(passage.title)}</b><br>"
                                      f"{html.escape(text)}")
            else:
                self.evidence.setHtml(f"[{html.escape(cite_id)}]: not found in this study's facts or the "
                                      "knowledge base")
        self.evidence.setVisible(True)
        self.citation_clicked.emit(cite_id)

    def _message_html(self, m: StoredMessage, text: str | None = None) -> str:
        body = linkify_levels((text if text is not None else m.content).strip()) or "<i>(no text)</i>"
        if m.role == "note":
            return f'<p style="color:#8a6d00; font-style:italic; margin:6px 0;">Note: {body}</p>'
        if m.role == "user":
            level = (f' <span style="background:#dbe9ff; color:#0b3d91;">&nbsp;<a href="level:{m.level}">'
                     f"{html.escape(m.level)}</a>&nbsp;</span>") if m.level else ""
            return (f'<table width="100%" style="margin-top:10px;"><tr><td style="background:#eef3fa; padding:6px;">'
                    f"<b>You</b>{level}<br>{body}</td></tr></table>")
        status = _STATUS.get(m.status, "")
        suffix = f' <span style="color:#a33;">[{status}]</span>' if status else ""
        if m.grounding:
            body = grounded_html(m.grounding)
        sources = ""
        if m.passages:
            refs = ", ".join(html.escape(f"[{p['id']}] {p.get('title', '')}") for p in m.passages)
            sources = f'<br><span style="color:#666; font-size:small;">Knowledge used: {refs}</span>'
        return (f'<table width="100%"><tr><td style="padding:6px;"><b>SpineMed</b>{suffix}<br>{body}{sources}'
                "</td></tr></table>")

    def _render(self) -> None:
        parts = []
        messages = self.consultation.messages() if self.consultation else []
        streaming_id = None
        if self._current is not None:
            streaming_id = next((m.id for m in messages if m.role == "assistant" and m.status == "streaming"), None)
        for m in messages:
            if m.id == streaming_id:
                continue
            parts.append(self._message_html(m))
        if self._pending_question:
            parts.append(self._message_html(StoredMessage(0, 0, 0, "user", self._pending_question,
                                                          level=self.selected_level)))
        if self.busy and self._current is not None:
            live = StoredMessage(0, 0, 0, "assistant", self._stream_text, status="")
            waiting = "(checking the answer against this study's facts…)" if self.grounded else ""
            parts.append(self._message_html(live, (self._stream_text or waiting) + " ▍"))
        if not parts and self.on_server:
            host = self.session.model_info.device.removeprefix("server").strip()
            parts.append('<p style="color:#888;">Ask a question about the open study. The question, the selected '
                         f"level and the study context, de-identified (no name, ID or birth date; names, dates and "
                         f"record numbers removed from descriptions), go to the department server {html.escape(host)};"
                         " nothing else leaves this workstation.</p>")
        elif not parts:
            parts.append('<p style="color:#888;">Ask a question about the open study. The selected level and the '
                         "study context are sent with it; the answer stays on this workstation.</p>")
        bar = self.transcript.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 4
        self.transcript.setHtml("".join(parts))
        if at_end or self.busy:
            bar.setValue(bar.maximum())

    # --- export and shutdown ----------------------------------------------------------------------------------
    def export_conversation(self, path: Path | str) -> Path:
        """Markdown for .md, PDF for .pdf."""
        if self.consultation is None or self.consultation.id is None:
            raise ValueError("no conversation to export")
        path = Path(path)
        markdown = conversation_markdown(self.store, self.consultation.id)
        if path.suffix.lower() == ".pdf":
            doc = QTextDocument()
            doc.setMarkdown(markdown)
            writer = QPdfWriter(str(path))
            writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
            writer.setResolution(150)
            doc.print_(writer)
        else:
            path.write_text(markdown, encoding="utf-8")
        return path

    def _export_dialog(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export conversation", "consultation.md",
                                              "Markdown (*.md);;PDF (*.pdf)")
        if name:
            self.export_conversation(name)
            self.status.setText(f"Exported to {name}")

    def shutdown(self) -> None:
        """Stop generation (and the panel's own session, if it made one); call before the application quits."""
        self.stop()
        self._render_timer.stop()
        if self._own_session:
            self.session.shutdown()

    def closeEvent(self, event: Any) -> None:
        self.shutdown()
        super().closeEvent(event)
