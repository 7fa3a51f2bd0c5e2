"""Measurement tools on the 2D views and the measurements drawn with their values.

With a tool on, left clicks place points on the slice shown (patient mm), in the order :mod:`app.measure.tools`
gives: distance = 2 points; angle = 3 (first end, vertex, second end); Cobb = 4 (two points on each endplate line,
in the plane of the view); lordosis and kyphosis = 4 (two endplate lines) and slip = 3 (three vertebral corners), on
the sagittal view (slip also on a lateral radiograph); on a radiograph, pelvic incidence = 4 (drawn with the line
from the S1 endplate's midpoint to the hip axis and the endplate's perpendicular) and SVA = 2 (drawn as the C7 plumb
line and its offset from S1). :attr:`MeasureLayer.prompt` says which point to click next; ``options`` holds the
tools' options (the anterior side of a lateral radiograph, the slip's level). The measurement is made when the last point is placed; a right click or
Escape drops the points placed so far. A measurement is drawn on the slices it was placed on (all its points within
a few mm of the slice).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen

from app.measure.model import MeasurementsModel
from app.measure.tools import TOOLS, build, wrong_view
from app.measure.values import format_value

LINE_RGB = (255, 225, 0)
CURRENT_RGB = (255, 140, 0)
ON_SLICE_MM = 3.0  # beyond half a voxel: drawn on the neighbouring slices too, so a measurement is easy to find
TWO_LINES = ("cobb", "lordosis", "kyphosis")
MAX_LABEL_WIDTH = 380.0  # px: longer values wrap
LABEL_FLAGS = Qt.AlignCenter | Qt.TextWordWrap


class MeasureLayer(QObject):
    """One instance serves every slice view. ``prompt`` carries what to click next ('' when no tool is on)."""

    prompt = Signal(str)

    def __init__(self, model: MeasurementsModel, user: str = "user", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.state = model.state
        self.user = user
        self.tool: str | None = None
        self.points: list[np.ndarray] = []  # placed so far, in patient mm
        self.view = None  # the view the points are placed on
        self.hover: np.ndarray | None = None
        self._views: list = []
        self.last_error = ""
        self.options: dict[str, str] = {"anterior": "header", "slip_level": "auto"}  # tool options (the panel's)

    def attach(self, views) -> None:
        for view in views:
            view.add_layer(self)
            view.installEventFilter(self)  # Escape on a view drops the points placed so far
            self._views.append(view)
        self.model.changed.connect(self._repaint)
        self.model.selected.connect(lambda _m: self._repaint())
        self.state.volume_changed.connect(lambda _v: self.cancel())

    def _repaint(self) -> None:
        for view in self._views:
            view.update()

    def set_tool(self, tool: str | None) -> None:
        if tool is not None and tool not in TOOLS:
            raise ValueError(f"unknown measurement tool {tool!r}")
        self.tool = tool
        self.cancel()
        for view in self._views:
            view.setCursor(Qt.CrossCursor) if tool else view.unsetCursor()
        if tool is None:
            self.prompt.emit("")

    def cancel(self) -> None:
        self.points, self.view, self.hover = [], None, None
        self._repaint()
        self._say()

    def hint(self) -> str:
        """What to click next with the tool on ('' with none)."""
        return TOOLS[self.tool].prompt(len(self.points)) if self.tool else ""

    def _say(self, before: str = "") -> None:
        if self.tool:
            self.prompt.emit(f"{before} — {self.hint()}" if before else self.hint())

    def eventFilter(self, watched, event) -> bool:  # Qt override: Escape on a view
        if event.type() == QEvent.KeyPress and event.key() == Qt.Key_Escape and self.points:
            self.cancel()
            return True
        return False

    # -- mouse ----------------------------------------------------------------------------------------------
    def mouse_press(self, view, event) -> bool:
        if self.tool is None or self.state.volume is None:
            return False
        if event.button() == Qt.RightButton and self.points:
            self.cancel()
            return True
        if event.button() != Qt.LeftButton or event.modifiers() & Qt.ShiftModifier:
            return False
        refusal = wrong_view(TOOLS[self.tool], view)
        if refusal:
            self._say(refusal)
            return True  # the click was meant for the tool: it does not move the cursor either
        if self.view is not None and view is not self.view:
            self.cancel()  # points of one measurement belong to one view
        point = view.widget_to_patient(event.position())
        if point is None:
            return False
        outside = _outside_radiograph(view, point)
        if outside:
            self._say(outside)
            return True  # not placed: the points placed so far stay
        self.view = view
        self.points.append(point)
        if len(self.points) == TOOLS[self.tool].points:
            self._finish(view)
        else:
            self._say()
        view.update()
        return True

    def mouse_hover(self, view, event) -> None:
        if self.tool is not None and self.points and view is self.view:
            self.hover = view.widget_to_patient(event.position())
            view.update()

    def _finish(self, view) -> None:
        points, self.points, self.view, self.hover = self.points, [], None, None
        try:
            m = build(TOOLS[self.tool], points, view, self.model, f"user:{self.user}", self.options)
        except ValueError as exc:  # e.g. two clicks on the same spot
            self.last_error = str(exc)
            self._say(f"Not measured: {exc}")
            return
        self.last_error = ""
        self.model.add(m)
        self._say(format_value(m) + (f" at {m.level}" if m.level else ""))

    # -- painting -------------------------------------------------------------------------------------------
    def paint(self, view, painter: QPainter) -> None:
        painter.setRenderHint(QPainter.Antialiasing, True)
        font = QFont(view.font())
        font.setPointSize(10)
        font.setBold(True)
        painter.setFont(font)
        for m in self.model.measurements:
            projected = self._on_slice(view, m.points)
            if projected is not None:
                rgb = CURRENT_RGB if m is self.model.current else LINE_RGB
                self._draw(painter, m.kind, projected, rgb, format_value(m))
        if self.points and view is self.view:
            pts = [view.patient_to_widget(p)[0] for p in self.points]
            if self.hover is not None:
                pts.append(view.patient_to_widget(self.hover)[0])
            self._draw(painter, self.tool, pts, CURRENT_RGB, "", partial=True)

    def _on_slice(self, view, points) -> list[QPointF] | None:
        if not points:
            return None
        out = []
        for p in points:
            pos, dist = view.patient_to_widget(p)
            if dist > ON_SLICE_MM:
                return None
            out.append(pos)
        return out

    def _draw(self, painter: QPainter, kind: str, pts: list[QPointF], rgb, label: str, partial: bool = False) -> None:
        segments = _segments(kind, len(pts))
        for width, color in ((4, QColor(0, 0, 0, 170)), (2, QColor(*rgb))):
            painter.setPen(QPen(color, width, Qt.DashLine if partial else Qt.SolidLine, Qt.RoundCap))
            for a, b in segments:
                painter.drawLine(pts[a], pts[b])
            for a, b, dashed in _construction_lines(kind, pts):
                painter.setPen(QPen(color, width, Qt.DashLine if dashed or partial else Qt.SolidLine, Qt.RoundCap))
                painter.drawLine(a, b)
        painter.setPen(QPen(QColor(0, 0, 0), 1))
        painter.setBrush(QColor(*rgb))
        for p in pts[: len(pts) - (1 if partial and len(pts) > 1 else 0)]:
            painter.drawEllipse(p, 3, 3)
        if label:
            # a long value (an SVA says its scale, side and film) wraps to a few lines instead of leaving the view
            bounds = QRectF(painter.window())
            wrap = max(160.0, min(MAX_LABEL_WIDTH, bounds.width() * 0.6))
            size = QFontMetricsF(painter.font()).boundingRect(QRectF(0, 0, wrap, 1000), LABEL_FLAGS, label).size()
            rect = _label_rect(kind, pts, size.width() + 8, size.height() + 4, bounds)
            painter.setPen(Qt.NoPen)
            painter.setBrush(QColor(0, 0, 0, 170))
            painter.drawRoundedRect(rect, 3, 3)
            painter.setPen(QColor(*rgb))
            painter.drawText(rect, LABEL_FLAGS, label)


def _outside_radiograph(view, point) -> str:
    """Why a click on a plain radiograph cannot be a point ('' inside the image): measurements there are in the
    image's pixels, and a point beyond its edge measures nothing."""
    vol = view.state.volume
    if not getattr(view, "radiograph", False) or vol is None:
        return ""
    x, y = vol.patient_to_voxel(point)[:2] + 0.5
    width, height = vol.shape[0], vol.shape[1]
    if 0.0 <= x <= width and 0.0 <= y <= height:
        return ""
    return f"Not placed: the click is outside the image ({width} x {height} px); click on the radiograph"


def _segments(kind: str, n: int) -> list[tuple[int, int]]:
    """Lines to draw between a measurement's points, in the order core.spine.measure.geometry documents them."""
    if kind == "sva" and n >= 3:  # C7 centre, S1 corner, the plumb line's foot: plumb line, then the offset
        return [(0, 2), (2, 1)]
    if kind in ("angle", "slip", "sva"):  # slip: the upper posterior-inferior corner to the lower posterior-superior one,
        return [(i, i + 1) for i in range(n - 1)]  # then the lower endplate from its posterior to its anterior corner
    # distance, Cobb / lordosis / kyphosis (two lines), body and disc heights (top/bottom pairs)
    return [(i, i + 1) for i in range(0, n - 1, 2)]


def _construction_lines(kind: str, pts: list[QPointF]) -> list[tuple[QPointF, QPointF, bool]]:
    """Lines (a, b, dashed) through points that were not clicked: for pelvic incidence, the line from the S1
    endplate's midpoint to the hip axis (the femoral heads' midpoint), and dashed, the endplate's perpendicular at
    that midpoint, of the same length: the two arms of the angle PI."""
    if kind not in ("pelvic_incidence", "pelvis") or len(pts) < 3:
        return []
    mid = (pts[0] + pts[1]) / 2
    hip = pts[2] if len(pts) == 3 else (pts[2] + pts[3]) / 2
    e = pts[1] - pts[0]
    n = QPointF(-e.y(), e.x())
    if n.y() < 0:  # towards the feet, into the sacrum
        n = -n
    scale = float(np.hypot((hip - mid).x(), (hip - mid).y())) / max(float(np.hypot(n.x(), n.y())), 1e-9)
    return [(mid, hip, False), (mid, mid + n * scale, True)]


def _label_rect(kind: str, pts: list[QPointF], w: float, h: float, bounds: QRectF) -> QRectF:
    """Where a measurement's value is written: up and right of its anchor point (a slip's: below the lower vertebra's
    posterior corner on its posterior side, in the canal, clear of the endplate and of the disc's name), inside the
    view."""
    if kind == "slip" and len(pts) >= 3:  # on the posterior side of the lower vertebra's posterior corner
        x = pts[1].x() + 8 if pts[2].x() <= pts[1].x() else pts[1].x() - 8 - w
        y = pts[1].y() + 6
    else:
        anchor = _label_anchor(kind, pts)
        x, y = anchor.x() + 8, anchor.y() - h
    x = min(max(x, bounds.left() + 2), bounds.right() - w - 2)
    y = min(max(y, bounds.top() + 2), bounds.bottom() - h - 2)
    return QRectF(x, y, w, h)


def _label_anchor(kind: str, pts: list[QPointF]) -> QPointF:
    if kind == "angle" and len(pts) >= 2:
        return pts[1]
    if kind == "sva" and len(pts) >= 3:  # halfway down the plumb line, clear of the slip and PI at S1
        return (pts[0] + pts[2]) / 2
    if kind in TWO_LINES and len(pts) >= 4:
        return QPointF((pts[0].x() + pts[1].x() + pts[2].x() + pts[3].x()) / 4,
                       (pts[0].y() + pts[1].y() + pts[2].y() + pts[3].y()) / 4)
    return pts[-1]
