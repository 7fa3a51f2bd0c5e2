"""The scale calibration click tool on a plain radiograph: click the two ends of an object of known length (a
calibration ball's diameter, a ruler's marks), and the length typed in millimetres sets the image's scale.

The calibration is kept with the study's measurements (kind ``calibration``, see
:func:`core.xray.measure.calibration_measurement`), so a reopened radiograph keeps it; the image-plane distances,
angles and Cobb angles already on the image are measured again with it, and every value then says "calibrated by
user". One undo step (Edit > Undo) takes the calibration and the re-measured values back. Escape or a right click
cancels the clicks.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen

from core.xray import measure as xm

COLOUR = QColor(255, 120, 255)


class CalibrationTool(QObject):
    """A layer of the radiograph view. ``arm(length_mm)`` starts it; two left clicks finish it. ``prompt`` says what
    to click next or what was done ('' when idle)."""

    prompt = Signal(str)

    def __init__(self, measurements, state, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.measurements = measurements      # app.measure.model.MeasurementsModel
        self.state = state
        self.length_mm = 0.0
        self.armed = False
        self.points: list[np.ndarray] = []    # image pixels (x, y), pixel centres at +0.5
        self.display: list = []               # the same clicks in patient mm (to draw the stored measurement)
        self.hover: np.ndarray | None = None
        self.last_message = ""
        self._views: list = []
        state.volume_changed.connect(lambda _v: self.cancel())

    def attach(self, view) -> None:
        view.add_layer(self)
        view.installEventFilter(self)
        self._views.append(view)

    def _say(self, text: str) -> None:
        self.last_message = text
        self.prompt.emit(text)

    def _repaint(self) -> None:
        for v in self._views:
            v.update()

    def arm(self, length_mm: float) -> bool:
        vol = self.state.volume
        if vol is None or not vol.is_2d:
            self._say("Calibration is for a plain radiograph (one image), not a CT or MR series.")
            return False
        if not length_mm > 0:
            self._say("Type the known length in millimetres first.")
            return False
        self.length_mm, self.armed, self.points, self.display, self.hover = float(length_mm), True, [], [], None
        for v in self._views:
            v.setCursor(Qt.CrossCursor)
        self._say(f"Calibrate: click one end of the {self.length_mm:g} mm length (1/2)")
        return True

    def cancel(self) -> None:
        was = self.armed
        self.armed, self.points, self.display, self.hover = False, [], [], None
        for v in self._views:
            v.unsetCursor()
        self._repaint()
        if was:
            self._say("Calibration cancelled.")

    def eventFilter(self, watched, event) -> bool:  # Qt override: Escape on the view
        if self.armed and event.type() == QEvent.KeyPress and event.key() == Qt.Key_Escape:
            self.cancel()
            return True
        return False

    def _image_point(self, view, pos: QPointF):
        p = view.widget_to_patient(pos)
        if p is None:
            return None, None
        ijk = self.state.volume.patient_to_voxel(p)
        return np.array([ijk[0] + 0.5, ijk[1] + 0.5]), p

    def mouse_press(self, view, event) -> bool:
        if not self.armed or not getattr(view, "radiograph", False):
            return False
        if event.button() == Qt.RightButton:
            self.cancel()
            return True
        if event.button() != Qt.LeftButton:
            return False
        px, patient = self._image_point(view, event.position())
        if px is None:
            return True
        self.points.append(px)
        self.display.append(patient)
        if len(self.points) == 2:
            self._finish()
        else:
            self._say(f"Calibrate: click the other end of the {self.length_mm:g} mm length (2/2)")
        view.update()
        return True

    def mouse_hover(self, view, event) -> None:
        if self.armed and self.points:
            self.hover = self._image_point(view, event.position())[0]
            view.update()

    def _finish(self) -> None:
        (p0, p1), display = self.points, self.display
        self.armed, self.points, self.display, self.hover = False, [], [], None
        for v in self._views:
            v.unsetCursor()
        try:
            self.apply(p0, p1, self.length_mm, display)
        except ValueError as exc:
            self._say(f"Not calibrated: {exc}")

    def apply(self, p0, p1, length_mm: float, display_points=()) -> xm.Calibration:
        """Store the calibration (replacing an earlier one) and re-measure the image-plane values with it, as one
        undo step. ValueError (nothing changed) for a length or segment that cannot calibrate."""
        model = self.measurements
        stored = xm.calibration_measurement(p0, p1, length_mm, display_points, user=model.user)
        cal = xm.calibration_from_measurements([stored])
        old_cal = [m for m in model.measurements if m.kind == "calibration"]
        redo = [(m, xm.recalibrated(m, cal)) for m in model.measurements if m.kind != "calibration"]
        redo = [(old, new) for old, new in redo if new is not old]
        stack = model.undo_stack
        stack.beginMacro(f"Calibrate scale ({length_mm:g} mm)")
        try:
            for m in old_cal:
                model.remove(m)
            model.add(stored)
            for old, new in redo:
                new.id = None
                model.remove(old)
                model.add(new)
        finally:
            stack.endMacro()
        also = f"; {len(redo)} value(s) on the image re-measured" if redo else ""
        self._say(f"Calibrated by user: {cal.mm_per_px_x:.4g} mm/px ({length_mm:g} mm over "
                  f"{np.hypot(*(np.asarray(p1) - np.asarray(p0))):.1f} px){also}. Valid in the plane of the "
                  "calibration object.")
        return cal

    def paint(self, view, painter: QPainter) -> None:
        if not self.armed or not self.points or not getattr(view, "radiograph", False):
            return
        vol = self.state.volume
        to_w = lambda xy: view.patient_to_widget(vol.voxel_to_patient((xy[0] - 0.5, xy[1] - 0.5, 0.0)))[0]
        painter.setRenderHint(QPainter.Antialiasing, True)
        painter.setPen(QPen(COLOUR, 1.6))
        a = to_w(self.points[0])
        painter.drawEllipse(a, 3.0, 3.0)
        if self.hover is not None:
            painter.drawLine(a, to_w(self.hover))
