"""The Models dialog: the local GGUF models, what each is (header facts), whether it runs on this machine (memory
needed against RAM/VRAM, GPU layers that fit), and add (copy or link, sha256 checked, in a worker with progress and
Cancel) / remove / use. A refused file shows why. A second tab holds the department server's settings (off by
default) with a connection test. The core work is core.inference.model_store and core.inference.server_backend."""
from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.workers import TaskWorker
from core.inference.model_store import ModelCheck, ModelStore, ModelStoreError
from core.inference.server_backend import ServerBackend, ServerSettings, check_server_address

_PATH_ROLE = Qt.UserRole + 1


class ModelsDialog(QDialog):
    model_chosen = Signal(object)  # Path of the model chosen with "Use"

    def __init__(self, store: ModelStore | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(1000, 560)
        self.store = store or ModelStore()
        self.worker: TaskWorker | None = None
        self.last_check: ModelCheck | None = None

        self.list = QListWidget()
        self.list.currentItemChanged.connect(self._on_current)
        self.facts = QTextBrowser()
        self.facts.setOpenLinks(False)
        split = QSplitter()
        split.addWidget(self.list)
        split.addWidget(self.facts)
        split.setSizes([380, 620])

        self.add_button = QPushButton("Add from file…")
        self.add_button.setToolTip("Copy a GGUF model (from a folder or a USB stick) into the models folder; its "
                                   "sha256 is checked after the copy and its header validated first")
        self.add_button.clicked.connect(self._ask_add)
        self.link_box = QCheckBox("Link instead of copying")
        self.link_box.setToolTip("Keep the file where it is (it must stay reachable there)")
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self._remove)
        self.use_button = QPushButton("Use this model")
        self.use_button.clicked.connect(self._use)
        self.cancel_button = QPushButton("Cancel copy")
        self.cancel_button.clicked.connect(self._cancel)
        self.cancel_button.hide()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.status = QLabel()
        self.status.setWordWrap(True)

        buttons = QHBoxLayout()
        for w in (self.add_button, self.link_box, self.remove_button, self.use_button):
            buttons.addWidget(w)
        buttons.addStretch(1)
        buttons.addWidget(self.progress)
        buttons.addWidget(self.cancel_button)
        local = QWidget()
        layout = QVBoxLayout(local)
        layout.addWidget(split, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.tabs = QTabWidget()
        self.tabs.addTab(local, "Local models")
        self.server_panel = ServerPanel(self)
        self.tabs.addTab(self.server_panel, "Department server")
        QVBoxLayout(self).addWidget(self.tabs)
        self.refresh()

    # --- list -----------------------------------------------------------------------------------------------------
    def refresh(self, select: Path | None = None) -> None:
        in_use = self.store.registry.selected()
        in_use = in_use.resolve() if in_use else None
        self.list.clear()
        for entry in self.store.registry.list_models():
            meta = entry.metadata
            if meta is not None and meta.kind != "model":
                continue  # adapters and projectors are shown with their model, not as choices
            mark = "● " if in_use is not None and entry.path.resolve() == in_use else ""
            what = f"{meta.architecture}, {meta.parameter_label()}, {meta.quantization}" if meta else "unusable"
            item = QListWidgetItem(f"{mark}{entry.name}\n    {what} · {entry.source}")
            item.setData(_PATH_ROLE, str(entry.path))
            if meta is None:
                item.setForeground(Qt.darkRed)
                item.setToolTip(entry.error)
            self.list.addItem(item)
            if select is not None and entry.path.resolve() == Path(select).resolve():
                self.list.setCurrentItem(item)
        if self.list.currentItem() is None and self.list.count():
            self.list.setCurrentRow(0)
        self.status.setText(f"Model in use: {in_use.name if in_use else 'none'} · models folder: "
                            f"{self.store.models_dir}")

    def current_path(self) -> Path | None:
        item = self.list.currentItem()
        return Path(item.data(_PATH_ROLE)) if item is not None else None

    def _on_current(self, item: QListWidgetItem | None, _previous=None) -> None:
        if item is None:
            self.facts.clear()
            return
        path = Path(item.data(_PATH_ROLE))
        if path.is_dir():
            self.facts.setHtml(f"<h3>{html.escape(path.name)}</h3><p>A Hugging Face model folder (runs with the "
                               "transformers backend); header facts are shown for GGUF files only.</p>")
            return
        self.show_check(self.store.inspect(path, find_mmproj=True))
        in_models_folder = path.parent.resolve() == self.store.models_dir.resolve()
        self.remove_button.setEnabled(in_models_folder)
        self.remove_button.setToolTip("" if in_models_folder else "only models in the models folder can be removed "
                                      "here; this one was found elsewhere")

    # --- facts ----------------------------------------------------------------------------------------------------
    def show_check(self, check: ModelCheck) -> None:
        """Header facts, memory fit, warnings and (in red) why the file is refused."""
        self.last_check = check
        parts = [f"<h3>{html.escape(check.path.name)}</h3>"]
        if check.problems:
            parts.append("<p style='color:#a11'><b>Refused:</b><br>" +
                         "<br>".join(html.escape(p) for p in check.problems) + "</p>")
        facts = check.facts()
        fit = check.fit
        if facts:
            rows = []
            for key, value in facts.items():
                if key == "memory":
                    continue
                rows.append(f"<tr><td><b>{html.escape(key)}</b></td><td>{html.escape(value)}</td></tr>")
            parts.append("<table cellspacing=4>" + "".join(rows) + "</table>")
        if fit is not None:
            ram, vram = fit.ram_bytes / 2**30, (fit.vram_bytes or 0) / 2**30
            ok = "#161" if fit.fits else "#a11"
            parts.append(
                "<h4>This machine</h4><table cellspacing=4>"
                f"<tr><td><b>memory needed</b></td><td style='color:{ok}'>{fit.needed_bytes / 2**30:.2f} GiB at "
                f"context {fit.n_ctx} (weights {fit.weights_bytes / 2**30:.2f} GiB, KV cache "
                f"{fit.kv_cache_bytes / 2**30:.2f} GiB)</td></tr>"
                f"<tr><td><b>RAM</b></td><td>{ram:.1f} GiB"
                + (f" ({fit.available_ram_bytes / 2**30:.1f} GiB free)" if fit.available_ram_bytes else "")
                + "</td></tr>"
                f"<tr><td><b>GPU</b></td><td>{f'{vram:.1f} GiB VRAM' if fit.vram_bytes else 'none found'}</td></tr>"
                f"<tr><td><b>GPU layers that fit</b></td><td>{fit.gpu_layers} of {fit.n_layers}"
                + (" (all)" if fit.all_on_gpu else "") + "</td></tr></table>")
        if check.warnings:
            parts.append("<p style='color:#850'>" + "<br>".join(html.escape(w) for w in check.warnings) + "</p>")
        parts.append("<p style='color:#666'>Answers are decision support for clinicians, whichever model runs.</p>")
        self.facts.setHtml("".join(parts))

    # --- actions --------------------------------------------------------------------------------------------------
    def _ask_add(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a GGUF model", str(Path.home()), "GGUF models (*.gguf)")
        if path:
            self.add_file(Path(path), link=self.link_box.isChecked())

    def add_file(self, path: Path, link: bool = False, mmproj: Path | None = None) -> TaskWorker | None:
        """Check ``path`` (shown at once; refused files stop here), then copy or link it in a worker."""
        check = self.store.inspect(path, mmproj)
        self.list.clearSelection()
        self.show_check(check)
        if not check.ok:
            self.status.setText(f"Not added: {check.problems[0]}")
            return None
        self.worker = TaskWorker(self.store.add, path, link=link, mmproj=mmproj, description=f"adding {path.name}")
        self.worker.progress.connect(self._on_progress)
        self.worker.finished.connect(self._on_added)
        self.worker.failed.connect(self._on_add_failed)
        self.worker.cancelled.connect(lambda: self._on_add_failed("copy cancelled; nothing was added"))
        self.worker.done.connect(self._add_done)
        self._busy(True)
        self.worker.start()
        return self.worker

    def _busy(self, busy: bool) -> None:
        for w in (self.add_button, self.remove_button, self.use_button, self.link_box):
            w.setEnabled(not busy)
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.progress.setValue(0)

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.status.setText(message)

    def _on_added(self, added) -> None:
        self.refresh(select=added.path)
        self.status.setText(f"Added {added.path.name} ({'linked' if added.linked else 'copied'}, sha256 "
                            f"{added.sha256[:16]}…)" + (f" with its projector {added.mmproj.name}" if added.mmproj
                                                         else ""))

    def _on_add_failed(self, message: str) -> None:
        self.status.setText(f"Not added: {message}")

    def _add_done(self) -> None:
        self._busy(False)

    def _cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def _remove(self) -> None:
        path = self.current_path()
        if path is None:
            return
        answer = QMessageBox.question(self, "Remove model", f"Delete {path.name} from the models folder?")
        if answer != QMessageBox.Yes:
            return
        self.remove(path)

    def remove(self, path: Path) -> None:
        try:
            self.store.remove(path.name)
        except ModelStoreError as exc:
            self.status.setText(str(exc))
            return
        self.refresh()
        self.status.setText(f"Removed {path.name}")

    def _use(self) -> None:
        path = self.current_path()
        if path is not None:
            self.use(path)

    def use(self, path: Path) -> None:
        try:
            chosen = self.store.use(str(path))
        except ModelStoreError as exc:
            self.status.setText(f"Not used: {exc}")
            return
        self.refresh(select=chosen)
        self.status.setText(f"Model in use from now on: {chosen.name}")
        self.model_chosen.emit(chosen)


class ServerPanel(QWidget):
    """The department server's settings (saved to server.json) and a connection test in a worker."""

    def __init__(self, parent: QWidget | None = None, settings_path: Path | None = None) -> None:
        super().__init__(parent)
        self.settings_path = settings_path
        s = ServerSettings.load(settings_path)
        self.enabled = QCheckBox("Answer consultations and reports with the department's server")
        self.enabled.setChecked(s.enabled)
        self.url = QLineEdit(s.url)
        self.url.setPlaceholderText("http://10.1.2.3:8000/v1")
        self.model = QLineEdit(s.model)
        self.model.setPlaceholderText("the first model the server lists")
        self.token = QLineEdit(s.api_key)
        self.token.setEchoMode(QLineEdit.Password)
        self.ca_file = QLineEdit(s.ca_file)
        self.ca_file.setPlaceholderText("the system's certificates")
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1, 3600)
        self.timeout.setValue(s.timeout_s)
        self.timeout.setSuffix(" s")
        self.vision = QCheckBox("The served model takes images")
        self.vision.setChecked(s.vision)
        self._n_ctx = s.n_ctx
        form = QFormLayout()
        form.addRow(self.enabled)
        form.addRow("Server URL", self.url)
        form.addRow("Model", self.model)
        form.addRow("Token", self.token)
        form.addRow("CA certificate (PEM)", self.ca_file)
        form.addRow("Timeout", self.timeout)
        form.addRow(self.vision)
        note = QLabel("Study data goes only to this machine or the hospital network (loopback and private addresses; "
                      "public addresses are refused), over TLS when the URL is https, never following redirects. What is "
                      "sent: only de-identified study context with the question (modality, series, levels, "
                      "measurements, age and sex; study and series descriptions with names, dates and record "
                      "numbers removed), never the patient's name, ID or birth date. Answers say which server they "
                      "come from, and are decision support for clinicians.")
        note.setWordWrap(True)
        note.setStyleSheet("color:#555;")
        self.save_button = QPushButton("Save")
        self.save_button.clicked.connect(self.save)
        self.test_button = QPushButton("Test connection")
        self.test_button.clicked.connect(self.test_connection)
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextSelectableByMouse)
        row = QHBoxLayout()
        row.addWidget(self.save_button)
        row.addWidget(self.test_button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addLayout(row)
        layout.addWidget(self.result)
        layout.addStretch(1)
        self.worker: TaskWorker | None = None

    def settings(self) -> ServerSettings:
        return ServerSettings(enabled=self.enabled.isChecked(), url=self.url.text().strip(),
                              model=self.model.text().strip(), api_key=self.token.text().strip(),
                              ca_file=self.ca_file.text().strip(), timeout_s=self.timeout.value(), n_ctx=self._n_ctx,
                              vision=self.vision.isChecked())

    def save(self) -> bool:
        s = self.settings()
        if s.enabled and not s.url:
            self.result.setText("Not saved: name the server's URL first.")
            return False
        if s.url:
            try:
                check_server_address(s.url)
            except Exception as exc:  # noqa: BLE001 - any refusal is shown, never raised
                self.result.setText(f"Not saved: {exc}")
                return False
        s.save(self.settings_path)
        self.result.setText("Saved: " + ("the server answers from the next consultation." if s.enabled
                                         else "the local model answers."))
        return True

    def test_connection(self) -> TaskWorker | None:
        s = self.settings()
        if not s.url:
            self.result.setText("Name the server's URL first.")
            return None

        def probe(progress=None, cancel=None):
            return ServerBackend(s).load()

        self.worker = TaskWorker(probe)
        self.worker.finished.connect(lambda info: self.result.setText(
            f"Reachable: model {info.model_name}, context {info.n_ctx} tokens."))
        self.worker.failed.connect(lambda message: self.result.setText(f"Not reachable: {message}"))
        self.worker.done.connect(lambda: self.test_button.setEnabled(True))
        self.test_button.setEnabled(False)
        self.result.setText("Testing…")
        self.worker.start()
        return self.worker


def install_models_action(window, menu) -> None:
    """A "Models…" entry in ``menu``; choosing a model there loads it in the window's session."""
    from PySide6.QtGui import QAction

    action = QAction("Models…", window)
    action.setToolTip("Add, remove and choose the GGUF model; memory it needs and GPU layers that fit")

    def open_dialog() -> None:
        dialog = ModelsDialog(parent=window)
        session = getattr(window, "session", None)
        if session is not None:
            dialog.model_chosen.connect(lambda path: session.load_model(path))
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.show()
        window.models_dialog = dialog

    action.triggered.connect(open_dialog)
    menu.addAction(action)
    window.models_action = action


def capture_models_dialog(out: Path, refused: bool = False, server: bool = False) -> Path:
    """Screenshot of the dialog in a throw-away data folder holding a copy of the embedded model, in use; with
    ``refused``, the dialog after trying to add a truncated copy of it (the reason shown); with ``server``, the
    department server tab with an example address typed in (not saved, not contacted)."""
    import os
    import sys
    import tempfile
    import time

    from PySide6.QtWidgets import QApplication

    from core.inference.default_model import find_default_model

    app = QApplication.instance() or QApplication(sys.argv[:1])
    model = find_default_model()
    if model is None:
        raise SystemExit("embedded model missing: run scripts/setup.sh")
    with tempfile.TemporaryDirectory(prefix="spinemed-models-shot-") as home:
        os.environ["SPINEMED_HOME"] = home
        store = ModelStore(Path(home) / "models")
        added = store.add(model, link=True)
        store.use(added.name)
        dialog = ModelsDialog(store)
        dialog.refresh(select=added.path)
        if refused:
            cut = Path(home) / "usb" / "SmolLM2-135M-Instruct.interrupted-copy.gguf"
            cut.parent.mkdir()
            cut.write_bytes(model.read_bytes()[: model.stat().st_size // 3])
            dialog.add_file(cut)
        if server:
            dialog.tabs.setCurrentIndex(1)
            dialog.server_panel.url.setText("https://llm.radiology.hospital.lan/v1")
            dialog.server_panel.model.setText("qwen2.5-vl-7b-instruct")
        dialog.show()
        end = time.monotonic() + 0.8
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        out.parent.mkdir(parents=True, exist_ok=True)
        dialog.grab().save(str(out))
        dialog.close()
    return out
