"""User scale calibration on a radiograph: the core logic (known length -> mm per pixel, stored with the study's
measurements in a real SQLite store, re-measuring, the user's scale before the header's), and the click tool in a
real Qt window under Xvfb (two clicks on a SliceView, values read 'calibrated by user', one undo step)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from app.measure.model import MeasurementsModel
from core.spine.measure.store import MeasurementStore
from core.studies.volume import Volume
from core.xray import measure as xm
from tests.xray_support import radiograph_in_view

SERIES = "1.2.826.0.1.3680043.8.498.1616"


# -- core, no Qt ----------------------------------------------------------------------------------------------
def test_known_length_gives_the_scale_and_every_value_says_calibrated_by_user():
    stored = xm.calibration_measurement((100, 100), (100, 300), 50.0)     # 50 mm over 200 px
    cal = xm.calibration_from_measurements([stored])
    assert cal.mm_per_px_x == pytest.approx(0.25) and cal.mm_per_px_y == pytest.approx(0.25)
    assert cal.source == xm.USER_SOURCE
    d = xm.distance((0, 0), (300, 400), cal)                              # 500 px
    assert (d.unit, d.value) == ("mm", pytest.approx(125.0))
    assert d.text().startswith("125.0 mm (calibrated by user")
    assert cal.describe().startswith("calibrated by user")
    # an oblique segment: the length along it counts, not its x or y extent
    oblique = xm.calibration_from_known_length((0, 0), (30, 40), 10.0)
    assert oblique.mm_per_px_x == pytest.approx(0.2)


@pytest.mark.parametrize("p1, length, words", [((100, 101), 10.0, "shorter than 2 pixels"),
                                               ((100, 300), 0.0, "positive"),
                                               ((100, 300), math.nan, "positive")])
def test_a_calibration_that_cannot_work_is_refused(p1, length, words):
    with pytest.raises(ValueError, match=words):
        xm.calibration_measurement((100, 100), p1, length)


def test_stored_calibration_survives_the_store_and_the_latest_one_wins(tmp_path):
    store = MeasurementStore.open(tmp_path / "library.db")
    store.save(SERIES, xm.calibration_measurement((0, 0), (0, 100), 10.0))
    store.save(SERIES, xm.calibration_measurement((0, 0), (0, 100), 30.0))
    damaged = xm.calibration_measurement((0, 0), (0, 100), 99.0)
    del damaged.details["image_points_px"]
    store.save(SERIES, damaged)                                          # skipped, not fatal
    again = MeasurementStore.open(tmp_path / "library.db").list(SERIES)
    cal = xm.calibration_from_measurements(again)
    assert cal.mm_per_px_x == pytest.approx(0.3)


def test_recalibrated_turns_pixels_into_mm_and_keeps_the_rest():
    px = xm.distance((10, 10), (10, 210)).to_spine_measurement(method="user:a", display_points=[(1, 2, 3)] * 2)
    px.id = 7
    assert px.unit == "px"
    cal = xm.calibration_from_known_length((0, 0), (0, 40), 10.0)        # 0.25 mm/px
    mm = xm.recalibrated(px, cal)
    assert (mm.unit, mm.value) == ("mm", pytest.approx(50.0))
    assert mm.details["scale_source"] == xm.USER_SOURCE and mm.details["scale"].startswith("calibrated by user")
    assert (mm.id, mm.method, mm.points) == (7, "user:a", px.points)
    cobb = xm.cobb(((0, 0), (100, 0)), ((0, 0), (100, 20))).to_spine_measurement()
    assert xm.recalibrated(cobb, cal).value == pytest.approx(cobb.value)
    from core.spine.measure.measurement import SpineMeasurement

    ct = SpineMeasurement(kind="distance", name="d", level=None, value=3.0, unit="mm")   # a CT measurement
    assert xm.recalibrated(ct, cal) is ct


def test_the_users_scale_comes_before_the_dicom_header(tmp_path):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "dx.dcm"
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "DX"
    ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.save_as(path, enforce_file_format=True)
    vol = type("V", (), {"source_paths": [path]})()
    assert xm.effective_calibration(vol, []).source == "ImagerPixelSpacing"
    user = xm.calibration_measurement((0, 0), (0, 100), 18.0)
    assert xm.effective_calibration(vol, [user]).mm_per_px_x == pytest.approx(0.18)


# -- the click tool in a real window ----------------------------------------------------------------------------
@pytest.fixture
def rig(qtbot, tmp_path):
    from app.xray.calibrate import CalibrationTool

    data = np.full((1100, 600), 90, np.int16)
    data[400:404, 100:500] = 2000                                        # a "ruler" 400 px long on row 400
    state, view, measurements, store, undo = radiograph_in_view(qtbot, tmp_path, data, SERIES)
    tool = CalibrationTool(measurements, state)
    yield state, view, measurements, store, undo, tool
    view.close()


def _press(view, pos, button=Qt.LeftButton) -> None:
    for kind in (QEvent.MouseButtonPress, QEvent.MouseButtonRelease):
        buttons = button if kind == QEvent.MouseButtonPress else Qt.NoButton
        QApplication.sendEvent(view, QMouseEvent(kind, pos, view.mapToGlobal(pos), button, buttons, Qt.NoModifier))


def _at(view, state, x, y):
    """Widget position of image pixel (x, y), pixel centres at +0.5."""
    return view.patient_to_widget(state.volume.voxel_to_patient((x - 0.5, y - 0.5, 0.0)))[0]


def test_click_tool_calibrates_and_re_measures_then_undo(rig, qtbot, tmp_path):
    from app.measure.layer_2d import MeasureLayer
    from app.measure.values import format_value
    from app.xray.layer import XrayLandmarks
    from app.xray.panel import XrayPanel

    state, view, measurements, store, undo, tool = rig
    layer = MeasureLayer(measurements, user="tester")
    layer.attach([view])
    tool.attach(view)                       # attached last: sees the clicks first while armed
    panel = XrayPanel(state, XrayLandmarks(undo), calibration=tool)
    qtbot.addWidget(panel)
    panel.show()
    assert "no calibration" in panel.scale_label.text()
    # a distance before calibrating: pixels
    layer.set_tool("distance")
    _press(view, _at(view, state, 100.5, 600.5))
    _press(view, _at(view, state, 100.5, 800.5))
    before = measurements.measurements[-1]
    assert (before.unit, before.value) == ("px", pytest.approx(200.0, abs=0.01))
    layer.set_tool(None)
    # calibrate: 100 mm typed, the ruler's two ends clicked (400 px)
    panel.length_spin.setValue(100.0)
    panel.calibrate_button.click()
    assert tool.armed and "1/2" in panel.calibration_prompt.text()
    _press(view, _at(view, state, 100.5, 401.5))
    assert "2/2" in panel.calibration_prompt.text()
    _press(view, _at(view, state, 500.5, 401.5))
    assert not tool.armed
    assert panel.calibration_prompt.text().startswith("Calibrated by user: 0.25 mm/px"), panel.calibration_prompt.text()
    assert "calibrated by user" in panel.scale_label.text()
    saved = store.list(SERIES)
    assert sorted(m.kind for m in saved) == ["calibration", "distance"]
    dist = next(m for m in measurements.measurements if m.kind == "distance")
    assert (dist.unit, dist.value) == ("mm", pytest.approx(50.0, abs=0.01))
    assert format_value(dist) == "50.0 mm (calibrated by user)"
    assert next(m for m in saved if m.kind == "distance").unit == "mm"
    # a new distance after calibrating is in mm too
    layer.set_tool("distance")
    _press(view, _at(view, state, 200.5, 100.5))
    _press(view, _at(view, state, 200.5, 140.5))
    new = measurements.measurements[-1]
    assert (new.unit, new.value, new.details["scale_source"]) == ("mm", pytest.approx(10.0, abs=0.01),
                                                                  xm.USER_SOURCE)
    layer.set_tool(None)
    view.grab().save(str(tmp_path / "calibrated.png"))
    # a reopened series keeps the scale
    again = MeasurementsModel(state, store)
    again.open_series(SERIES)
    assert xm.calibration_from_measurements(again.measurements).mm_per_px_x == pytest.approx(0.25, abs=1e-4)
    # undo the new distance, then the calibration: one step takes the calibration and the re-measured value back
    undo.undo()
    undo.undo()
    kinds = [(m.kind, m.unit) for m in measurements.measurements]
    assert kinds == [("distance", "px")], kinds
    assert [(m.kind, m.unit) for m in store.list(SERIES)] == [("distance", "px")]
    assert "no calibration" in panel.scale_label.text()


def test_escape_and_right_click_cancel_and_a_bad_length_is_refused(rig):
    state, view, measurements, _store, _undo, tool = rig
    tool.attach(view)
    assert not tool.arm(0.0) and "millimetres" in tool.last_message
    assert tool.arm(25.0)
    _press(view, _at(view, state, 100.5, 100.5))
    _press(view, _at(view, state, 300.5, 100.5), Qt.RightButton)
    assert not tool.armed and tool.last_message == "Calibration cancelled."
    assert tool.arm(25.0)
    _press(view, _at(view, state, 100.5, 100.5))
    _press(view, _at(view, state, 100.5, 100.5))                          # the same spot twice
    assert tool.last_message.startswith("Not calibrated:") and "shorter than 2 pixels" in tool.last_message
    assert measurements.measurements == []
    assert tool.arm(25.0)
    QApplication.sendEvent(view, _key_escape())
    assert not tool.armed


def _key_escape():
    from PySide6.QtGui import QKeyEvent

    return QKeyEvent(QEvent.KeyPress, Qt.Key_Escape, Qt.NoModifier)


def test_calibration_refused_on_a_ct_series(rig):
    state, _view, _measurements, _store, _undo, tool = rig
    state.set_volume(Volume(np.zeros((20, 20, 20), np.int16), np.eye(4), modality="CT", series_uid="ct"))
    assert not tool.arm(25.0) and "plain radiograph" in tool.last_message
