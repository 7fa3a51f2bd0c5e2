"""The hook that puts the report editor into the main window: a "Report" dock tabbed with the study panel.

    install_report_dock(main_window)        # one call from MainWindow.__init__

It follows the window: a newly opened series shows its latest report (or none), with the study context, the stored
measurements and the current labelling (the viewer's, else the one stored for the series); clicking a level row
moves the viewer there (through the levels controller when there is one, else to the level position recorded in
the report) and selects the level in the chat panel. Drafting uses the session's model (app/session.py).
"""
from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QDockWidget

from app.report.report_editor import ReportEditor
from core.consult import StudyContext
from core.report import ReportStore
from core.report.study import stored_labelling, stored_measurements

log = logging.getLogger(__name__)


def install_report_dock(window: Any) -> ReportEditor:
    store = ReportStore(window.library.path)
    session = window.session
    editor = ReportEditor(store=store, backend_factory=lambda: session.backend, track=window.task_status.track)
    dock = QDockWidget("Report", window)
    dock.setObjectName("dock_report")
    dock.setWidget(editor)
    dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
    window.addDockWidget(Qt.RightDockWidgetArea, dock)
    window.tabifyDockWidget(window.side_dock, dock)
    window.side_dock.raise_()
    window.view_menu.addAction(dock.toggleViewAction())
    window.report_dock = dock
    window.volume_opened.connect(lambda volume: show_series(window, editor, volume))
    editor.level_selected.connect(lambda level: go_to_level(window, editor, level))
    labelling_changed = getattr(window.state, "labelling_changed", None)
    if labelling_changed is not None:
        labelling_changed.connect(lambda lab: editor.set_labelling(lab) if lab is not None else None)
    app = QApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(editor.shutdown)
    return editor


def show_series(window: Any, editor: ReportEditor, volume: Any) -> None:
    uid = window.current_series or volume.series_uid
    context, key = StudyContext(modality=volume.modality, series=[volume.series_description or volume.modality]), ""
    try:
        source = window.library.source(uid)
        context = StudyContext.from_series_source(source)
        key = source.study_key
    except KeyError:
        pass
    context.measurements = stored_measurements(uid, window.library.db)
    labelling = getattr(window.state, "labelling", None) or stored_labelling(uid, window.library.db)
    editor.set_study(uid, context, labelling=labelling, volume=volume, study_key=key)


def go_to_level(window: Any, editor: ReportEditor, level: str) -> bool:
    """Show ``level`` in the viewer; True when the viewer moved."""
    chat = getattr(window, "chat", None)
    if chat is not None:
        chat.set_selected_level(level)
    controller = getattr(getattr(window, "spine", None), "controller", None)  # app.levels, when installed
    if controller is not None and hasattr(controller, "go_to_level"):
        try:
            if controller.go_to_level(level):
                return True
        except Exception as exc:  # noqa: BLE001 - fall back to the level position recorded in the report
            log.warning("levels controller could not show %s: %s", level, exc)
    row = editor.report.level(level) if editor.report is not None else None
    state = window.state
    if row is None or row.position is None or state.volume is None:
        return False
    if hasattr(state, "select_level"):
        state.select_level(level)
    ijk = state.volume.patient_to_voxel(row.position)
    state.set_cursor(tuple(round(float(v)) for v in ijk))
    return True
