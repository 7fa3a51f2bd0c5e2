"""Puts the radiograph landmarks into the main window: the layer on the radiograph view, the Radiograph tab beside
Levels and Measurements, the Cobb angles into the measurements (stored with provenance, given to the
consultation's study context), the levels T1-L5 into the series' labelling; a reopened radiograph shows its stored
landmarks again. The scale calibration tool sits on the same view (its clicks are seen first while it is armed)."""
from __future__ import annotations

from dataclasses import dataclass

from app.xray.calibrate import CalibrationTool
from app.xray.layer import XrayLandmarks, XrayLayer
from app.xray.panel import XrayPanel
from core.xray.labelling import from_radiograph, labelling_from_landmarks
from core.xray.measurements import SOURCE, cobb_measurements, landmarks_from_measurements


@dataclass
class XrayTools:
    model: XrayLandmarks
    layer: XrayLayer
    panel: XrayPanel
    calibration: CalibrationTool


def install_xray_tools(window, spine) -> XrayTools:
    """``spine``: the SpineTools of app.levels.wiring (undo stack, measurements, tabs)."""
    model = XrayLandmarks(spine.undo_stack, user=spine.measurements.user, parent=window)
    layer = XrayLayer(model, window.state)
    layer.attach(window.viewer.axial)      # the view a plain radiograph is shown in
    calibration = CalibrationTool(spine.measurements, window.state, parent=window)
    calibration.attach(window.viewer.axial)   # last: it sees the clicks first while armed
    panel = XrayPanel(window.state, model, track=window.task_status.track, calibration=calibration)
    spine.tabs.addTab(panel, "Radiograph")
    restoring = [False]

    def sync_measurements() -> None:
        if restoring[0]:
            return
        new = [] if model.landmarks is None else cobb_measurements(model.landmarks, model.method)
        spine.measurements.replace_source(SOURCE, new)

    def sync_levels() -> None:
        """The landmarks' levels T1-L5 become the series' labelling (shown, stored, given to the consultation),
        unless the series has a labelling the user or another method made, which stays."""
        vol = window.state.volume
        if restoring[0] or vol is None or not vol.is_2d:
            return
        current = window.state.labelling
        if current is not None and not from_radiograph(current):
            return
        new = None if model.landmarks is None else labelling_from_landmarks(
            model.landmarks, vol, model.method, spine.controller.series_uid)
        if new is not None or current is not None:
            # shown and stored without an undo step of its own: the landmark edit is the undo step
            spine.controller.show_and_save(new)

    def on_opened(volume) -> None:
        restoring[0] = True
        try:
            stored = landmarks_from_measurements(spine.measurements.measurements) if volume.is_2d else None
            model.restore(*(stored or (None, "")))
        finally:
            restoring[0] = False

    model.changed.connect(sync_measurements)
    model.changed.connect(sync_levels)
    window.volume_opened.connect(on_opened)
    return XrayTools(model, layer, panel, calibration)
