"""Measurement tools on the 2D views, against geometry with known answers (anisotropic voxels), under Xvfb.

Clicks are real mouse events on real SliceViews at exact (sub-pixel) positions, so the values can be compared to
the geometry to 1e-6: distance, angle, Cobb, and the sagittal tools (lordosis, kyphosis, slip with its Meyerding
grade and disc level; hints, Escape, undo). The Measurements panel's automatic measurements run on the synthetic spine
phantom. With `make screenshots` its picture is docs/screenshots/measure_tools.png (a slip on the lumbar CT sample
of ../shared, when present).
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest tests/test_app_measure.py -q
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QHBoxLayout, QWidget

from app import imaging
from app.measure.layer_2d import LINE_RGB, MeasureLayer
from app.measure.model import MeasurementsModel
from app.state import ViewerState
from app.views.slice_view import SliceView
from core.spine.labelling import SpineLabelling, VertebraLabel
from core.spine.measure.store import MeasurementStore
from core.studies.volume import Volume
from tests.app_support import SAMPLES, qimage_to_rgb, settle, wait_until

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
    from core.synthetic.phantom import spine_phantom

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


# --- sagittal alignment tools: lordosis, kyphosis, slip ----------------------------------------------------------
def _endplate(state, centre_ijk, tilt_deg: float, half_mm: float = 15.0):
    """Two points of a sagittal endplate line through a voxel: (anterior end, posterior end), the posterior end
    ``tilt_deg`` above the anterior one (core.spine.measure.endplate_tilt; +y is posterior)."""
    c = _voxel_mm(state, centre_ijk)
    d = np.array([0.0, math.cos(math.radians(tilt_deg)), math.sin(math.radians(tilt_deg))])
    return c - half_mm * d, c + half_mm * d


def _slip_points(state, fraction: float, width_mm: float = 40.0, tilt_deg: float = 15.0):
    """Corners for a known slip: the lower endplate (posterior-superior P to anterior-superior A, its anterior end
    lower), and the upper posterior-inferior corner U ``fraction`` of the endplate forward of P, 9 mm above it."""
    p = _voxel_mm(state, (60, 68, 16))  # y = 14.4 mm, z = -10 mm
    forward = np.array([0.0, -math.cos(math.radians(tilt_deg)), -math.sin(math.radians(tilt_deg))])
    up = np.array([0.0, forward[2], -forward[1]])  # perpendicular to the endplate in the sagittal plane
    assert up[2] > 0
    a = p + width_mm * forward
    u = p + fraction * width_mm * forward + 9.0 * up
    return u, p, a


def _lumbar_labels(state, with_discs: bool) -> SpineLabelling:
    """L4 above and L5 below the slip's lower endplate (and their disc), at plausible distances."""
    from core.spine.labelling import DiscLabel

    _u, p, a = _slip_points(state, 0.0)
    mid = (p + a) / 2
    l4, l5 = mid + [0, 0, 19.0], mid - [0, 0, 15.0]
    discs = [DiscLabel("L4-L5", mid + [0, 0, 4.5], (0, 0, 1))] if with_discs else []
    return SpineLabelling([VertebraLabel("L4", l4), VertebraLabel("L5", l5)], discs)


def _prompts(layer) -> list[str]:
    said: list[str] = []
    layer.prompt.connect(said.append)
    return said


@pytest.mark.parametrize(("l1_tilt", "s1_tilt", "expected", "text"),
                         [(-20.0, 20.0, 40.0, "40.0° lordosis"), (10.0, -5.0, -15.0, "-15.0° lordosis (kyphotic)")])
def test_lordosis_tool_on_the_sagittal_view(rig, l1_tilt, s1_tilt, expected, text):
    from app.measure.values import format_value, list_value

    state, views, model, layer, store = rig
    state.set_cursor((60, 50, 20))
    said = _prompts(layer)
    layer.set_tool("lordosis")
    assert said[-1] == "Lordosis: click one end of the L1 superior endplate (1/4)"
    l1a, l1p = _endplate(state, (60, 50, 30), l1_tilt)
    s1a, s1p = _endplate(state, (60, 50, 8), s1_tilt)
    for i, p in enumerate((l1a, l1p, s1p, s1a)):  # S1 drawn posterior to anterior: the convention orients it
        assert not model.measurements
        click(views["sagittal"], p)
        if i < 3:
            assert said[-1].endswith(f"({i + 2}/4)")
    (m,) = model.measurements
    assert m.kind == "lordosis" and m.unit == "deg" and m.level == "L1-S1" and m.method == "user:tester"
    assert m.value == pytest.approx(expected, abs=1e-6)
    assert format_value(m) == list_value(m) == text
    assert said[-1] == f"{text} at L1-S1 — Lordosis: click one end of the L1 superior endplate (1/4)"
    exported = json.loads(model.export_json())["measurements"][0]
    assert (exported["kind"], exported["unit"], exported["level"]) == ("lordosis", "deg", "L1-S1")
    assert exported["value"] == pytest.approx(expected)
    assert [(s.kind, s.level) for s in store.list(SERIES)] == [("lordosis", "L1-S1")]
    model.undo_stack.undo()
    assert model.measurements == [] and store.list(SERIES) == []


@pytest.mark.parametrize(("labels", "level"), [({}, "T4-T12"), ({"T5": -6.0, "T12": -60.0}, "T5-T12"),
                                               ({"T3": -6.0}, "T3-T12")])
def test_kyphosis_tool_takes_its_upper_vertebra_from_the_labels(rig, labels, level):
    state, views, model, layer, store = rig
    state.set_cursor((60, 50, 20))
    upper_a, upper_p = _endplate(state, (60, 50, 30), 20.0)
    lower_a, lower_p = _endplate(state, (60, 50, 8), -20.0)
    if labels:  # vertebral centres below the upper line's centre by the given mm
        centre = (upper_a + upper_p) / 2
        state.set_labelling(SpineLabelling([VertebraLabel(n, centre + [0, 0, dz]) for n, dz in labels.items()]))
    layer.set_tool("kyphosis")
    for p in (upper_p, upper_a, lower_a, lower_p):
        click(views["sagittal"], p)
    (m,) = model.measurements
    assert m.kind == "kyphosis" and m.unit == "deg" and m.level == level
    assert m.value == pytest.approx(40.0, abs=1e-6)  # T4 +20, T12 -20: kyphosis = tilt(upper) - tilt(lower)
    assert ("note" in m.details) == (level == "T3-T12")
    assert store.list(SERIES)[0].level == level
    model.undo_stack.undo()
    assert model.measurements == [] and store.list(SERIES) == []


def test_kyphosis_refused_when_the_first_line_is_at_t12_or_below(rig):
    state, views, model, layer, _store = rig
    state.set_cursor((60, 50, 20))
    upper_a, upper_p = _endplate(state, (60, 50, 30), 20.0)
    state.set_labelling(SpineLabelling([VertebraLabel("L1", (upper_a + upper_p) / 2 - [0, 0, 6.0])]))
    said = _prompts(layer)
    layer.set_tool("kyphosis")
    for p in (upper_a, upper_p, *_endplate(state, (60, 50, 8), -20.0)):
        click(views["sagittal"], p)
    assert model.measurements == [] and "at L1" in layer.last_error
    assert said[-1].startswith("Not measured: the first line is at L1")


@pytest.mark.parametrize(("fraction", "grade", "text", "labels", "level"), [
    (0.25, 1, "25.0 % (Meyerding I)", "discs", "L4-L5"),
    (0.60, 3, "60.0 % (Meyerding III)", "vertebrae", "L4-L5"),
    (-0.10, 0, "-10.0 % (retrolisthesis)", None, None),
])
def test_slip_tool_grades_the_slip_and_takes_the_disc_level(rig, fraction, grade, text, labels, level):
    from app.measure.panel import MeasurementsPanel

    state, views, model, layer, store = rig
    state.set_cursor((60, 50, 16))
    if labels:
        state.set_labelling(_lumbar_labels(state, with_discs=labels == "discs"))
    panel = MeasurementsPanel(model, layer)
    panel.tool_buttons["slip"].click()
    assert layer.tool == "slip"
    assert panel.note.text().startswith("Slip: click the posterior-inferior corner of the upper vertebra (1/3)")
    u, p, a = _slip_points(state, fraction)
    click(views["sagittal"], u)
    assert panel.note.text().startswith("Slip: click the posterior-superior corner of the lower vertebra (2/3)")
    click(views["sagittal"], p)
    assert panel.note.text().startswith("Slip: click the anterior-superior corner of the lower vertebra (3/3)")
    click(views["sagittal"], a)
    (m,) = model.measurements
    assert m.kind == "slip" and m.unit == "%" and m.level == level
    assert m.value == pytest.approx(fraction * 100, abs=1e-6) and m.details["grade"] == grade
    assert m.details["slip_mm"] == pytest.approx(fraction * 40.0, abs=1e-6)
    assert panel.rows() == [(m.name, level or "—", text, "%")]
    assert store.list(SERIES)[0].level == level
    # Drawn on its slice: the lower endplate in the line colour at its midpoint.
    view = views["sagittal"]
    mid, _ = view.patient_to_widget((p + a) / 2)
    near = qimage_to_rgb(view.grab().toImage())[int(mid.y()) - 2:int(mid.y()) + 3, int(mid.x()) - 2:int(mid.x()) + 3]
    assert (np.abs(near.reshape(-1, 3).astype(int) - LINE_RGB).max(axis=1) < 40).any()
    model.undo_stack.undo()
    assert model.measurements == [] and store.list(SERIES) == [] and panel.rows() == []
    panel.tool_buttons["slip"].click()  # off: the hint goes
    assert layer.tool is None and panel.note.text() == ""
    panel.close()


def test_sagittal_tools_refuse_other_views_and_escape_cancels_midway(rig):
    state, views, model, layer, _store = rig
    state.set_cursor((60, 50, 16))
    said = _prompts(layer)
    layer.set_tool("slip")
    cursor = state.cursor
    click(views["axial"], _voxel_mm(state, (30, 30, 16)))
    assert layer.points == [] and state.cursor == cursor  # refused, and the click did not move the cursor
    assert said[-1].startswith("Slip is measured on the sagittal view — Slip: click the posterior-inferior")
    u, p, a = _slip_points(state, 0.3)
    click(views["sagittal"], u)
    click(views["sagittal"], p)
    assert len(layer.points) == 2
    QTest.keyClick(views["sagittal"], Qt.Key_Escape)
    assert layer.points == [] and model.measurements == [] and layer.tool == "slip"
    assert said[-1] == "Slip: click the posterior-inferior corner of the upper vertebra (1/3)"
    layer.set_tool("lordosis")
    for point in _endplate(state, (60, 50, 30), -10.0):
        click(views["sagittal"], point)
    QTest.keyClick(views["sagittal"], Qt.Key_Escape)
    assert layer.points == [] and model.measurements == []
    for point in (u, p, a):  # the tool stays on: starting again measures
        click(views["sagittal"], point)
    assert model.measurements == []  # lordosis needs four points
    click(views["sagittal"], _voxel_mm(state, (60, 20, 5)))
    (m,) = model.measurements
    assert m.kind == "lordosis"


LUMBAR_CT = SAMPLES / "tptbox_ct_lumbar_crop_L2-L4"


def _lumbar_sample():
    """The lumbar CT crop (LPS), the L3/L4 body corners of the slip on its mid-sagittal slice (from the body masks:
    L3 posterior-inferior, L4 posterior-superior, L4 anterior-superior) and the body centres of L2-L4."""
    from core.studies import load_series, scan

    def load(name):
        return load_series(scan(LUMBAR_CT / name).series[0]).as_closest_lps()

    ct, sub, vert = (load(f"sub-ct_{name}.nii.gz") for name in ("label-22_ct", "seg-subreg_label-22_msk",
                                                                   "seg-vert_label-22_msk"))
    body = np.isin(sub.data, (49, 50))  # vertebral body and its border
    centres = {n: ct.voxel_to_patient(np.argwhere(body & (vert.data == lab)).mean(axis=0))
               for lab, n in ((21, "L2"), (22, "L3"), (23, "L4"))}
    i = int(np.rint(ct.patient_to_voxel(centres["L3"])[0]))  # the mid-sagittal slice through L3
    corners = []
    for lab, score in ((22, (1, -1)), (23, (1, 1)), (23, (-1, 1))):  # (posterior, superior) weights
        pts = [ct.voxel_to_patient((i, j, k)) for j, k in np.argwhere(body[i] & (vert.data[i] == lab))]
        corners.append(max(pts, key=lambda p, s=score: s[0] * p[1] + s[1] * p[2]))
    return ct, corners, centres


@pytest.mark.skipif(not LUMBAR_CT.is_dir(), reason="lumbar CT sample (../shared) absent")
def test_screenshot_of_a_slip_on_the_lumbar_ct_sample(qtbot, tmp_path, screenshot_path):
    """docs/screenshots/measure_tools.png: an L3-L4 slip placed with the tool on the sagittal view, and the panel."""
    from app.levels.controller import LevelsController
    from app.levels.layer_2d import LevelLayer
    from app.measure.panel import MeasurementsPanel
    from core.spine.labelling import DiscLabel

    ct, corners, centres = _lumbar_sample()
    ct.series_uid = SERIES
    state = ViewerState()
    host = QWidget()
    layout = QHBoxLayout(host)
    view = SliceView(state, "sagittal")
    model = MeasurementsModel(state, MeasurementStore.open(tmp_path / "library.db"))
    layer = MeasureLayer(model)
    panel = MeasurementsPanel(model, layer)
    layout.addWidget(view, 3)
    layout.addWidget(panel, 2)
    host.resize(1120, 560)
    host.show()
    qtbot.addWidget(host)
    qtbot.waitExposed(host)
    state.set_volume(ct)
    model.open_series(SERIES)
    controller = LevelsController(state)
    disc = DiscLabel("L3-L4", (centres["L3"] + centres["L4"]) / 2, centres["L3"] - centres["L4"])
    controller.apply(SpineLabelling([VertebraLabel(n, c) for n, c in centres.items()], [disc]), "labels")
    LevelLayer(controller).attach([view])
    layer.attach([view])
    state.go_to_patient_mm(corners[0] + [0, 30, 25])  # the slice of the corners; the crosshair out of the way
    state.set_window_level(1000, 300)
    view.zoom_by(1.7)
    target, _ = view.patient_to_widget((corners[0] + corners[2]) / 2 + [0, 8, 0])
    view.pan = (view.pan[0] + view.width() / 2 - target.x(), view.pan[1] + view.height() * 0.47 - target.y())
    panel.tool_buttons["slip"].click()
    for p in corners:
        QTest.mouseClick(view, Qt.LeftButton, Qt.NoModifier, view.patient_to_widget(p)[0].toPoint())
    (m,) = model.measurements
    assert m.kind == "slip" and m.level == "L3-L4" and abs(m.value) < 10  # no slip to speak of in this spine
    settle(0.2)
    assert host.grab().save(str(screenshot_path("measure_tools.png")))
    pixels = qimage_to_rgb(view.grab().toImage())
    lower, _ = view.patient_to_widget((corners[1] + corners[2]) / 2)  # the lower endplate line, in line colour
    near = pixels[int(lower.y()) - 2:int(lower.y()) + 3, int(lower.x()) - 2:int(lower.x()) + 3]
    assert (np.abs(near.reshape(-1, 3).astype(int) - LINE_RGB).max(axis=1) < 40).any()
