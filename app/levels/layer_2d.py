"""Level labels on a 2D view: a marker and the name at each vertebra centroid near the slice, discs as short lines.

Mouse (left button): press on a marker or its name selects the level; dragging it moves the centroid (in the plane
of the view; committed on release, undoable). A plain click elsewhere moves the cursor as usual and selects the
vertebra under it (the nearest centroid within a vertebral-body radius). Double-click on a marker renames it (the
others are renamed consistently). Right click on a marker: Rename, Go to, Remove; elsewhere: Add a vertebra here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPen
from PySide6.QtWidgets import QMenu

from app import imaging
from app.levels import dialogs, style
from app.levels.controller import LevelsController

DRAG_THRESHOLD_PX = 3


@dataclass
class Marker:
    kind: str  # "vertebra" | "disc"
    index: int
    name: str | None
    pos: QPointF  # widget position of the centroid / disc centre
    distance_mm: float  # from the slice shown
    selected: bool
    text: str = ""
    text_rect: QRectF | None = None
    ends: tuple[QPointF, QPointF] | None = None  # a disc's line


class LevelLayer:
    """One instance serves every slice view (it is told which view each call is for)."""

    def __init__(self, controller: LevelsController) -> None:
        self.controller = controller
        self.state = controller.state
        self._press: tuple | None = None  # (view, marker, press position, original patient point, press patient)
        self._preview: tuple[str, int, np.ndarray] | None = None  # marker being dragged: kind, index, new point
        self._views: list = []
        self.context_menu: QMenu | None = None

    def attach(self, views) -> None:
        for view in views:
            view.add_layer(self)
            self._views.append(view)
        self.state.labelling_changed.connect(lambda _l: self._repaint())
        self.state.level_selected.connect(lambda _n: self._repaint())

    def _repaint(self) -> None:
        for view in self._views:
            view.update()

    # -- geometry -------------------------------------------------------------------------------------------
    def markers(self, view) -> list[Marker]:
        """The markers drawn on ``view`` now (within range of its slice), discs first, vertebrae on top."""
        labelling = self.state.labelling
        if labelling is None or self.state.volume is None:
            return []
        selected = self.state.selected_level
        out: list[Marker] = []
        for i, disc in enumerate(labelling.discs):
            centre = self._point("disc", i, disc.centre)
            pos, dist = view.patient_to_widget(centre)
            if dist > style.LABEL_RANGE_MM:
                continue
            ends = self._disc_ends(view, centre, np.asarray(disc.normal))
            if ends is not None:
                out.append(Marker("disc", i, disc.name, pos, dist, bool(disc.name) and disc.name == selected,
                                  ends=ends))
        fonts = _Fonts(view)
        for m in out:
            if m.name and m.distance_mm < style.LABEL_RANGE_MM / 2:
                a, b = m.ends
                right = a if a.x() > b.x() else b
                m.text_rect = _rect_left_centred(fonts.small.boundingRect(m.name), QPointF(right.x() + 4, right.y()))
        for i, v in enumerate(labelling.vertebrae):
            pos, dist = view.patient_to_widget(self._point("vertebra", i, v.centroid))
            if dist <= style.LABEL_RANGE_MM:
                m = Marker("vertebra", i, v.name, pos, dist, bool(v.name) and v.name == selected)
                m.text = _vertebra_text(v)
                radius = style.SELECTED_RADIUS_PX if m.selected else style.MARKER_RADIUS_PX
                m.text_rect = _rect_left_centred(fonts.bold.boundingRect(m.text), QPointF(pos.x() + radius + 5, pos.y()))
                out.append(m)
        return out

    def _point(self, kind: str, index: int, point) -> np.ndarray:
        if self._preview is not None and self._preview[:2] == (kind, index):
            return self._preview[2]
        return np.asarray(point, dtype=float)

    def _disc_ends(self, view, centre: np.ndarray, normal: np.ndarray) -> tuple[QPointF, QPointF] | None:
        """The disc seen edge-on in this view: a line across the spine, perpendicular to the disc normal."""
        vol = self.state.volume
        axis = imaging.NORMAL_AXIS[view.orientation]
        view_normal = vol.affine[:3, axis] / np.linalg.norm(vol.affine[:3, axis])
        across = np.cross(normal, view_normal)
        if np.linalg.norm(across) < 0.5:  # the disc lies (nearly) in the plane of this view: no line to draw
            return None
        across /= np.linalg.norm(across)
        a, _ = view.patient_to_widget(centre + across * style.DISC_HALF_WIDTH_MM)
        b, _ = view.patient_to_widget(centre - across * style.DISC_HALF_WIDTH_MM)
        return a, b

    # -- painting -------------------------------------------------------------------------------------------
    def paint(self, view, painter: QPainter) -> None:
        markers = self.markers(view)
        if not markers:
            return
        painter.setRenderHint(QPainter.Antialiasing, True)
        fonts = _Fonts(view)
        for m in markers:
            fade = 1.0 - 0.65 * min(1.0, m.distance_mm / style.LABEL_RANGE_MM)
            if m.kind == "disc":
                painter.setFont(fonts.small_font)
                self._paint_disc(painter, m, fade)
            else:
                painter.setFont(fonts.bold_font)
                self._paint_vertebra(painter, m, fade)

    def _paint_vertebra(self, painter: QPainter, m: Marker, fade: float) -> None:
        rgb = style.SELECTED_RGB if m.selected else style.MARKER_RGB if m.name else style.UNNAMED_RGB
        radius = (style.SELECTED_RADIUS_PX if m.selected else style.MARKER_RADIUS_PX) * (0.6 + 0.4 * fade)
        painter.setPen(QPen(QColor(0, 0, 0, int(200 * fade)), 1.5))
        painter.setBrush(QBrush(QColor(*rgb, int(255 * fade))))
        painter.drawEllipse(m.pos, radius, radius)
        if m.selected:
            painter.setPen(Qt.NoPen)
            painter.setBrush(QColor(0, 0, 0, 150))
            painter.drawRoundedRect(m.text_rect.adjusted(-3, -1, 3, 1), 3, 3)
        painter.setPen(QColor(0, 0, 0, int(220 * fade)))
        painter.drawText(m.text_rect.translated(1, 1), Qt.AlignLeft | Qt.AlignVCenter, m.text)
        painter.setPen(QColor(*(rgb if m.selected or not m.name else style.TEXT_RGB), int(255 * fade)))
        painter.drawText(m.text_rect, Qt.AlignLeft | Qt.AlignVCenter, m.text)

    def _paint_disc(self, painter: QPainter, m: Marker, fade: float) -> None:
        rgb = style.SELECTED_RGB if m.selected else style.DISC_RGB
        a, b = m.ends
        painter.setPen(QPen(QColor(0, 0, 0, int(160 * fade)), 4, Qt.SolidLine, Qt.RoundCap))
        painter.drawLine(a, b)
        painter.setPen(QPen(QColor(*rgb, int(230 * fade)), 2, Qt.SolidLine, Qt.RoundCap))
        painter.drawLine(a, b)
        if m.text_rect is not None:
            painter.drawText(m.text_rect, Qt.AlignLeft | Qt.AlignVCenter, m.name)

    # -- hit testing ----------------------------------------------------------------------------------------
    def marker_at(self, view, pos: QPointF) -> Marker | None:
        """The marker under a widget position: the closest vertebra marker (or its name), else a disc line."""
        markers = self.markers(view)
        hits = [m for m in markers if m.kind == "vertebra"
                and (_dist(m.pos, pos) <= style.HIT_RADIUS_PX or m.text_rect.contains(pos))]
        if hits:
            return min(hits, key=lambda m: _dist(m.pos, pos))
        for m in markers:
            if m.kind == "disc" and _dist_to_segment(pos, *m.ends) <= 4:
                return m
        return None

    # -- mouse ----------------------------------------------------------------------------------------------
    def mouse_press(self, view, event) -> bool:
        if self.state.volume is None:
            return False
        pos, button = event.position(), event.button()
        marker = self.marker_at(view, pos) if self.state.labelling is not None else None
        window_level = view.wl_tool or event.modifiers() & Qt.ShiftModifier  # left drag belongs to W/L then
        if marker is not None and button == Qt.LeftButton and not window_level:
            if marker.name:
                self.state.select_level(marker.name)
            original = self._marker_point(marker)
            self._press = (view, marker, QPointF(pos), original, view.widget_to_patient(pos))
            return True
        if button == Qt.RightButton and marker is not None:
            return self._context_menu(view, event, marker)
        if button == Qt.LeftButton and not event.modifiers() and not view.wl_tool:
            index = self.controller.vertebra_near(view.widget_to_patient(pos))
            if index is not None and self.state.labelling.vertebrae[index].name:
                self.state.select_level(self.state.labelling.vertebrae[index].name)
        return False

    def mouse_move(self, view, event) -> None:
        if self._press is None:
            return
        _view, marker, press_pos, original, press_patient = self._press
        if _dist(press_pos, event.position()) < DRAG_THRESHOLD_PX and self._preview is None:
            return
        here = view.widget_to_patient(event.position())
        if here is None or press_patient is None:
            return
        self._preview = (marker.kind, marker.index, original + (here - press_patient))
        view.update()

    def mouse_release(self, view, event) -> None:
        press, preview = self._press, self._preview
        self._press, self._preview = None, None
        if press is None or preview is None:
            return
        kind, index, point = preview
        if kind == "vertebra":
            self.controller.move_vertebra(index, point)
        else:
            self.controller.move_disc(index, point)

    def mouse_double_click(self, view, event) -> bool:
        if event.button() != Qt.LeftButton or self.state.labelling is None:
            return False
        marker = self.marker_at(view, event.position())
        if marker is None or marker.kind != "vertebra":
            return False
        self.rename_interactively(view, marker.index)
        return True

    def mouse_hover(self, view, event) -> None:
        over = self.state.labelling is not None and self.marker_at(view, event.position()) is not None
        if over:
            view.setCursor(Qt.OpenHandCursor)
        else:
            view.unsetCursor()

    # -- actions --------------------------------------------------------------------------------------------
    def rename_interactively(self, parent, index: int) -> None:
        dialogs.rename_vertebra(parent, self.controller, index)

    def _marker_point(self, marker: Marker) -> np.ndarray:
        labelling = self.state.labelling
        if marker.kind == "vertebra":
            return np.asarray(labelling.vertebrae[marker.index].centroid, dtype=float)
        return np.asarray(labelling.discs[marker.index].centre, dtype=float)

    def _context_menu(self, view, event, marker: Marker) -> bool:
        menu = QMenu(view)
        if marker.kind == "vertebra":
            label = marker.name or "this vertebra"
            menu.addAction(f"Name {label}… (renames the others)",
                           lambda: self.rename_interactively(view, marker.index))
            if marker.name:
                menu.addAction(f"Go to {marker.name}", lambda: self.controller.go_to_level(marker.name))
            menu.addAction(f"Remove {label}", lambda: self.controller.remove_vertebra(marker.index))
        elif marker.name:
            menu.addAction(f"Go to {marker.name}", lambda: self.controller.go_to_level(marker.name))
        else:
            return False
        self.context_menu = menu  # kept for tests and so it is not collected while shown
        menu.popup(view.mapToGlobal(event.position().toPoint()))
        return True


def _dist(a: QPointF, b: QPointF) -> float:
    return float(np.hypot(a.x() - b.x(), a.y() - b.y()))


def _dist_to_segment(p: QPointF, a: QPointF, b: QPointF) -> float:
    pa = np.array([p.x() - a.x(), p.y() - a.y()])
    ab = np.array([b.x() - a.x(), b.y() - a.y()])
    t = float(np.clip(pa @ ab / max(ab @ ab, 1e-9), 0.0, 1.0))
    return float(np.linalg.norm(pa - t * ab))


class _Fonts:
    """The label fonts of a view, with their metrics."""

    def __init__(self, view) -> None:
        self.bold_font = QFont(view.font())
        self.bold_font.setPointSize(10)
        self.bold_font.setBold(True)
        self.small_font = QFont(view.font())
        self.small_font.setPointSize(8)
        self.bold = QFontMetricsF(self.bold_font)
        self.small = QFontMetricsF(self.small_font)


def _vertebra_text(v) -> str:
    text = v.name or "?"
    if v.name and v.confidence < 0.5:
        text += "?"  # named, but the naming is uncertain
    return text + (" (partial)" if v.partial else "")


def _rect_left_centred(rect: QRectF, left_centre: QPointF) -> QRectF:
    rect = QRectF(rect)
    rect.moveTopLeft(QPointF(left_centre.x(), left_centre.y() - rect.height() / 2))
    return rect
