"""The 3D view: VTK volume rendering (or a bone isosurface) of the shared volume, embedded in Qt.

The vtkImageData is prepared in a worker thread (downsampled to <= 256 per axis) and attached on the GUI
thread. GPU ray casting (vtkSmartVolumeMapper) is used when the OpenGL context supports it; otherwise, or with
``SPINEMED_VTK_CPU=1``, the CPU ray-cast mapper. The 3D cursor of the shared state is drawn as crossing lines.
Markers that must stay visible through the volume (level labels) go in :attr:`VolumeView.overlay_renderer`, a
layer drawn on top with the same camera; a left click without drag is reported by :attr:`VolumeView.clicked`.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import vtkmodules.qt

vtkmodules.qt.PyQtImpl = "PySide6"

# Imported for their side effect: they register the OpenGL render window, volume mappers, styles and fonts.
import vtkmodules.vtkInteractionStyle
import vtkmodules.vtkRenderingFreeType
import vtkmodules.vtkRenderingOpenGL2
import vtkmodules.vtkRenderingVolumeOpenGL2
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.vtkFiltersGeneral import vtkCursor3D
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkInteractionWidgets import vtkOrientationMarkerWidget
from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkRenderer, vtkVolume
from vtkmodules.vtkRenderingVolume import (
    vtkFixedPointVolumeRayCastMapper,
    vtkGPUVolumeRayCastMapper,
)
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

from app.presets import IsosurfacePreset, VolumeRenderingPresets, load_volume_rendering_presets
from app.state import ViewerState
from app.views import vtk_pipeline
from app.workers import TaskWorker

BACKGROUND = (0.08, 0.09, 0.11)


class VolumeView(QWidget):
    """3D rendering of ``state.volume`` with a preset combo box (volume presets + isosurfaces)."""

    ready = Signal()  # a volume (or surface) is attached and rendered
    failed = Signal(str)
    clicked = Signal(int, int)  # left click without drag, VTK display coordinates (origin bottom left)

    def __init__(
        self,
        state: ViewerState,
        presets: VolumeRenderingPresets | None = None,
        track: Callable[[TaskWorker], object] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.state = state
        self.presets = presets or load_volume_rendering_presets()
        self.track = track
        self.prepared: vtk_pipeline.PreparedVolume | None = None
        self.mapper_kind = ""
        self._worker: TaskWorker | None = None
        self._surfaces: dict[str, object] = {}  # isosurface preset name -> vtkPolyData for the current volume

        self.combo = QComboBox()
        self.combo.setToolTip("3D rendering preset")
        self.status = QLabel("")
        self.status.setStyleSheet("color: #aaa")
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.addWidget(QLabel("3D"))
        bar.addWidget(self.combo, 1)
        bar.addWidget(self.status)

        self.vtk_widget = QVTKRenderWindowInteractor(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.vtk_widget, 1)

        self.renderer = vtkRenderer()
        self.renderer.SetBackground(*BACKGROUND)
        self.render_window = self.vtk_widget.GetRenderWindow()
        self.render_window.AddRenderer(self.renderer)
        self.interactor = self.render_window.GetInteractor()
        self.interactor.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self.vtk_widget.Initialize()
        self.vtk_widget.Start()

        self.volume_actor = vtkVolume()
        self.surface_actor = vtkActor()
        self.surface_actor.SetMapper(vtkPolyDataMapper())
        self.cursor_source = vtkCursor3D()
        self.cursor_source.XShadowsOff()
        self.cursor_source.YShadowsOff()
        self.cursor_source.ZShadowsOff()
        self.cursor_source.OutlineOn()
        cursor_mapper = vtkPolyDataMapper()
        cursor_mapper.SetInputConnection(self.cursor_source.GetOutputPort())
        self.cursor_actor = vtkActor()
        self.cursor_actor.SetMapper(cursor_mapper)
        self.cursor_actor.GetProperty().SetColor(0.95, 0.8, 0.3)
        self.cursor_actor.GetProperty().SetOpacity(0.6)
        self.cursor_actor.PickableOff()
        self._orientation_widget = self._make_orientation_marker()
        self.overlay_renderer = vtkRenderer()
        self.overlay_renderer.SetLayer(1)
        self.overlay_renderer.InteractiveOff()
        self.overlay_renderer.SetActiveCamera(self.renderer.GetActiveCamera())
        self.render_window.SetNumberOfLayers(max(2, self.render_window.GetNumberOfLayers()))
        self.render_window.AddRenderer(self.overlay_renderer)
        self._press_position: tuple[int, int] | None = None
        # The camera style grabs the event focus on a press, so the release never reaches other observers; the end
        # of its interaction (sent on the release) is observed instead.
        self.interactor.AddObserver("LeftButtonPressEvent", self._on_left_press, 10.0)
        self.interactor.AddObserver("EndInteractionEvent", self._on_left_release)

        self._fill_combo()
        self.combo.currentIndexChanged.connect(lambda _i: self.apply_preset(self.combo.currentData()))
        state.volume_changed.connect(self._on_volume_changed)
        state.cursor_changed.connect(lambda _ijk: self._update_cursor())

    def _on_left_press(self, interactor, _event) -> None:
        self._press_position = interactor.GetEventPosition()

    def _on_left_release(self, interactor, _event) -> None:
        start, self._press_position = self._press_position, None
        x, y = interactor.GetEventPosition()
        if start is not None and abs(x - start[0]) <= 3 and abs(y - start[1]) <= 3:
            self.clicked.emit(int(x), int(y))

    # -- set-up ---------------------------------------------------------------------------------------------
    def _make_orientation_marker(self) -> vtkOrientationMarkerWidget:
        cube = vtkAnnotatedCubeActor()
        # World axes are LPS: +x Left, +y Posterior, +z Superior.
        for setter, text in (
            (cube.SetXPlusFaceText, "L"), (cube.SetXMinusFaceText, "R"),
            (cube.SetYPlusFaceText, "P"), (cube.SetYMinusFaceText, "A"),
            (cube.SetZPlusFaceText, "S"), (cube.SetZMinusFaceText, "I"),
        ):
            setter(text)
        cube.GetCubeProperty().SetColor(0.3, 0.35, 0.45)
        cube.GetTextEdgesProperty().SetColor(0.8, 0.8, 0.8)
        widget = vtkOrientationMarkerWidget()
        widget.SetOrientationMarker(cube)
        widget.SetInteractor(self.interactor)
        widget.SetViewport(0.0, 0.0, 0.2, 0.2)
        widget.SetEnabled(1)
        widget.InteractiveOff()
        return widget

    def _fill_combo(self) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        for preset in self.presets.presets:
            self.combo.addItem(preset.label, preset.name)
            self.combo.setItemData(self.combo.count() - 1, preset.description, Qt.ToolTipRole)
        for iso in self.presets.isosurfaces:
            self.combo.addItem(iso.label, iso.name)
            self.combo.setItemData(self.combo.count() - 1, iso.description, Qt.ToolTipRole)
        self.combo.blockSignals(False)

    def _make_mapper(self):
        prop = self.volume_actor.GetProperty()
        if os.environ.get("SPINEMED_VTK_CPU") == "1" or not _gpu_supported(self.render_window, prop):
            self.mapper_kind = "cpu"
            mapper = vtkFixedPointVolumeRayCastMapper()
        else:
            self.mapper_kind = "gpu"  # vtkSmartVolumeMapper, which picks GPU ray casting here
            mapper = vtkSmartVolumeMapper()
        mapper.SetInputData(self.prepared.image)  # type: ignore[union-attr]
        return mapper

    # -- volume lifecycle -----------------------------------------------------------------------------------
    def _on_volume_changed(self, volume) -> None:
        if self._worker is not None and self._worker.is_running:
            self._worker.cancel()
        self.prepared = None
        self._surfaces.clear()
        self.renderer.RemoveAllViewProps()
        if volume is None or volume.is_2d:
            self.status.setText("")
            self.refresh()
            return
        self.status.setText("preparing…")
        worker = TaskWorker(
            vtk_pipeline.prepare_volume, volume, self.presets, description="Preparing 3D view"
        )
        worker.finished.connect(lambda prepared, for_volume=volume: self._attach(prepared, for_volume))
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(lambda: self.status.setText(""))
        self._start(worker)

    def _start(self, worker: TaskWorker) -> None:
        self._worker = worker
        if self.track is not None:
            self.track(worker)
        worker.start()

    def _attach(self, prepared: vtk_pipeline.PreparedVolume, for_volume=None) -> None:
        if for_volume is not None and for_volume is not self.state.volume:
            return  # a newer volume replaced the one this was prepared for
        self.prepared = prepared
        self.volume_actor.SetMapper(self._make_mapper())
        self.renderer.AddVolume(self.volume_actor)
        self.renderer.AddActor(self.surface_actor)
        self.renderer.AddActor(self.cursor_actor)
        self.cursor_source.SetModelBounds(*prepared.bounds)
        self._update_cursor(render=False)
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(self.combo.findData(self.presets.default_for(prepared.modality).name))
        self.combo.blockSignals(False)
        self.apply_preset(self.combo.currentData(), render=False)
        self.reset_camera()
        note = " (downsampled)" if prepared.downsampled else ""
        self.status.setText(f"{self.mapper_kind.upper()}{note}")
        self.refresh()
        self.ready.emit()

    def _on_failed(self, message: str) -> None:
        self.status.setText("3D unavailable")
        self.failed.emit(message)

    # -- presets --------------------------------------------------------------------------------------------
    def apply_preset(self, name: str, render: bool = True) -> None:
        """Show the volume with preset ``name`` or, for an isosurface preset, the surface."""
        if self.prepared is None or not name:
            return
        preset = self.presets.get(name)
        if self.combo.currentData() != name:
            self.combo.blockSignals(True)
            self.combo.setCurrentIndex(self.combo.findData(name))
            self.combo.blockSignals(False)
        if isinstance(preset, IsosurfacePreset):
            self._show_surface(preset)
            return
        self.volume_actor.SetProperty(vtk_pipeline.volume_property(self.prepared.resolved_presets[name]))
        self.volume_actor.VisibilityOn()
        self.surface_actor.VisibilityOff()
        if render:
            self.refresh()
            self.ready.emit()

    def _show_surface(self, preset: IsosurfacePreset) -> None:
        if preset.name in self._surfaces:
            self._attach_surface(preset, self._surfaces[preset.name])
            return
        self.status.setText("extracting surface…")
        prepared = self.prepared
        worker = TaskWorker(vtk_pipeline.build_isosurface, prepared, preset, description=f"Extracting {preset.label}")
        worker.finished.connect(
            lambda surface: self._on_surface(prepared, preset, surface)
        )
        worker.failed.connect(self._on_failed)
        self._start(worker)

    def _on_surface(self, prepared, preset: IsosurfacePreset, surface) -> None:
        if prepared is not self.prepared:
            return
        self._surfaces[preset.name] = surface
        if self.combo.currentData() == preset.name:
            self._attach_surface(preset, surface)

    def _attach_surface(self, preset: IsosurfacePreset, surface) -> None:
        mapper = self.surface_actor.GetMapper()
        mapper.SetInputData(surface)
        mapper.ScalarVisibilityOff()
        prop = self.surface_actor.GetProperty()
        prop.SetColor(*preset.color)
        prop.SetSpecular(0.2)
        self.surface_actor.VisibilityOn()
        self.volume_actor.VisibilityOff()
        self.status.setText(f"surface: {surface.GetNumberOfCells()} triangles")
        self.refresh()
        self.ready.emit()

    # -- camera and cursor ----------------------------------------------------------------------------------
    def reset_camera(self) -> None:
        """Anterior view, superior up: patient Left on screen right, as in the coronal view."""
        if self.prepared is None:
            return
        x0, x1, y0, y1, z0, z1 = self.prepared.bounds
        centre = ((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2)
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(*centre)
        camera.SetPosition(centre[0], centre[1] - 1000.0, centre[2])  # -y is anterior in LPS
        camera.SetViewUp(0.0, 0.0, 1.0)
        # A little from the patient's left and above, so the 3D shape reads at first glance; a thin axial slab
        # (a few CT slices) is seen mostly from above, or it would show only its edge.
        thin_slab = (z1 - z0) < 0.3 * max(x1 - x0, y1 - y0)
        camera.Azimuth(30.0)
        camera.Elevation(55.0 if thin_slab else 20.0)
        camera.OrthogonalizeViewUp()
        self.renderer.ResetCamera()
        self._zoom_to_fit(self.prepared.bounds)
        self.renderer.ResetCameraClippingRange()

    def _zoom_to_fit(self, bounds, fill: float = 0.85) -> None:
        """Zoom so the projected bounding box fills ``fill`` of the view (ResetCamera fits a sphere, which
        leaves flat slabs like a 20-slice CT small)."""
        width, height = self.render_window.GetSize()
        if width < 10 or height < 10:
            return
        xs, ys = [], []
        for x in bounds[0:2]:
            for y in bounds[2:4]:
                for z in bounds[4:6]:
                    self.renderer.SetWorldPoint(x, y, z, 1.0)
                    self.renderer.WorldToDisplay()
                    dx, dy, _ = self.renderer.GetDisplayPoint()
                    xs.append(dx)
                    ys.append(dy)
        ratio = max((max(xs) - min(xs)) / width, (max(ys) - min(ys)) / height)
        if ratio > 0:
            self.renderer.GetActiveCamera().Zoom(fill / ratio)

    def _update_cursor(self, render: bool = True) -> None:
        point = self.state.cursor_patient_mm()
        if point is None or self.prepared is None:
            return
        self.cursor_source.SetFocalPoint(*(float(v) for v in point))
        if render:
            self.refresh()

    # -- rendering and capture ------------------------------------------------------------------------------
    def refresh(self) -> None:
        # Rendering a never-shown QVTK widget would open a separate X window; wait until it is on screen.
        if self.vtk_widget.isVisible():
            self.render_window.Render()

    def capture_array(self):
        """The rendered 3D view as an RGB uint8 array (rows top to bottom)."""
        return vtk_pipeline.capture_render_window(self.render_window)

    def capture_png(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        vtk_pipeline.write_png(self.render_window, path)
        return path

    def shutdown(self) -> None:
        """Cancel work and release the OpenGL context before the window goes (avoids X errors at exit)."""
        if self._worker is not None and self._worker.is_running:
            self._worker.cancel()
        self._orientation_widget.SetEnabled(0)
        self.render_window.Finalize()
        self.vtk_widget.close()


def _gpu_supported(render_window, prop) -> bool:
    try:
        return bool(vtkGPUVolumeRayCastMapper().IsRenderSupported(render_window, prop))
    except Exception:  # noqa: BLE001 - any GL trouble means: use the CPU mapper
        return False
