"""Measurement tools on the 2D views, against geometry with known answers (anisotropic voxels), under Xvfb.

Clicks are real mouse events on real SliceViews at exact (sub-pixel) positions, so the values can be compared to
the geometry to 1e-6. The Measurements panel's automatic measurements run on the synthetic spine phantom.
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest tests/test_app_measure.py -q
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QHBoxLayout, QWidget

from app import imaging
from app.measure.layer_2d import LINE_RGB, MeasureLayer
from app.measure.model import MeasurementsModel
from app.state import ViewerState
from app.views.slice_view import SliceView
from core.spine.labelling import SpineLabelling, VertebraLabel
from core.spine.measure_store import MeasurementStore
from core.studies.volume import Volume
from tests.app_support import qimage_to_rgb, settle, wait_until

SERIES = "1.2.826.0.1.3680043.8.498.1"
SPACING = (0.5, 0.8, 2.5)


def _volume() -> Volume:
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = (-30.0, -40.0, -50.0)
    i, j, k = np.meshgrid(np.arange(120), np.arange(100), np.arange(40), indexing="ij")
    data = ((i + j) % 40 * 5 + k).astype(np.int16)  # a faint texture; measurements do not read it
    return Volume(data, affine, modality="CT", series_uid=SERIES)


@pytest.fixture
def rig(qtbot, tmp_path):
    state = ViewerState()
    host = QWidget()
    layout = QHBoxLayout(host)
    views = {o: SliceView(state, o) for o in imaging.ORIENTATIONS}
    for view in views.values():
        layout.addWidget(view)
    host.resize(1200, 420)
    host.show()
    qtbot.addWidget(host)
    qtbot.waitExposed(host)
    state.set_volume(_volume())
    store = MeasurementStore.open(tmp_path / "library.db")
    model = MeasurementsModel(state, store, user="tester")
    model.open_series(SERIES)
    layer = MeasureLayer(model, user="tester")
    layer.attach(views.values())
    yield state, views, model, layer, store
    host.close()  # the views live as long as their host widget


def _voxel_mm(state, ijk) -> np.ndarray:
    return state.volume.voxel_to_patient(ijk)


def _send(view, kind, pos: QPointF, button) -> None:
    buttons = button if kind == QEvent.MouseButtonPress else Qt.NoButton
    event = QMouseEvent(kind, pos, view.mapToGlobal(pos), button, buttons, Qt.NoModifier)
    QApplication.sendEvent(view, event)


def click(view, point_mm, button=Qt.LeftButton) -> None:
    pos, dist = view.patient_to_widget(point_mm)
    assert dist < 1e-6, "the point must lie on the slice shown"
    _send(view, QEvent.MouseButtonPress, pos, button)
    _send(view, QEvent.MouseButtonRelease, pos, button)


def test_distance_on_an_anisotropic_axial_slice(rig):
    state, views, model, layer, store = rig
    state.set_cursor((60, 50, 10))
    layer.set_tool("distance")
    a, b = _voxel_mm(state, (10, 20, 10)), _voxel_mm(state, (90, 70, 10))
    click(views["axial"], a)
    assert layer.points and not model.measurements
    click(views["axial"], b)
    (m,) = model.measurements
    assert m.kind == "distance" and m.unit == "mm" and m.method == "user:tester"
    assert m.value == pytest.approx(math.hypot(80 * 0.5, 50 * 0.8), abs=1e-6)  # 56.57 mm
    assert np.allclose(m.points, [a, b])
    assert [s.value for s in store.list(SERIES)] == [pytest.approx(m.value)]
    # Drawn on its slice (line colour at the midpoint), not on a slice 10 mm away.
    view = views["axial"]
    mid, _ = view.patient_to_widget((a + b) / 2)
    near = qimage_to_rgb(view.grab().toImage())[int(mid.y()) - 2:int(mid.y()) + 3, int(mid.x()) - 2:int(mid.x()) + 3]
    assert (np.abs(near.reshape(-1, 3).astype(int) - LINE_RGB).max(axis=1) < 40).any()
    state.move_slice("axial", 4)
    settle(0.02)
    near = qimage_to_rgb(view.grab().toImage())[int(mid.y()) - 2:int(mid.y()) + 3, int(mid.x()) - 2:int(mid.x()) + 3]
    assert not (np.abs(near.reshape(-1, 3).astype(int) - LINE_RGB).max(axis=1) < 40).any()


def test_angle_on_a_sagittal_slice_is_measured_in_millimetres(rig):
    state, views, model, layer, _store = rig
    state.set_cursor((60, 50, 20))
    layer.set_tool("angle")
    vertex = _voxel_mm(state, (60, 50, 20))
    posterior = _voxel_mm(state, (60, 75, 20))  # 25 voxels x 0.8 mm = 20 mm behind
    superior = _voxel_mm(state, (60, 50, 28))  # 8 slices x 2.5 mm = 20 mm above
    for p in (posterior, vertex, superior):
        click(views["sagittal"], p)
    oblique = _voxel_mm(state, (60, 75, 28))  # 20 mm behind and 20 mm above: 45 degrees from posterior
    for p in (posterior, vertex, oblique):
        click(views["sagittal"], p)
    right, diagonal = model.measurements
    assert right.kind == "angle" and right.unit == "deg" and right.value == pytest.approx(90.0, abs=1e-6)
    assert diagonal.value == pytest.approx(45.0, abs=1e-6)


def _line(state, centre_ijk, tilt_deg: float, half_mm: float = 15.0):
    """Two points of a coronal line through a voxel, tilted ``tilt_deg`` from the left-right direction."""
    c = _voxel_mm(state, centre_ijk)
    d = np.array([math.cos(math.radians(tilt_deg)), 0.0, math.sin(math.radians(tilt_deg))])
    return c - half_mm * d, c + half_mm * d


@pytest.mark.parametrize(("tilt1", "tilt2", "expected"), [(20.0, -25.0, 45.0), (60.0, -60.0, 120.0), (5.0, 5.0, 0.0)])
def test_cobb_angle_on_a_coronal_slice(rig, tilt1, tilt2, expected):
    state, views, model, layer, _store = rig
    state.set_cursor((60, 50, 20))
    layer.set_tool("cobb")
    p0, p1 = _line(state, (60, 50, 28), tilt1)
    q0, q1 = _line(state, (60, 50, 12), tilt2)
    for p in (p0, p1, q1, q0):  # the second line drawn right to left: the convention orients it
        click(views["coronal"], p)
    (m,) = model.measurements
    assert m.kind == "cobb" and m.unit == "deg" and m.details["plane"] == "coronal"
    assert m.value == pytest.approx(expected, abs=1e-6)


def test_right_click_cancels_and_points_belong_to_one_view(rig):
    state, views, model, layer, _store = rig
    state.set_cursor((60, 50, 20))
    layer.set_tool("distance")
    click(views["axial"], _voxel_mm(state, (10, 10, 20)))
    click(views["axial"], _voxel_mm(state, (10, 10, 20)), Qt.RightButton)
    assert layer.points == [] and model.measurements == []
    click(views["axial"], _voxel_mm(state, (10, 10, 20)))
    click(views["sagittal"], _voxel_mm(state, (60, 10, 10)))  # another view: starts over there
    assert len(layer.points) == 1 and layer.view is views["sagittal"]
    layer.set_tool(None)
    cursor = state.cursor
    click(views["axial"], _voxel_mm(state, (30, 30, 20)))  # no tool: a click moves the cursor again
    assert state.cursor != cursor and model.measurements == []


def test_undo_redo_delete_and_reload_keep_the_store_in_step(rig):
    state, views, model, layer, store = rig
    state.set_cursor((60, 50, 10))
    layer.set_tool("distance")
    click(views["axial"], _voxel_mm(state, (10, 20, 10)))
    click(views["axial"], _voxel_mm(state, (50, 20, 10)))
    assert len(store.list(SERIES)) == 1
    model.undo_stack.undo()
    assert model.measurements == [] and store.list(SERIES) == []
    model.undo_stack.redo()
    assert len(model.measurements) == 1 and len(store.list(SERIES)) == 1
    again = MeasurementsModel(state, store)
    again.open_series(SERIES)
    assert [m.value for m in again.measurements] == [pytest.approx(20.0)]
    model.remove(model.measurements[0])
    assert store.list(SERIES) == []


def test_a_measurement_takes_the_level_of_the_nearest_labelled_vertebra(rig):
    state, views, model, layer, _store = rig
    state.set_cursor((60, 50, 20))
    centre = _voxel_mm(state, (60, 50, 20))
    state.set_labelling(SpineLabelling([VertebraLabel("L2", centre + [0, 0, 35]), VertebraLabel("L3", centre)]))
    layer.set_tool("distance")
    click(views["axial"], _voxel_mm(state, (40, 50, 20)))
    click(views["axial"], _voxel_mm(state, (80, 50, 20)))
    assert model.measurements[-1].level == "L3"
    click(views["axial"], _voxel_mm(state, (0, 0, 20)))
    click(views["axial"], _voxel_mm(state, (5, 0, 20)))
    assert model.measurements[-1].level is None  # 40 mm from any level


def test_measurements_panel_tools_and_automatic_measurements_on_the_phantom(qtbot, tmp_path):
    from app.measure.panel import MeasurementsPanel
    from core.spine.phantom import spine_phantom

    phantom = spine_phantom("L1", "L4", shape=(120, 120, 100), spacing=(1.5, 1.5, 1.5), ribs=False)
    volume = phantom.volume
    volume.series_uid = SERIES
    state = ViewerState()
    state.set_volume(volume)
    state.set_labelling(SpineLabelling([VertebraLabel(n, c) for n, c in phantom.centres.items()]))
    store = MeasurementStore.open(tmp_path / "library.db")
    model = MeasurementsModel(state, store)
    model.open_series(SERIES)
    layer = MeasureLayer(model)
    panel = MeasurementsPanel(model, layer)
    qtbot.addWidget(panel)
    panel.show()
    panel.tool_buttons["angle"].click()
    assert layer.tool == "angle" and not panel.tool_buttons["distance"].isChecked()
    panel.tool_buttons["angle"].click()
    assert layer.tool is None
    worker = panel.run_automatic()
    wait_until(lambda: not worker.is_running, 60, "automatic measurements")
    assert worker.state == "finished", worker.error
    rows = panel.rows()
    heights = [r for r in rows if r[0].startswith("vertebral body height loss")]
    discs = [r for r in rows if r[0].startswith("disc height")]
    assert [r[1] for r in heights] == ["L1", "L2", "L3", "L4"] and all(r[3] == "%" for r in heights)
    assert [r[1] for r in discs] == ["L1-L2", "L2-L3", "L3-L4"] and all(r[3] == "mm" for r in discs)
    for m in model.measurements:
        if m.kind == "body_heights":  # the phantom's lumbar bodies are 27 mm high
            assert m.details["middle_mm"] == pytest.approx(27.0, abs=2.5)
        if m.kind == "disc_height":  # and its lumbar discs 10 mm
            assert m.value == pytest.approx(10.0, abs=2.5)
    count = len(model.measurements)
    assert len(store.list(SERIES)) == count
    worker = panel.run_automatic()  # a re-run replaces the automatic ones
    wait_until(lambda: not worker.is_running, 60, "automatic measurements again")
    assert len(model.measurements) == count and len(store.list(SERIES)) == count
    assert "automatic measurement" in panel.note.text()


def test_a_measurement_follows_its_level_when_the_levels_are_renamed(rig):
    from app.levels.controller import LevelsController

    state, views, model, layer, store = rig
    state.set_cursor((60, 50, 20))
    centre = _voxel_mm(state, (60, 50, 20))
    controller = LevelsController(state)
    controller.apply(SpineLabelling([VertebraLabel("L2", centre + [0, 0, 35]), VertebraLabel("L3", centre)]), "set")
    layer.set_tool("distance")
    click(views["axial"], _voxel_mm(state, (40, 50, 20)))
    click(views["axial"], _voxel_mm(state, (80, 50, 20)))
    assert model.measurements[-1].level == "L3"
    controller.rename(0, "L3")  # the user says the upper one is L3: the lower one becomes L4
    assert model.measurements[-1].level == "L4" and store.list(SERIES)[-1].level == "L4"
    controller.undo_stack.undo()
    assert model.measurements[-1].level == "L3" and store.list(SERIES)[-1].level == "L3"
