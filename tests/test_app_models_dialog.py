"""The Models dialog (real Qt under Xvfb): header facts and memory fit of the embedded model, a truncated file refused
with its reason, a copy added in a worker, chosen (persisted, signal to the chat) and removed; reached from the menu."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from app.models_dialog import ModelsDialog
from core.inference.model_store import ModelStore
from core.inference.registry import ModelRegistry
from tests.app_support import settle, wait_until


@pytest.fixture
def dialog(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINEMED_HOME", str(tmp_path / "home"))
    QApplication.instance() or QApplication([])
    store = ModelStore(tmp_path / "home" / "models", ModelRegistry(tmp_path / "home" / "models.json"))
    d = ModelsDialog(store)
    d.show()
    yield d
    d.close()
    settle(0.05)


def _items(d: ModelsDialog) -> list[str]:
    return [d.list.item(i).text() for i in range(d.list.count())]


def test_facts_and_memory_of_the_embedded_model(dialog, embedded_model):
    dialog.refresh(select=embedded_model)
    html = dialog.facts.toPlainText()
    assert embedded_model.name in html
    assert "Q4_1" in html and "llama" in html and "8192" in html
    assert "memory needed" in html and "GPU layers that fit" in html and "RAM" in html
    assert "Refused" not in html


def test_truncated_file_refused_with_the_reason(dialog, embedded_model, tmp_path):
    cut = tmp_path / "usb" / "big-model-Q4_K_M.gguf"
    cut.parent.mkdir()
    cut.write_bytes(embedded_model.read_bytes()[:4_000_000])
    assert dialog.add_file(cut) is None
    assert "truncated GGUF file" in dialog.facts.toPlainText() and "Refused" in dialog.facts.toPlainText()
    assert dialog.status.text().startswith("Not added:")
    assert not (dialog.store.models_dir / cut.name).exists()


def test_add_use_remove(dialog, embedded_model, tmp_path):
    src = tmp_path / "usb" / "my-model.gguf"
    src.parent.mkdir()
    src.write_bytes(embedded_model.read_bytes())
    chosen = []
    dialog.model_chosen.connect(chosen.append)
    worker = dialog.add_file(src)
    assert worker is not None
    wait_until(lambda: not worker.is_running, timeout=120, what="the copy")
    settle(0.1)
    assert worker.state == "finished", worker.error
    target = dialog.store.models_dir / "my-model.gguf"
    assert target.is_file() and any("my-model" in t for t in _items(dialog))
    assert dialog.status.text().startswith("Added my-model.gguf (copied, sha256")
    dialog.use(target)
    assert chosen == [target.resolve()]
    assert ModelRegistry(dialog.store.registry.settings_path).selected() == target.resolve()
    assert any(t.startswith("● my-model") for t in _items(dialog))
    dialog.remove(target)
    assert not target.exists() and not any("my-model" in t for t in _items(dialog))


def test_reached_from_the_menu(tmp_path, monkeypatch):
    from app.main_window import MainWindow
    from core.library import Library

    monkeypatch.setenv("SPINEMED_HOME", str(tmp_path / "home"))
    QApplication.instance() or QApplication([])
    library = Library(tmp_path / "library.db")
    window = MainWindow(library=library)
    try:
        assert window.models_action.text() == "Models…"
        assert window.models_action in [a for m in window.menuBar().actions() for a in m.menu().actions()]
        window.models_action.trigger()
        settle(0.1)
        assert window.models_dialog.isVisible() and window.models_dialog.windowTitle() == "Models"
        window.models_dialog.close()
    finally:
        window.close()
        library.close()
        settle(0.1)


def test_screenshot(tmp_path):
    from app.models_dialog import capture_models_dialog

    QApplication.instance() or QApplication([])
    out = capture_models_dialog(tmp_path / "models.png", refused=True)
    assert out.is_file() and out.stat().st_size > 10_000
    assert isinstance(out, Path)


def test_server_tab_saves_refuses_and_tests(dialog):
    import http.server
    import json
    import threading

    from core.inference.server_backend import ServerSettings

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"data": [{"id": "dept-model", "max_model_len": 16384}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        panel = dialog.server_panel
        assert dialog.tabs.tabText(1) == "Department server" and not panel.enabled.isChecked()
        panel.url.setText("http://8.8.8.8:8000/v1")
        panel.enabled.setChecked(True)
        assert not panel.save() and "public address" in panel.result.text()
        assert not ServerSettings.load().enabled
        panel.url.setText(f"http://127.0.0.1:{httpd.server_address[1]}/v1")
        assert panel.save()
        assert ServerSettings.load().enabled and ServerSettings.load().url == panel.url.text()
        worker = panel.test_connection()
        wait_until(lambda: not worker.is_running, timeout=30, what="the connection test")
        settle(0.1)
        assert panel.result.text() == "Reachable: model dept-model, context 16384 tokens."
    finally:
        httpd.shutdown()
        httpd.server_close()
    worker = panel.test_connection()  # the server is gone now
    wait_until(lambda: not worker.is_running, timeout=30, what="the connection test")
    settle(0.1)
    assert panel.result.text().startswith("Not reachable: the model server does not answer")
