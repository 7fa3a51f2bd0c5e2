"""Level markers in the 3D view: a sphere and a billboard name at each vertebra centroid, a ring at each disc.

They live in the view's overlay renderer, so the bone rendering never hides them. A click (no drag) on a marker or
its name selects the level; a click on the rendered spine selects the vertebra whose centroid is nearest to the
picked point, when it is within a vertebral-body radius.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vtkmodules.vtkFiltersSources import vtkRegularPolygonSource, vtkSphereSource
from vtkmodules.vtkRenderingCore import vtkActor, vtkBillboardTextActor3D, vtkPolyDataMapper
from vtkmodules.vtkRenderingVolume import vtkVolumePicker

from app.levels import style
from app.levels.controller import LevelsController

TEXT_OFFSET_PX = 12  # names alternate right / left of their markers, so neighbours do not overlap at low zoom
PICK_PX = 14


@dataclass
class LevelProps:
    kind: str  # "vertebra" | "disc"
    index: int
    name: str | None
    point: tuple[float, float, float]
    actors: list  # vtk props, all in the overlay renderer


def _rgb(color: tuple[int, int, int]) -> tuple[float, float, float]:
    return tuple(c / 255.0 for c in color)  # type: ignore[return-value]


class LevelActors3D:
    def __init__(self, volume_view, controller: LevelsController) -> None:
        self.view = volume_view
        self.controller = controller
        self.state = controller.state
        self.renderer = volume_view.overlay_renderer
        self.props: list[LevelProps] = []
        self.state.labelling_changed.connect(lambda _l: self.rebuild())
        self.state.level_selected.connect(lambda _n: self.rebuild())
        volume_view.clicked.connect(self.on_click)
        volume_view.ready.connect(self.rebuild)

    # -- building -------------------------------------------------------------------------------------------
    def rebuild(self) -> None:
        for p in self.props:
            for actor in p.actors:
                self.renderer.RemoveViewProp(actor)
        self.props = []
        labelling = self.state.labelling
        if labelling is not None and self.state.volume is not None and not self.state.volume.is_2d:
            selected = self.state.selected_level
            for i, d in enumerate(labelling.discs):
                self.props.append(LevelProps("disc", i, d.name, d.centre,
                                             [self._disc_ring(d.centre, d.normal, bool(d.name) and d.name == selected)]))
            for i, v in enumerate(labelling.vertebrae):
                chosen = bool(v.name) and v.name == selected
                rgb = style.SELECTED_RGB if chosen else style.MARKER_RGB if v.name else style.UNNAMED_RGB
                actors = [self._sphere(v.centroid, rgb, chosen),
                          self._text(v.centroid, v.name or "?", rgb, chosen, _side(i))]
                self.props.append(LevelProps("vertebra", i, v.name, v.centroid, actors))
        for p in self.props:
            for actor in p.actors:
                self.renderer.AddViewProp(actor)
        self.view.refresh()

    def _sphere(self, centre, rgb, selected: bool) -> vtkActor:
        source = vtkSphereSource()
        source.SetCenter(*centre)
        source.SetRadius(style.SELECTED_SPHERE_RADIUS_MM if selected else style.SPHERE_RADIUS_MM)
        source.SetThetaResolution(24)
        source.SetPhiResolution(16)
        actor = _actor(source)
        prop = actor.GetProperty()
        prop.SetColor(*_rgb(rgb))
        # Mostly ambient: the marker keeps its colour from every side (and tests can find it on screen).
        prop.SetAmbient(0.75)
        prop.SetDiffuse(0.3)
        prop.SetSpecular(0.0)
        return actor

    def _text(self, centre, text: str, rgb, selected: bool, side: int) -> vtkBillboardTextActor3D:
        actor = vtkBillboardTextActor3D()
        actor.SetInput(text)
        actor.SetPosition(*centre)
        actor.SetDisplayOffset(side * TEXT_OFFSET_PX, 0)
        tp = actor.GetTextProperty()
        tp.SetFontSize(20 if selected else 16)
        tp.SetBold(True)
        tp.SetShadow(True)
        tp.SetColor(*_rgb(rgb if selected else style.TEXT_RGB))
        if side > 0:
            tp.SetJustificationToLeft()
        else:
            tp.SetJustificationToRight()
        tp.SetVerticalJustificationToCentered()
        return actor

    def _disc_ring(self, centre, normal, selected: bool) -> vtkActor:
        source = vtkRegularPolygonSource()
        source.SetCenter(*centre)
        source.SetNormal(*normal)
        source.SetRadius(style.DISC_HALF_WIDTH_MM)
        source.SetNumberOfSides(40)
        source.GeneratePolygonOff()
        actor = _actor(source)
        prop = actor.GetProperty()
        prop.SetColor(*_rgb(style.SELECTED_RGB if selected else style.DISC_RGB))
        prop.SetLineWidth(3.0 if selected else 2.0)
        prop.SetAmbient(1.0)
        prop.SetDiffuse(0.0)
        prop.SetOpacity(0.8)
        return actor

    # -- picking --------------------------------------------------------------------------------------------
    def display_position(self, point) -> tuple[float, float]:
        """VTK display coordinates (origin bottom left) of a patient point in the current camera."""
        self.renderer.SetWorldPoint(*point, 1.0)
        self.renderer.WorldToDisplay()
        x, y, _ = self.renderer.GetDisplayPoint()
        return x, y

    def prop_at(self, x: int, y: int) -> LevelProps | None:
        """The vertebra marker (sphere or name) under a display position, nearest first."""
        best, best_d = None, float(PICK_PX)
        for p in self.props:
            if p.kind != "vertebra":
                continue
            px, py = self.display_position(p.point)
            d = float(np.hypot(px - x, py - y))
            reach = (x - px) * _side(p.index)  # how far along the side the name is written on
            on_text = TEXT_OFFSET_PX <= reach <= TEXT_OFFSET_PX + 12 * max(2, len(p.name or "?")) and abs(y - py) <= 12
            if d <= best_d or (on_text and best is None):
                best, best_d = p, min(d, best_d)
        return best

    def on_click(self, x: int, y: int) -> None:
        labelling = self.state.labelling
        if labelling is None:
            return
        hit = self.prop_at(x, y)
        if hit is not None:
            if hit.name:
                self.state.select_level(hit.name)
            return
        picker = vtkVolumePicker()
        picker.SetTolerance(0.002)
        if picker.Pick(x, y, 0.0, self.view.renderer) and picker.GetProp3D() is not None:
            # The picked point is on the bone surface, a body radius or so from the centroid inside.
            index = self.controller.vertebra_near(picker.GetPickPosition(), radius_mm=1.5 * style.VERTEBRA_PICK_MM)
            if index is not None and labelling.vertebrae[index].name:
                self.state.select_level(labelling.vertebrae[index].name)


def _side(index: int) -> int:
    """+1: the name is written right of the marker, -1: left (alternating along the spine)."""
    return 1 if index % 2 == 0 else -1


def _actor(source) -> vtkActor:
    mapper = vtkPolyDataMapper()
    mapper.SetInputConnection(source.GetOutputPort())
    actor = vtkActor()
    actor.SetMapper(mapper)
    return actor
