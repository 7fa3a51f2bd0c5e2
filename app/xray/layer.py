"""Vertebra landmarks and Cobb curves drawn over a plain radiograph, with draggable corners and undo.

:class:`XrayLandmarks` holds the 68 corners (image pixels) of the radiograph on screen, where they came from
(the model, or a user's correction) and an undo stack. :class:`XrayLayer` paints them on the radiograph view: each
vertebra's outline and corners, its level name, and for the largest curve of each region (proximal thoracic, main
thoracic, thoracolumbar/lumbar) its two endplate lines with the angle; dragging a corner moves it and the angles
follow (one undo step per drag, on the window's undo stack).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen, QUndoCommand, QUndoStack

from core.xray.cobb import REGIONS, Curve, endplate_lines, regional_cobb
from core.xray.labelling import from_radiograph
from core.xray.levels import CORNERS, LEVELS

PICK_RADIUS_PX = 8
REGION_COLOURS = {REGIONS[0]: QColor(255, 190, 40), REGIONS[1]: QColor(255, 90, 90), REGIONS[2]: QColor(90, 200, 255)}
OUTLINE = QColor(60, 230, 120)


class _Edit(QUndoCommand):
    def __init__(self, model: XrayLandmarks, before, after, text: str) -> None:
        super().__init__(text)
        self.model, self.before, self.after = model, before, after

    def redo(self) -> None:
        self.model._apply(*self.after)

    def undo(self) -> None:
        self.model._apply(*self.before)


class XrayLandmarks(QObject):
    """The landmarks of the radiograph shown; ``changed`` after every edit, undo or new set. Edits go on the
    window's undo stack (Edit > Undo), one step per detection or corner drag."""

    changed = Signal()

    def __init__(self, undo_stack: QUndoStack | None = None, user: str = "user",
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.undo_stack = undo_stack or QUndoStack(self)
        self.user = user
        self.landmarks: np.ndarray | None = None
        self.method = ""                  # "auto:<model>@<version>", or "user:<name>" once a corner was moved

    def _state(self):
        return (None if self.landmarks is None else self.landmarks.copy(), self.method)

    def _apply(self, landmarks, method: str) -> None:
        self.landmarks = None if landmarks is None else np.array(landmarks, float).reshape(68, 2)
        self.method = method
        self.changed.emit()

    def set_landmarks(self, landmarks: np.ndarray | None, method: str, text: str = "Find vertebrae") -> None:
        after = (None if landmarks is None else np.asarray(landmarks, float).reshape(68, 2).copy(), method)
        self.undo_stack.push(_Edit(self, self._state(), after, text))

    def restore(self, landmarks: np.ndarray | None, method: str = "") -> None:
        """Show stored landmarks (a series opened): no undo step."""
        self._apply(landmarks, method)

    def move_corner(self, index: int, xy) -> None:
        if self.landmarks is None:
            return
        moved = self.landmarks.copy()
        moved[index] = np.asarray(xy, float)
        name = f"{LEVELS[index // 4]} {CORNERS[index % 4]} corner"
        self.undo_stack.push(_Edit(self, self._state(), (moved, f"user:{self.user}"), f"Move {name}"))

    def curves(self) -> dict[str, Curve | None]:
        if self.landmarks is None:
            return {r: None for r in REGIONS}
        try:
            return regional_cobb(self.landmarks)
        except ValueError:  # corners dragged onto each other
            return {r: None for r in REGIONS}


class XrayLayer:
    """Paints one XrayLandmarks on the radiograph view and lets the user drag its corners."""

    def __init__(self, model: XrayLandmarks, state) -> None:
        self.model = model
        self.state = state
        self._drag: int | None = None
        self._drag_pos: np.ndarray | None = None
        self._views: list = []
        model.changed.connect(self._repaint)

    def attach(self, view) -> None:
        view.add_layer(self)
        self._views.append(view)

    def _repaint(self) -> None:
        for v in self._views:
            v.update()

    # image pixel (x, y), pixel centres at +0.5 as in the AASCE convention  <->  widget
    def _to_widget(self, view, xy) -> QPointF:
        vol = self.state.volume
        return view.patient_to_widget(vol.voxel_to_patient((xy[0] - 0.5, xy[1] - 0.5, 0.0)))[0]

    def _to_image(self, view, pos: QPointF) -> np.ndarray | None:
        p = view.widget_to_patient(pos)
        if p is None:
            return None
        ijk = self.state.volume.patient_to_voxel(p)
        return np.array([ijk[0] + 0.5, ijk[1] + 0.5])

    def _active(self, view) -> bool:
        vol = self.state.volume
        return (self.model.landmarks is not None and vol is not None and vol.is_2d
                and getattr(view, "radiograph", False))

    def _points(self) -> np.ndarray:
        pts = self.model.landmarks.copy()
        if self._drag is not None and self._drag_pos is not None:
            pts[self._drag] = self._drag_pos
        return pts

    def paint(self, view, painter: QPainter) -> None:
        if not self._active(view):
            return
        pts = self._points()
        w = [self._to_widget(view, p) for p in pts]
        named_by_levels = from_radiograph(self.state.labelling)
        painter.setRenderHint(QPainter.Antialiasing, True)
        font = QFont(painter.font())
        font.setPointSizeF(9)
        painter.setFont(font)
        for v, name in enumerate(LEVELS):
            ul, ur, ll, lr = w[4 * v: 4 * v + 4]
            painter.setPen(QPen(OUTLINE, 1.2))
            painter.setBrush(Qt.NoBrush)
            painter.drawPolygon([ul, ur, lr, ll])
            painter.setBrush(QBrush(OUTLINE))
            for c in (ul, ur, ll, lr):
                painter.drawEllipse(c, 2.5, 2.5)
            if not named_by_levels:    # else the level markers carry the names (and select a level)
                left = min(ul.x(), ll.x())
                painter.setPen(QColor(255, 255, 0))
                painter.drawText(QPointF(left - 34, (ul.y() + ll.y()) / 2 + 4), name)
        try:
            curves = regional_cobb(pts)
            lines = endplate_lines(pts)
        except ValueError:
            return
        y_text = 40.0   # below the view's title
        for region, curve in curves.items():
            if curve is None:
                continue
            colour = REGION_COLOURS[region]
            painter.setPen(QPen(colour, 1.6))
            for e in (curve.upper_endplate, curve.lower_endplate):
                a, b = (self._to_widget(view, p) for p in lines[e])
                d = b - a
                painter.drawLine(a - d * 0.8, b + d * 0.8)
            painter.drawText(QPointF(10, y_text), f"{region}: {curve.angle:.1f}° "
                                                 f"({curve.upper_end_vertebra}-{curve.lower_end_vertebra})")
            y_text += 16

    def _pick(self, view, pos: QPointF) -> int | None:
        best, best_d = None, PICK_RADIUS_PX
        for k, p in enumerate(self.model.landmarks):
            q = self._to_widget(view, p)
            d = float(np.hypot(q.x() - pos.x(), q.y() - pos.y()))
            if d <= best_d:
                best, best_d = k, d
        return best

    def mouse_press(self, view, event) -> bool:
        if not self._active(view) or event.button() != Qt.LeftButton:
            return False
        k = self._pick(view, event.position())
        if k is None:
            return False
        self._drag, self._drag_pos = k, self.model.landmarks[k].copy()
        return True

    def mouse_move(self, view, event) -> None:
        if self._drag is None:
            return
        p = self._to_image(view, event.position())
        if p is not None:
            self._drag_pos = p
            view.update()

    def mouse_release(self, view, event) -> None:
        if self._drag is None:
            return
        k, p = self._drag, self._drag_pos
        self._drag, self._drag_pos = None, None
        if p is not None and not np.allclose(p, self.model.landmarks[k]):
            self.model.move_corner(k, p)
        else:
            view.update()
