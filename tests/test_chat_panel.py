"""The chat panel with the real embedded model under Xvfb: streaming, Stop, Regenerate, Edit-and-resend, level links.

Run as the Makefile does: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest tests/test_chat_panel.py``.
Its picture is README's docs/screenshots/chat_panel.png when `make screenshots` runs it.
"""
from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer, QUrl
from PySide6.QtWidgets import QApplication

from app.chat.chat_panel import ChatPanel, linkify_levels
from core.consult import ConversationStore, Measurement, StudyContext
from core.inference.backend import GenerationParams

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def model_path(embedded_model) -> Path:
    return embedded_model


def _context() -> StudyContext:
    return StudyContext(
        modality="MR", study_description="Lumbar spine", series=['MR "Sag T2" (15 images)'],
        levels_in_view=["L3-L4", "L4", "L4-L5", "L5", "L5-S1"],
        measurements=[Measurement("disc height", "L4-L5", 6.1, "mm"),
                      Measurement("canal AP diameter", "L4-L5", 9.5, "mm")],
        patient_age="061Y", patient_sex="F",
    )


def test_linkify_levels_marks_only_spine_levels():
    out = linkify_levels("L4/5 and L5-S1 narrowing; T2 signal; C9 is no level; <b>")
    assert 'href="level:L4-L5"' in out and 'href="level:L5-S1"' in out
    assert "level:T2" not in out and "level:C9" not in out and "&lt;b&gt;" in out


def test_chat_panel_streams_stops_and_never_blocks(qtbot, tmp_path, model_path, screenshot_path):
    store = ConversationStore(tmp_path / "library.db")
    panel = ChatPanel(store=store, retriever=None, params=GenerationParams(max_tokens=48, temperature=0.0))
    panel.grounded = False  # token streaming and Stop of the raw model; grounded answers: tests/test_citations_ui.py
    qtbot.addWidget(panel)
    panel.resize(560, 900)
    panel.show()
    panel.set_study("study-A", _context(), series_uid="1.2.3")
    with qtbot.waitSignal(panel.model_loaded, timeout=60000) as loaded:
        panel.load_model(model_path, n_ctx=2048)
    assert loaded.args[0].device == "CPU" and "CPU" in panel.model_label.text()
    panel.set_selected_level("L4-L5")
    assert "L4-L5" in panel.level_chip.text()

    # The GUI thread keeps ticking while the worker generates.
    ticks: list[float] = []
    timer = QTimer(interval=20, timeout=lambda: ticks.append(time.perf_counter()))
    timer.start()
    tokens: list[str] = []
    panel.answer_token.connect(tokens.append)
    panel.input.setPlainText("Is the disc height at L4-L5 reduced?")
    with qtbot.waitSignal(panel.answer_finished, timeout=60000) as first:
        panel.send_button.click()
        assert panel.busy and panel.stop_button.isEnabled() and not panel.send_button.isEnabled()
    timer.stop()
    answer = first.args[0]
    assert answer.status == "complete" and len(tokens) >= 3 and answer.text == "".join(tokens)
    assert len(ticks) >= 5 and max(b - a for a, b in itertools.pairwise(ticks)) < 0.5
    messages = panel.consultation.messages()
    assert [m.role for m in messages] == ["user", "assistant"] and messages[0].level == "L4-L5"

    # Stop a long answer after a few tokens.
    panel.params = GenerationParams(max_tokens=400, temperature=0.7, seed=7)
    panel.set_selected_level("L5-S1")
    seen: list[str] = []

    def stop_early(piece: str) -> None:
        seen.append(piece)
        if len(seen) == 4:
            panel.stop_button.click()

    panel.answer_token.connect(stop_early)
    panel.input.setPlainText("Describe every structure you would check at L5-S1, one by one, in detail.")
    with qtbot.waitSignal(panel.answer_finished, timeout=60000) as second:
        panel.send_button.click()
    panel.answer_token.disconnect(stop_early)
    stopped = second.args[0]
    assert stopped.status == "cancelled" and stopped.message.status == "cancelled"
    assert len(seen) <= 6 and panel.backend.last_stats.generated_tokens < 20
    assert "Stopped" in panel.status.text() and "[stopped]" in panel.transcript.toPlainText()

    # Regenerate replaces the stopped answer; Edit-and-resend replaces the last question.
    panel.params = GenerationParams(max_tokens=24, temperature=0.0)
    with qtbot.waitSignal(panel.answer_finished, timeout=60000) as regen:
        panel.regen_button.click()
    assert regen.args[0].status == "complete"
    panel.edit_button.click()
    assert panel.send_button.text() == "Resend edited"
    panel.input.setPlainText("Is the canal narrowed at L5-S1?")
    with qtbot.waitSignal(panel.answer_finished, timeout=60000):
        panel.send_button.click()
    questions = [m.content for m in panel.consultation.messages() if m.role == "user"]
    assert questions == ["Is the disc height at L4-L5 reduced?", "Is the canal narrowed at L5-S1?"]
    everything = panel.consultation.messages(include_inactive=True)
    assert sum(1 for m in everything if not m.active) >= 3  # the stopped answer, its question, the regenerated one

    # Level names in the transcript are links that select the level in the viewer.
    assert 'href="level:L4-L5"' in panel.transcript.toHtml()
    with qtbot.waitSignal(panel.level_clicked) as clicked:
        panel.transcript.anchorClicked.emit(QUrl("level:L4-L5"))
    assert clicked.args == ["L4-L5"]

    # Conversation list per study; a new conversation starts empty; the old one can be reopened.
    assert panel.conversations.count() == 2  # "New conversation" + this one
    first_id = panel.consultation.id
    panel.new_button.click()
    assert panel.consultation.id is None and "Ask a question" in panel.transcript.toPlainText()
    panel._on_conversation_chosen(panel.conversations.findData(first_id))
    assert panel.consultation.id == first_id

    pdf = panel.export_conversation(tmp_path / "consultation.pdf")
    assert pdf.read_bytes()[:4] == b"%PDF"
    md = panel.export_conversation(tmp_path / "consultation.md").read_text()
    assert "Decision support, not a diagnosis" in md and "L5-S1" in md

    # Show the state with a stopped answer for the screenshot.
    panel.set_selected_level("L4-L5")
    panel.params = GenerationParams(max_tokens=200, temperature=0.7, seed=3)
    panel.answer_token.connect(stop_early)
    seen.clear()
    panel.input.setPlainText("What would you check next at L4-L5?")
    with qtbot.waitSignal(panel.answer_finished, timeout=60000):
        panel.send_button.click()
    panel.answer_token.disconnect(stop_early)
    QApplication.processEvents()
    assert panel.grab().save(str(screenshot_path("chat_panel.png")))
    panel.shutdown()
    store.close()
