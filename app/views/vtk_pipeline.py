"""Qt-free VTK building blocks for the 3D view: numpy -> vtkImageData, transfer functions, isosurfaces, capture.

Preparation functions (:func:`prepare_volume`, :func:`build_isosurface`) are safe to run in a worker thread:
they only build data objects, never touch a render window.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkCommand
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPiecewiseFunction
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D, vtkPolyDataNormals
from vtkmodules.vtkIOImage import vtkPNGWriter
from vtkmodules.vtkRenderingCore import vtkColorTransferFunction, vtkVolumeProperty, vtkWindowToImageFilter

from app.imaging import downsample
from app.presets import IsosurfacePreset, VolumeRenderingPreset, VolumeRenderingPresets
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn, check, report

MAX_INTERACTIVE_DIM = 256
_VTK_SAFE_TYPES = (np.int16, np.uint16, np.uint8, np.int8, np.float32, np.int32, np.uint32)


@dataclass
class PreparedVolume:
    """What the 3D view needs from one volume, built off the GUI thread."""

    image: vtkImageData
    data: np.ndarray  # the (possibly downsampled) array behind ``image``; keeps its memory alive
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    modality: str
    resolved_presets: dict[str, VolumeRenderingPreset] = field(default_factory=dict)
    downsampled: bool = False

    @property
    def bounds(self) -> tuple[float, float, float, float, float, float]:
        b = self.image.GetBounds()
        return tuple(float(v) for v in b)  # type: ignore[return-value]


def numpy_to_image_data(data: np.ndarray, spacing, origin) -> vtkImageData:
    """vtkImageData whose point (x, y, z) = voxel data[i, j, k] (VTK wants i varying fastest: Fortran order)."""
    if data.dtype not in _VTK_SAFE_TYPES:
        data = data.astype(np.float32)
    flat = np.ravel(data, order="F")
    scalars = numpy_support.numpy_to_vtk(flat, deep=True)
    scalars.SetName("intensity")
    image = vtkImageData()
    image.SetDimensions(*data.shape)
    image.SetSpacing(*(float(s) for s in spacing))
    image.SetOrigin(*(float(o) for o in origin))
    image.GetPointData().SetScalars(scalars)
    return image


def prepare_volume(
    volume: Volume,
    presets: VolumeRenderingPresets,
    max_dim: int = MAX_INTERACTIVE_DIM,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> PreparedVolume:
    """Canonical LPS array -> downsampled vtkImageData + presets resolved for its intensities.

    World coordinates are LPS millimetres of the canonical layout (origin = affine translation, axes = voxel
    axes); the small tilt of oblique acquisitions is ignored in 3D.
    """
    report(progress, 0.0, "Preparing 3D view")
    vol = volume.as_closest_lps()
    data, spacing = downsample(vol.data, vol.spacing, max_dim)
    check(cancel)
    report(progress, 0.3, "Converting volume for 3D rendering")
    origin = tuple(float(v) for v in vol.affine[:3, 3])
    image = numpy_to_image_data(data, spacing, origin)
    check(cancel)
    report(progress, 0.8, "Resolving 3D presets")
    resolved = {p.name: p.resolve(data) for p in presets.presets}
    report(progress, 1.0, "3D view ready")
    return PreparedVolume(
        image=image,
        data=data,
        spacing=spacing,  # type: ignore[arg-type]
        origin=origin,  # type: ignore[arg-type]
        modality=vol.modality,
        resolved_presets=resolved,
        downsampled=data.shape != vol.data.shape,
    )


def volume_property(preset: VolumeRenderingPreset) -> vtkVolumeProperty:
    """Colour/opacity transfer functions and shading of an absolute-valued preset."""
    if preset.value_mode != "absolute":
        raise ValueError(f"preset {preset.name!r} must be resolved to absolute values first")
    color = vtkColorTransferFunction()
    for value, r, g, b in preset.color:
        color.AddRGBPoint(value, r, g, b)
    opacity = vtkPiecewiseFunction()
    for value, alpha in preset.opacity:
        opacity.AddPoint(value, alpha)
    prop = vtkVolumeProperty()
    prop.SetColor(color)
    prop.SetScalarOpacity(opacity)
    prop.SetInterpolationTypeToLinear()
    if preset.shade:
        prop.ShadeOn()
    else:
        prop.ShadeOff()
    prop.SetAmbient(preset.ambient)
    prop.SetDiffuse(preset.diffuse)
    prop.SetSpecular(preset.specular)
    return prop


def build_isosurface(
    prepared: PreparedVolume,
    preset: IsosurfacePreset,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
):
    """Flying-edges isosurface (with normals) of the prepared image at the preset's value."""
    report(progress, 0.0, f"Extracting {preset.label}")
    value = preset.absolute_value(prepared.data)
    surface = vtkFlyingEdges3D()
    surface.SetInputData(prepared.image)
    surface.SetValue(0, value)
    surface.ComputeNormalsOff()
    if cancel is not None:
        surface.AddObserver(vtkCommand.ProgressEvent, lambda obj, _ev: obj.SetAbortExecute(cancel.cancelled))
    surface.Update()
    check(cancel)
    report(progress, 0.7, "Smoothing surface normals")
    normals = vtkPolyDataNormals()
    normals.SetInputConnection(surface.GetOutputPort())
    normals.SetFeatureAngle(60.0)
    normals.Update()
    check(cancel)
    report(progress, 1.0, "Surface ready")
    return normals.GetOutput()


def capture_render_window(render_window) -> np.ndarray:
    """RGB pixels (rows top-to-bottom) of what the render window shows, re-rendered into the back buffer."""
    grab = vtkWindowToImageFilter()
    grab.SetInput(render_window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.ShouldRerenderOn()
    grab.Update()
    out = grab.GetOutput()
    width, height, _ = out.GetDimensions()
    pixels = numpy_support.vtk_to_numpy(out.GetPointData().GetScalars()).reshape(height, width, -1)
    return np.ascontiguousarray(pixels[::-1, :, :3])  # VTK rows start at the bottom


def write_png(render_window, path) -> None:
    grab = vtkWindowToImageFilter()
    grab.SetInput(render_window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.ShouldRerenderOn()
    writer = vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
