"""Puts the levels and measurement tools into the main window: one undo stack, the 2D layers, the 3D markers, the
Levels / Measurements tabs under the study info, Edit > Undo / Redo, and the chat link."""
from __future__ import annotations

import getpass
from dataclasses import dataclass

from PySide6.QtGui import QKeySequence, QShortcut, QUndoStack
from PySide6.QtWidgets import QTabWidget

from app.levels.actors_3d import LevelActors3D
from app.levels.chat_link import ChatLink
from app.levels.controller import LevelsController
from app.levels.layer_2d import LevelLayer
from app.levels.panel import LevelsPanel
from app.measure.layer_2d import MeasureLayer
from app.measure.model import MeasurementsModel
from app.measure.panel import MeasurementsPanel
from core.spine.measure.store import MeasurementStore
from core.spine.store import LevelStore


def _user() -> str:
    try:
        return getpass.getuser() or "user"
    except Exception:  # noqa: BLE001 - no login name (e.g. in a container): any name will do
        return "user"


@dataclass
class SpineTools:
    undo_stack: QUndoStack
    controller: LevelsController
    layer: LevelLayer
    actors: LevelActors3D
    panel: LevelsPanel
    measurements: MeasurementsModel
    measure_layer: MeasureLayer
    measure_panel: MeasurementsPanel
    chat_link: ChatLink
    tabs: QTabWidget

    def open_series(self, series_uid: str | None) -> None:
        """Show the stored levels and measurements of the series just opened."""
        self.controller.open_series(series_uid)
        self.measurements.open_series(series_uid)
        self.chat_link.push_context()


def install_spine_tools(window) -> SpineTools:
    user = _user()
    state, viewer = window.state, window.viewer
    undo = QUndoStack(window)
    controller = LevelsController(state, LevelStore(window.library.db), undo, user=user, parent=window)
    measurements = MeasurementsModel(state, MeasurementStore(window.library.db), undo, user=user, parent=window)
    layer = LevelLayer(controller)
    measure_layer = MeasureLayer(measurements, user=user)
    views = list(viewer.slice_views.values())
    layer.attach(views)
    measure_layer.attach(views)  # after the labels: measurement clicks are offered first
    actors = LevelActors3D(viewer.volume_view, controller)
    panel = LevelsPanel(controller, track=window.task_status.track)
    measure_panel = MeasurementsPanel(measurements, measure_layer, track=window.task_status.track)
    tabs = QTabWidget()
    tabs.addTab(panel, "Levels")
    tabs.addTab(measure_panel, "Measurements")
    window.side_splitter.insertWidget(1, tabs)
    chat_link = ChatLink(window.chat, controller, lambda: measurements.measurements, parent=window)
    measurements.changed.connect(chat_link.push_context)

    for signal in (controller.message, controller.save_failed, measurements.save_failed):
        signal.connect(lambda text: window.statusBar().showMessage(text, 8000))
    measure_layer.prompt.connect(lambda text: window.statusBar().showMessage(text))  # what to click next
    edit_menu = window.menuBar().addMenu("&Edit")
    window.menuBar().insertMenu(window.view_menu.menuAction(), edit_menu)  # File, Edit, View
    undo_action = undo.createUndoAction(window, "Undo")
    undo_action.setShortcut(QKeySequence.Undo)
    redo_action = undo.createRedoAction(window, "Redo")
    redo_action.setShortcut(QKeySequence.Redo)
    edit_menu.addAction(undo_action)
    edit_menu.addAction(redo_action)
    QShortcut(QKeySequence("Escape"), viewer, activated=measure_layer.cancel)
    return SpineTools(undo, controller, layer, actors, panel, measurements, measure_layer, measure_panel, chat_link,
                      tabs)
