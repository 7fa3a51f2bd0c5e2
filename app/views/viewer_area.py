"""The central 2x2 layout: axial | sagittal over coronal | 3D, or one large view for a plain radiograph."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QGridLayout, QWidget

from app import imaging
from app.state import ViewerState
from app.views.slice_view import SliceView
from app.views.volume_view import VolumeView
from app.workers import TaskWorker


class ViewerArea(QWidget):
    def __init__(
        self,
        state: ViewerState,
        track: Callable[[TaskWorker], object] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.state = state
        self.slice_views = {o: SliceView(state, o) for o in imaging.ORIENTATIONS}
        self.volume_view = VolumeView(state, track=track)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(3)
        grid.addWidget(self.slice_views[imaging.AXIAL], 0, 0)
        grid.addWidget(self.slice_views[imaging.SAGITTAL], 0, 1)
        grid.addWidget(self.slice_views[imaging.CORONAL], 1, 0)
        grid.addWidget(self.volume_view, 1, 1)
        self.single_image = False
        state.volume_changed.connect(self._on_volume_changed)

    @property
    def axial(self) -> SliceView:
        return self.slice_views[imaging.AXIAL]

    @property
    def sagittal(self) -> SliceView:
        return self.slice_views[imaging.SAGITTAL]

    @property
    def coronal(self) -> SliceView:
        return self.slice_views[imaging.CORONAL]

    def _on_volume_changed(self, volume) -> None:
        self.set_single_image(volume is not None and volume.is_2d)

    def set_single_image(self, single: bool) -> None:
        """One large 2D view (plain radiograph) or the four linked views."""
        self.single_image = single
        self.axial.radiograph = single
        for view in (self.sagittal, self.coronal, self.volume_view):
            view.setVisible(not single)
        self.layout().activate()  # resize now, so callers (and the first paint) see the final geometry
        self.axial.update()

    def reset_views(self) -> None:
        for view in self.slice_views.values():
            view.reset_view()
        self.volume_view.reset_camera()
        self.volume_view.refresh()

    def set_wl_tool(self, on: bool) -> None:
        for view in self.slice_views.values():
            view.wl_tool = on
