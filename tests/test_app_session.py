"""The session in a real main window (Xvfb): one model shared by the chat and the report dock, the status bar saying
which model, adapter and device run (or which server answers, and that only de-identified context goes there), a
model that cannot be loaded, and a question about a study whose descriptions carry the patient's name reaching the
server without it.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest tests/test_app_session.py -q
"""
from __future__ import annotations

import pytest

from core.inference.server_backend import ServerBackend, ServerSettings
from tests.app_support import settle, wait_until
from tests.test_deidentify import NAME, SECRETS, RecordingServer, write_identified_series


@pytest.fixture
def make_window(qapp, tmp_path):
    from app.main_window import MainWindow
    from core.library import Library

    made = []

    def make(**kw):
        library = Library(tmp_path / "library.db")
        window = MainWindow(library=library, **kw)
        window.resize(1400, 900)
        window.show()
        made.append((window, library))
        return window

    yield make
    for window, library in made:
        window.close()
        library.close()
    settle(0.1)


def test_status_bar_names_the_local_model_and_the_window_shares_it(make_window, embedded_model, screenshot_path):
    window = make_window(model_path=embedded_model)
    wait_until(lambda: window.session.model_info is not None, 120, "the embedded model to load")
    settle(0.2)
    text = window.model_status.text()
    assert embedded_model.name in text and "no adapter" in text and "CPU" in text, text
    assert window.model_status.isVisible()
    # one model: the chat answers with it and the report dock drafts with it
    assert window.chat.backend is window.session.backend is not None
    assert window.report_editor.backend_factory() is window.session.backend
    names = [a.text() for a in window.view_menu.actions()]
    assert "Report" in names and "Models…" in names  # tools add to the window's View menu, not found by its text
    window.save_screenshot(screenshot_path("status_bar_model.png"))

    failed = []
    window.session.model_failed.connect(failed.append)
    missing = embedded_model.parent / "no-such-model.gguf"
    window.session.load_model(missing)
    wait_until(lambda: failed, 60, "the load to fail")
    assert window.model_status.text() == "Model: not loaded"
    assert "no-such-model.gguf" in window.model_status.toolTip()
    assert window.chat.backend is None and not window.chat.send_button.isEnabled()

    window.session.load_model(embedded_model)  # the status follows a reload
    wait_until(lambda: window.session.model_info is not None, 120, "the model to load again")
    assert embedded_model.name in window.model_status.text()


def test_server_in_the_status_bar_and_only_deidentified_context_sent(make_window, tmp_path, screenshot_path):
    server = RecordingServer()
    try:
        ServerSettings(enabled=True, url=server.url, timeout_s=30, n_ctx=8192).save()
        window = make_window()
        wait_until(lambda: window.session.model_info is not None, 60, "the server to answer")
        assert isinstance(window.session.backend, ServerBackend)
        host = server.url.split("//")[1].split("/")[0]
        status = window.model_status.text()
        assert f"Server {host}" in status and "spine-70b" in status and "de-identified" in status, status
        assert "de-identified" in window.chat.transcript.toPlainText()  # said before the first question

        opened = []
        window.volume_opened.connect(opened.append)
        window.import_paths([write_identified_series(tmp_path / "dicom", n_slices=8, rows=48, cols=40)],
                            open_first=True)
        wait_until(lambda: opened, 60, "the series to open")
        assert window.session.study.identifiers  # read from the header, kept in memory only
        assert window.chat.study_key == window.session.study.study_key
        assert NAME in window.chat.context.to_text()  # the local context still has the description as written

        done = []
        window.chat.answer_finished.connect(done.append)
        window.chat.ask(f"Is Mrs {NAME}'s disc at this level narrowed?")
        wait_until(lambda: done, 60, "the answer")
        assert done[0].status == "complete"
        sent = server.sent_text()
        assert server.bodies and not [s for s in SECRETS if s.lower() in sent]
        assert "sag t2" in sent and "lspine" in sent
        settle(0.2)
        window.save_screenshot(screenshot_path("status_bar_server.png"))
    finally:
        server.close()


def test_a_reload_waits_for_the_answer_in_flight(qtbot, tmp_path, embedded_model):
    """Loading runs on the same thread as generation: asking for another model mid-answer lets the answer finish
    first, then swaps the model (the old one is not unloaded under the answer)."""
    from app.chat.chat_panel import ChatPanel
    from core.consult import ConversationStore, StudyContext
    from core.inference.backend import GenerationParams

    panel = ChatPanel(store=ConversationStore(tmp_path / "library.db"), retriever=None,
                      params=GenerationParams(max_tokens=40, temperature=0.0))
    panel.grounded = False
    qtbot.addWidget(panel)
    panel.set_study("study-R", StudyContext(modality="CT", levels_in_view=["L4", "L4-L5", "L5"]))
    with qtbot.waitSignal(panel.model_loaded, timeout=120_000):
        panel.load_model(embedded_model, n_ctx=2048)
    first = panel.backend
    events = []
    panel.answer_finished.connect(lambda answer: events.append(("finished", answer.status)))
    panel.session.model_changed.connect(lambda info: events.append(("loaded", info.n_ctx)))
    with qtbot.waitSignal(panel.answer_started, timeout=60_000):
        panel.ask("What does the L4-L5 disc do?")
    panel.load_model(embedded_model, n_ctx=1024)  # while the answer streams
    assert panel.backend is None and not panel.send_button.isEnabled()
    qtbot.waitUntil(lambda: len(events) == 2, timeout=120_000)
    assert events == [("finished", "complete"), ("loaded", 1024)]
    assert panel.backend is not first and panel.backend.info().n_ctx == 1024
