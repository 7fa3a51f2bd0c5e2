"""A 2D MPR view (axial, coronal or sagittal) painting one slice of the shared volume with QPainter.

Mouse: left click/drag moves the 3D cursor (the other views follow), Shift+left drag (or left drag with the
W/L tool on) changes window/level, middle or right drag pans, wheel scrolls slices, Ctrl+wheel zooms about
the pointer. Keys: Up/Down and PageUp/PageDown scroll, R resets zoom and pan.

Layers (``add_layer``: level labels, measurements) paint over the image and see mouse events first: a layer's
``mouse_press(view, event)`` returning True takes the gesture (its ``mouse_move`` / ``mouse_release`` follow);
``mouse_hover`` and ``mouse_double_click`` are offered too. Each method is optional.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app import imaging
from app.state import ViewerState

# Slicer-like plane colours: each view's frame, and the line showing its plane in the other views.
PLANE_COLORS = {
    imaging.AXIAL: QColor(230, 80, 80),
    imaging.SAGITTAL: QColor(235, 210, 80),
    imaging.CORONAL: QColor(90, 200, 110),
}
TITLES = {imaging.AXIAL: "Axial", imaging.SAGITTAL: "Sagittal", imaging.CORONAL: "Coronal"}
ZOOM_STEP = 1.15
CROSSHAIR_GAP = 10  # px left open around the cursor so the voxel under it stays visible


class SliceView(QWidget):
    def __init__(self, state: ViewerState, orientation: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if orientation not in imaging.ORIENTATIONS:
            raise ValueError(f"unknown orientation {orientation!r}")
        self.state = state
        self.orientation = orientation
        self.zoom = 1.0
        self.pan = (0.0, 0.0)
        self.wl_tool = False  # when on, plain left drag adjusts window/level instead of the cursor
        self.radiograph = False  # single-image mode: no crosshair, no orientation letters
        self._drag: str | None = None  # "cursor" | "wl" | "pan" | "layer"
        self.layers: list = []  # painted in order; offered mouse events topmost (last) first
        self._grab_layer = None
        self._drag_origin = QPointF()
        self._drag_start_values: tuple[float, float] = (0.0, 0.0)
        self._wheel_rest = 0
        self._cache_key: tuple | None = None
        self._image: QImage | None = None
        self._display_u8: np.ndarray | None = None
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setFocusPolicy(Qt.ClickFocus)
        self.setAttribute(Qt.WA_OpaquePaintEvent)
        self.setMouseTracking(True)  # layers preview under the pointer (e.g. a measurement being drawn)
        state.volume_changed.connect(self._on_volume_changed)
        state.cursor_changed.connect(lambda _ijk: self.update())
        state.window_level_changed.connect(lambda _w, _l: self.update())

    # -- geometry -------------------------------------------------------------------------------------------
    @property
    def slice_index(self) -> int:
        return self.state.slice_index(self.orientation)

    @property
    def slice_count(self) -> int:
        vol = self.state.volume
        return imaging.slice_count(vol.shape, self.orientation) if vol is not None else 0

    def transform(self) -> imaging.ViewTransform | None:
        vol = self.state.volume
        if vol is None:
            return None
        return imaging.fit_transform(
            (self.width(), self.height()),
            imaging.display_shape(vol.shape, self.orientation),
            imaging.pixel_spacing(vol.spacing, self.orientation),
            self.zoom,
            self.pan,
        )

    def voxel_to_widget(self, ijk) -> QPointF:
        vol, tf = self.state.volume, self.transform()
        if vol is None or tf is None:
            return QPointF()
        col, row = imaging.voxel_to_display(vol.shape, self.orientation, ijk)
        return QPointF(*tf.to_widget(col, row))

    def widget_to_voxel(self, pos: QPointF) -> tuple[int, int, int] | None:
        vol, tf = self.state.volume, self.transform()
        if vol is None or tf is None:
            return None
        col, row = tf.to_image(pos.x(), pos.y())
        return imaging.display_to_voxel(vol.shape, self.orientation, self.slice_index, col, row)

    def patient_to_widget(self, xyz) -> tuple[QPointF, float]:
        """Widget position of a patient point (LPS mm) projected on this view, and its distance in mm from the
        slice shown."""
        vol, tf = self.state.volume, self.transform()
        if vol is None or tf is None:
            return QPointF(), float("inf")
        ijk = vol.patient_to_voxel(xyz)
        col, row = imaging.voxel_to_display(vol.shape, self.orientation, ijk)
        axis = imaging.NORMAL_AXIS[self.orientation]
        distance = abs(float(ijk[axis]) - self.slice_index) * vol.spacing[axis]
        return QPointF(*tf.to_widget(col, row)), distance

    def widget_to_patient(self, pos: QPointF) -> np.ndarray | None:
        """The patient point (LPS mm) under a widget position, on the slice shown (not clamped, not rounded)."""
        vol, tf = self.state.volume, self.transform()
        if vol is None or tf is None:
            return None
        col, row = tf.to_image(pos.x(), pos.y())
        # Inverse of imaging.voxel_to_display for continuous voxel coordinates (pixel centres at +0.5).
        u, v, nk = col - 0.5, row - 0.5, vol.shape[2]
        index = self.slice_index
        ijk = {
            imaging.AXIAL: (u, v, index),
            imaging.CORONAL: (u, index, nk - 1 - v),
            imaging.SAGITTAL: (index, u, nk - 1 - v),
        }[self.orientation]
        return vol.voxel_to_patient(ijk)

    def add_layer(self, layer) -> None:
        self.layers.append(layer)
        self.update()

    def reset_view(self) -> None:
        self.zoom, self.pan = 1.0, (0.0, 0.0)
        self.update()

    # -- image ----------------------------------------------------------------------------------------------
    def displayed_slice(self) -> np.ndarray | None:
        """The windowed uint8 slice ``[row, col]`` currently shown (before scaling to the widget)."""
        self._ensure_image()
        return self._display_u8

    def _ensure_image(self) -> QImage | None:
        vol = self.state.volume
        if vol is None:
            self._image, self._display_u8, self._cache_key = None, None, None
            return None
        key = (id(vol), self.slice_index, self.state.window, self.state.level)
        if key != self._cache_key:
            plane = imaging.extract_slice(vol.data, self.orientation, self.slice_index)
            u8 = np.ascontiguousarray(imaging.apply_window(plane, self.state.window, self.state.level))
            rows, cols = u8.shape
            self._image = QImage(u8.data, cols, rows, cols, QImage.Format_Grayscale8).copy()
            self._display_u8 = u8
            self._cache_key = key
        return self._image

    def _on_volume_changed(self, _volume) -> None:
        self._cache_key = None
        self.reset_view()

    # -- painting -------------------------------------------------------------------------------------------
    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.black)
        image, tf = self._ensure_image(), self.transform()
        if image is not None and tf is not None:
            x0, y0 = tf.to_widget(0, 0)
            x1, y1 = tf.to_widget(image.width(), image.height())
            painter.setRenderHint(QPainter.SmoothPixmapTransform, True)
            painter.drawImage(QRectF(x0, y0, x1 - x0, y1 - y0), image)
            if not self.radiograph:
                self._paint_crosshair(painter)
                self._paint_letters(painter)
            for layer in self.layers:
                painter.save()
                layer.paint(self, painter)
                painter.restore()
            self._paint_overlay(painter)
        else:
            painter.setPen(QColor(150, 150, 150))
            painter.drawText(self.rect(), Qt.AlignCenter, "No image open")
        if not self.radiograph:
            pen = QPen(PLANE_COLORS[self.orientation])
            pen.setWidth(2)
            painter.setPen(pen)
            painter.drawRect(self.rect().adjusted(1, 1, -1, -1))
        painter.end()

    def _paint_crosshair(self, painter: QPainter) -> None:
        centre = self.voxel_to_widget(self.state.cursor)
        cx, cy = centre.x(), centre.y()
        vertical, horizontal = {
            imaging.AXIAL: (imaging.SAGITTAL, imaging.CORONAL),
            imaging.CORONAL: (imaging.SAGITTAL, imaging.AXIAL),
            imaging.SAGITTAL: (imaging.CORONAL, imaging.AXIAL),
        }[self.orientation]
        w, h = self.width(), self.height()
        for plane, segments in (
            (vertical, [((cx, 0), (cx, cy - CROSSHAIR_GAP)), ((cx, cy + CROSSHAIR_GAP), (cx, h))]),
            (horizontal, [((0, cy), (cx - CROSSHAIR_GAP, cy)), ((cx + CROSSHAIR_GAP, cy), (w, cy))]),
        ):
            color = QColor(PLANE_COLORS[plane])
            color.setAlpha(170)
            painter.setPen(QPen(color, 1))
            for (xa, ya), (xb, yb) in segments:
                painter.drawLine(QPointF(xa, ya), QPointF(xb, yb))

    def _paint_letters(self, painter: QPainter) -> None:
        left, right, top, bottom = imaging.EDGE_LETTERS[self.orientation]
        font = QFont(self.font())
        font.setPointSize(12)
        font.setBold(True)
        painter.setFont(font)
        margin = 6
        r = self.rect().adjusted(margin, margin, -margin, -margin)
        for text, align in (
            (left, Qt.AlignLeft | Qt.AlignVCenter),
            (right, Qt.AlignRight | Qt.AlignVCenter),
            (top, Qt.AlignTop | Qt.AlignHCenter),
            (bottom, Qt.AlignBottom | Qt.AlignHCenter),
        ):
            _shadow_text(painter, r, align, text, QColor(255, 220, 120))

    def _paint_overlay(self, painter: QPainter) -> None:
        font = QFont(self.font())
        font.setPointSize(9)
        painter.setFont(font)
        r = self.rect().adjusted(8, 6, -8, -6)
        white = QColor(235, 235, 235)
        title = "Image" if self.radiograph else TITLES[self.orientation]
        _shadow_text(painter, r, Qt.AlignTop | Qt.AlignLeft, title, white)
        slice_text = "" if self.radiograph else f"Slice {self.slice_index + 1}/{self.slice_count}"
        if slice_text:
            _shadow_text(painter, r, Qt.AlignBottom | Qt.AlignLeft, slice_text, white)
        preset = self.state.wl_preset
        wl = f"W {self.state.window:.0f}  L {self.state.level:.0f}"
        if preset:
            wl += f"  ({self.state.presets.get(preset).label})"
        metrics = QFontMetricsF(font)
        if slice_text and metrics.horizontalAdvance(slice_text + "    " + wl) > r.width():
            r = r.adjusted(0, 0, 0, -int(metrics.height()))  # a narrow view: window/level on the line above
        _shadow_text(painter, r, Qt.AlignBottom | Qt.AlignRight, wl, white)

    # -- interaction ----------------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        if self.state.volume is None:
            return
        self._drag_origin = event.position()
        for layer in reversed(self.layers):
            handler = getattr(layer, "mouse_press", None)
            if handler is not None and handler(self, event):
                self._drag, self._grab_layer = "layer", layer
                event.accept()
                return
        button, mods = event.button(), event.modifiers()
        if button == Qt.LeftButton and (mods & Qt.ShiftModifier or self.wl_tool):
            self._drag = "wl"
            self._drag_start_values = (self.state.window, self.state.level)
        elif button == Qt.LeftButton:
            self._drag = "cursor"
            self._move_cursor_to(event.position())
        elif button in (Qt.MiddleButton, Qt.RightButton):
            self._drag = "pan"
            self._drag_start_values = self.pan
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        if self._drag is None:
            for layer in reversed(self.layers):
                handler = getattr(layer, "mouse_hover", None)
                if handler is not None:
                    handler(self, event)
            return
        delta = event.position() - self._drag_origin
        if self._drag == "layer":
            handler = getattr(self._grab_layer, "mouse_move", None)
            if handler is not None:
                handler(self, event)
        elif self._drag == "cursor":
            self._move_cursor_to(event.position())
        elif self._drag == "wl":
            window, level = self._drag_start_values
            # Scale by the starting window so one gesture suits CT (thousands of HU) and MR (arbitrary units).
            step = max(window, 1.0) / 200.0
            self.state.set_window_level(window + delta.x() * step, level + delta.y() * step)
        elif self._drag == "pan":
            px, py = self._drag_start_values
            self.pan = (px + delta.x(), py + delta.y())
            self.update()

    def mouseReleaseEvent(self, event) -> None:
        if self._drag == "layer":
            handler = getattr(self._grab_layer, "mouse_release", None)
            if handler is not None:
                handler(self, event)
        self._drag, self._grab_layer = None, None

    def mouseDoubleClickEvent(self, event) -> None:
        for layer in reversed(self.layers):
            handler = getattr(layer, "mouse_double_click", None)
            if handler is not None and handler(self, event):
                event.accept()
                return
        self.mousePressEvent(event)

    def _move_cursor_to(self, pos: QPointF) -> None:
        if self.radiograph:
            return
        ijk = self.widget_to_voxel(pos)
        if ijk is not None:
            self.state.set_cursor(ijk)

    def wheelEvent(self, event) -> None:
        if self.state.volume is None:
            return
        self._wheel_rest += event.angleDelta().y()
        steps = int(self._wheel_rest / 120)  # whole notches; touchpads send fractions that add up
        self._wheel_rest -= steps * 120
        if steps == 0:
            return
        if event.modifiers() & Qt.ControlModifier:
            self.zoom_by(ZOOM_STEP**steps, event.position())
        elif not self.radiograph:
            self.state.move_slice(self.orientation, steps)
        event.accept()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the image point under ``anchor`` (default: widget centre) in place."""
        tf = self.transform()
        if tf is None:
            return
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        col, row = tf.to_image(anchor.x(), anchor.y())
        self.zoom = float(np.clip(self.zoom * factor, 0.1, 40.0))
        new_x, new_y = self.transform().to_widget(col, row)  # type: ignore[union-attr]
        self.pan = (self.pan[0] + anchor.x() - new_x, self.pan[1] + anchor.y() - new_y)
        self.update()

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key in (Qt.Key_Up, Qt.Key_PageUp):
            self.state.move_slice(self.orientation, 1)
        elif key in (Qt.Key_Down, Qt.Key_PageDown):
            self.state.move_slice(self.orientation, -1)
        elif key == Qt.Key_R:
            self.reset_view()
        else:
            super().keyPressEvent(event)


def _shadow_text(painter: QPainter, rect, align, text: str, color: QColor) -> None:
    painter.setPen(QColor(0, 0, 0, 200))
    painter.drawText(rect.translated(1, 1), align, text)
    painter.setPen(color)
    painter.drawText(rect, align, text)
