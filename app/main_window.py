"""The main window: study browser (left), linked 2D/3D views (centre), study info, levels / measurements and the
consultation (right), tasks (status bar).

Long work (import, series load, 3D set-up) runs in :class:`~app.workers.TaskWorker` threads; the Cancel button
in the status bar stops it. Problems with files are listed in a dialog (path: reason) and never close the window.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QImage, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QWidget,
)

from app import library_tasks
from app.chat.chat_panel import ChatPanel
from app.levels.wiring import install_spine_tools
from app.model_status import ModelStatus
from app.session import Session
from app.state import ViewerState
from app.views.viewer_area import ViewerArea
from app.widgets.info_panel import InfoPanel
from app.widgets.study_browser import StudyBrowser
from app.workers import TaskStatus, TaskWorker
from app.xray.wiring import install_xray_tools
from core.consult import ConversationStore
from core.library import ImportReport
from core.studies.volume import Volume

APP_TITLE = "SpineMed Workstation"
IMPORT_FILE_FILTER = "Studies (*.dcm *.DCM *.nii *.nii.gz *.zip *.png *.jpg *.jpeg *.tif *.tiff);;All files (*)"
MAX_PROBLEMS_SHOWN = 30


def problem_lines(problems) -> list[str]:
    """'path: reason' for each import problem."""
    return [f"{p.path}: {p.reason}" for p in problems]


class MainWindow(QMainWindow):
    volume_opened = Signal(object)  # the Volume as loaded
    import_finished = Signal(object)  # core.library.ImportReport
    problems_shown = Signal(list)  # list[str] of "path: reason" lines

    def __init__(self, library=None, model_path: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if library is None:
            from core.library import Library

            library = Library()
        self.library = library
        self.model_path = model_path
        self.current_series: str | None = None
        self.last_problems: list[str] = []
        self.problem_dialog: QMessageBox | None = None
        self._load_worker: TaskWorker | None = None

        self.setWindowTitle(APP_TITLE)
        self.state = ViewerState(parent=self)
        # The open study and the model, shared by the chat, the report dock, the models dialog and the status bar.
        self.session = Session(self)
        self.session.image_source = lambda: (self.state.volume, self.state.labelling)  # key images, vision models
        self.model_status = ModelStatus(self.session)
        self.statusBar().addPermanentWidget(self.model_status)
        self.task_status = TaskStatus()
        self.statusBar().addPermanentWidget(self.task_status)
        self.viewer = ViewerArea(self.state, track=self.task_status.track)
        self.setCentralWidget(self.viewer)

        self.browser = StudyBrowser()
        self.browser.series_activated.connect(self.open_series)
        self.browser_dock = self._add_dock("Studies", self.browser, Qt.LeftDockWidgetArea)
        self.info_panel = InfoPanel()
        # Further side panels (levels, chat) stack below the info panel in this splitter.
        self.side_splitter = QSplitter(Qt.Vertical)
        self.side_splitter.addWidget(self.info_panel)
        self.side_dock = self._add_dock("Study", self.side_splitter, Qt.RightDockWidgetArea)
        # The consultation shares the library's database file (conversations are kept per study).
        self.chat = ChatPanel(store=ConversationStore(self.library.path), session=self.session)
        self.add_side_panel(self.chat)
        self.side_splitter.setStretchFactor(0, 0)
        self.side_splitter.setStretchFactor(1, 1)
        self.session.load_model(model_path)

        self._make_actions()
        self.spine = install_spine_tools(self)  # level labels, measurements, their panels and the chat link
        self.xray = install_xray_tools(self, self.spine)  # radiograph landmarks and Cobb angles
        from app.report.report_dock import install_report_dock

        self.report_editor = install_report_dock(self)  # the "Report" dock, tabbed with the study panel
        self.state.window_level_changed.connect(lambda _w, _l: self._sync_wl_combo())
        self.refresh_library()
        self.statusBar().showMessage("Ready")

    # -- layout ---------------------------------------------------------------------------------------------
    def _add_dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def add_side_panel(self, widget: QWidget) -> None:
        """Add a panel (e.g. spine levels, chat) under the study info on the right."""
        self.side_splitter.addWidget(widget)

    def _make_actions(self) -> None:
        self.import_folder_action = QAction("Import folder…", self, shortcut=QKeySequence("Ctrl+O"))
        self.import_folder_action.triggered.connect(self._ask_import_folder)
        self.import_file_action = QAction("Import file or zip…", self, shortcut=QKeySequence("Ctrl+Shift+O"))
        self.import_file_action.triggered.connect(self._ask_import_file)
        self.screenshot_action = QAction("Save screenshot…", self)
        self.screenshot_action.triggered.connect(self._ask_screenshot)
        quit_action = QAction("Quit", self, shortcut=QKeySequence.Quit)
        quit_action.triggered.connect(self.close)
        self.browser.set_import_actions([self.import_folder_action, self.import_file_action])

        file_menu = self.menuBar().addMenu("&File")
        for action in (self.import_folder_action, self.import_file_action, self.screenshot_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)

        toolbar = self.addToolBar("View")
        toolbar.setObjectName("toolbar_view")
        toolbar.addAction(self.import_folder_action)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Window: "))
        self.wl_combo = QComboBox()
        for preset in self.state.presets.presets:
            self.wl_combo.addItem(preset.label, preset.name)
            self.wl_combo.setItemData(self.wl_combo.count() - 1, preset.description, Qt.ToolTipRole)
        self.wl_combo.addItem("Custom", "")
        self.wl_combo.activated.connect(self._on_wl_combo)
        toolbar.addWidget(self.wl_combo)
        self.wl_tool_action = QAction("W/L drag", self, checkable=True)
        self.wl_tool_action.setToolTip("Left drag changes window/level (otherwise Shift+left drag)")
        self.wl_tool_action.toggled.connect(self.viewer.set_wl_tool)
        toolbar.addAction(self.wl_tool_action)
        reset_action = QAction("Reset views", self)
        reset_action.triggered.connect(self.viewer.reset_views)
        toolbar.addAction(reset_action)

        view_menu = self.view_menu = self.menuBar().addMenu("&View")  # tools add their entries here
        view_menu.addAction(self.wl_tool_action)
        view_menu.addAction(reset_action)
        view_menu.addAction(self.browser_dock.toggleViewAction())
        view_menu.addAction(self.side_dock.toggleViewAction())
        view_menu.addSeparator()
        self.curation_review_action = QAction("Curation review…", self)
        self.curation_review_action.setToolTip("Review curated training items (accept / edit / reject)")
        self.curation_review_action.triggered.connect(self._ask_curation_review)
        view_menu.addAction(self.curation_review_action)
        self.review_windows: list[QWidget] = []
        from app.models_dialog import install_models_action

        install_models_action(self, view_menu)  # "Models…": add, remove, choose the GGUF model

    # -- window / level -------------------------------------------------------------------------------------
    def _on_wl_combo(self, index: int) -> None:
        name = self.wl_combo.itemData(index)
        if name:
            self.state.apply_wl_preset(name)

    def _sync_wl_combo(self) -> None:
        index = self.wl_combo.findData(self.state.wl_preset or "")
        self.wl_combo.setCurrentIndex(index)

    # -- library --------------------------------------------------------------------------------------------
    def refresh_library(self) -> None:
        try:
            self.browser.refresh(self.library)
        except Exception as exc:  # noqa: BLE001 - a broken library must not stop the viewer
            self.statusBar().showMessage(f"Could not read the study library: {exc}")
        if self.current_series:
            self.browser.select_series(self.current_series)
            self._start_consultation(self.current_series)

    def import_paths(self, paths: list[Path], open_first: bool = False) -> TaskWorker:
        """Import folders/files/zips in a worker; then refresh the browser and optionally open the first series."""
        paths = [Path(p) for p in paths]
        names = ", ".join(p.name for p in paths[:3]) + ("…" if len(paths) > 3 else "")
        worker = TaskWorker(library_tasks.import_paths, self.library, paths, description=f"Importing {names}")
        worker.finished.connect(lambda summary: self._on_imported(summary, open_first))
        worker.failed.connect(self._on_task_failed)
        worker.cancelled.connect(lambda: self._on_cancelled("Import"))
        self.task_status.track(worker)
        return worker.start()

    def _on_imported(self, summary: ImportReport, open_first: bool) -> None:
        self.refresh_library()
        self.statusBar().showMessage("Imported: " + summary.summary())
        if summary.problems:
            self.show_problems("Some files could not be imported", problem_lines(summary.problems))
        self.import_finished.emit(summary)
        if open_first and summary.series:
            self.open_series(summary.series[0])

    def _ask_import_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a folder of studies")
        if folder:
            self.import_paths([Path(folder)])

    def _ask_import_file(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Import files or a zip", "", IMPORT_FILE_FILTER)
        if files:
            self.import_paths([Path(f) for f in files])

    # -- opening a series -----------------------------------------------------------------------------------
    def open_series(self, series_uid: str) -> TaskWorker:
        """Load a library series in a worker, replacing any load still running."""
        if self._load_worker is not None and self._load_worker.is_running:
            self._load_worker.cancel()
        worker = TaskWorker(library_tasks.load_series, self.library, series_uid, description="Loading series")
        worker.finished.connect(lambda loaded: self.show_volume(loaded.volume, loaded.series_uid, loaded.display))
        worker.failed.connect(self._on_task_failed)
        worker.cancelled.connect(lambda: self._on_cancelled("Loading"))
        self._load_worker = worker
        self.task_status.track(worker)
        return worker.start()

    def show_volume(self, volume: Volume, series_uid: str | None = None, display: Volume | None = None) -> None:
        """Show a loaded volume in all views; ``display`` is its precomputed LPS-canonical form, if any."""
        self.current_series = series_uid or volume.series_uid or None
        self.state.set_volume(volume, display)
        self.spine.open_series(self.current_series)
        self.info_panel.set_volume(volume)
        if self.current_series:
            self.browser.select_series(self.current_series)
            self._start_consultation(self.current_series)
        title = volume.series_description or volume.modality
        self.setWindowTitle(f"{APP_TITLE} — {title}")
        kind = "image" if volume.is_2d else "volume " + "×".join(str(n) for n in volume.shape)
        self.statusBar().showMessage(f"Opened {volume.modality} {kind}")
        self.volume_opened.emit(volume)
        if volume.warnings:  # e.g. images that could not be read, shown blank like missing slices
            self.show_problems(f"Opened {title} with problems", volume.warnings)

    def _start_consultation(self, series_uid: str) -> None:
        try:
            source = self.library.source(series_uid)
        except KeyError:
            return
        self.session.open_study(series_uid, source)  # the chat follows (study_changed)
        self.spine.chat_link.push_context()

    # -- errors ---------------------------------------------------------------------------------------------
    def _on_task_failed(self, message: str) -> None:
        self.show_problems("A task failed", [message])

    def _on_cancelled(self, what: str) -> None:
        self.statusBar().showMessage(f"{what} cancelled")

    def show_problems(self, title: str, lines: list[str]) -> None:
        """Non-modal dialog listing each problem; the window stays usable."""
        self.last_problems = list(lines)
        shown = lines[:MAX_PROBLEMS_SHOWN]
        more = len(lines) - len(shown)
        text = "\n".join(shown) + (f"\n… and {more} more" if more > 0 else "")
        self.statusBar().showMessage(f"{title}: {lines[0]}" if len(lines) == 1 else f"{title} ({len(lines)})")
        if self.problem_dialog is None:
            self.problem_dialog = QMessageBox(self)
            self.problem_dialog.setIcon(QMessageBox.Warning)
            self.problem_dialog.setWindowModality(Qt.NonModal)
        self.problem_dialog.setWindowTitle(title)
        self.problem_dialog.setText(title)
        self.problem_dialog.setInformativeText(text)
        self.problem_dialog.show()
        self.problems_shown.emit(list(lines))

    # -- screenshots ----------------------------------------------------------------------------------------
    def grab_window_image(self) -> QImage:
        """The whole window as shown on screen; the 3D part is re-captured from VTK (a window grab can miss GL)."""
        screen = self.screen()
        image = screen.grabWindow(self.winId()).toImage().convertToFormat(QImage.Format_RGB32)
        vv = self.viewer.volume_view
        if vv.isVisible() and vv.prepared is not None:
            pixels = vv.capture_array()
            h, w, _ = pixels.shape
            vtk_image = QImage(pixels.tobytes(), w, h, 3 * w, QImage.Format_RGB888).copy()
            top_left = vv.vtk_widget.mapTo(self, vv.vtk_widget.rect().topLeft())
            ratio = image.width() / max(1, self.width())
            painter = QPainter(image)
            painter.drawImage(
                top_left.x() * ratio, top_left.y() * ratio,
                vtk_image.scaled(int(vv.vtk_widget.width() * ratio), int(vv.vtk_widget.height() * ratio)),
            )
            painter.end()
        return image

    def save_screenshot(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.grab_window_image().save(str(path))
        return path

    def open_curation_review(self, store_path: Path | str) -> QWidget:
        """Open the curation review pane on ``store_path`` in its own window."""
        from app.curation_review import open_review_window

        pane = open_review_window(store_path)
        self.review_windows.append(pane)
        pane.destroyed.connect(lambda _obj=None, p=pane: self.review_windows.remove(p) if p in self.review_windows
                               else None)
        return pane

    def _ask_curation_review(self) -> None:
        """Ask for a curation store: build/curation/curation.db when present, else the CLI's default store."""
        from core.paths import REPO_ROOT
        from curation.cli import default_db

        candidates = [REPO_ROOT / "build" / "curation" / "curation.db", default_db()]
        start = next((c for c in candidates if c.is_file()), candidates[0].parent)
        path, _ = QFileDialog.getOpenFileName(self, "Open curation store", str(start),
                                              "Curation store (*.db *.sqlite);;All files (*)")
        if path:
            self.open_curation_review(path)

    def _ask_screenshot(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", "spinemed.png", "PNG (*.png)")
        if path:
            self.save_screenshot(path)
            self.statusBar().showMessage(f"Saved {path}")

    # -- shutdown -------------------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        self.task_status.cancel_all()
        self.viewer.volume_view.shutdown()
        self.chat.shutdown()
        self.session.shutdown()
        super().closeEvent(event)
