"""Radiograph landmarks in the viewer under Xvfb: overlays on a real SliceView, a corner dragged with real mouse
events (the Cobb angle follows, the stored measurement too), undo, reopening restores the landmarks, and the
Radiograph tab's model run (not confident on a non-spine image; landmarks on a real radiograph of ../shared)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from app.measure.model import MeasurementsModel
from app.xray.layer import XrayLandmarks, XrayLayer
from app.xray.panel import XrayPanel
from core.studies.volume import Volume
from core.xray.cobb import regional_cobb
from core.xray.measurements import SOURCE, cobb_measurements, landmarks_from_measurements
from tests.app_support import wait_until
from tests.xray_support import aasce_dir, column, radiograph_in_view

SERIES = "1.2.826.0.1.3680043.8.498.16"


def _radiograph(data_rows_cols: np.ndarray) -> Volume:
    data = np.ascontiguousarray(data_rows_cols.T)[:, :, None].astype(np.int16)   # i = column, j = row
    return Volume(data, np.diag([0.15, 0.15, 1.0, 1.0]), modality="DX", series_uid=SERIES)


def _landmarks():
    return column(np.repeat(np.linspace(14, -12, 17), 2), pitch=55, half_width=30, height=38, top=(300, 60))


@pytest.fixture
def rig(qtbot, tmp_path):
    state, view, measurements, store, undo = radiograph_in_view(qtbot, tmp_path, np.full((1100, 600), 100), SERIES)
    model = XrayLandmarks(undo, user="tester")
    layer = XrayLayer(model, state)
    layer.attach(view)
    model.changed.connect(lambda: measurements.replace_source(
        SOURCE, [] if model.landmarks is None else cobb_measurements(model.landmarks, model.method)))
    yield state, view, model, measurements, store, undo
    view.close()


def _send(view, kind, pos: QPointF) -> None:
    button = Qt.LeftButton if kind != QEvent.MouseMove else Qt.NoButton
    buttons = Qt.LeftButton if kind != QEvent.MouseButtonRelease else Qt.NoButton
    QApplication.sendEvent(view, QMouseEvent(kind, pos, view.mapToGlobal(pos), button, buttons, Qt.NoModifier))


def test_drag_a_corner_and_the_angle_follows_then_undo(rig):
    state, view, model, _measurements, store, undo = rig
    lm = _landmarks()
    model.set_landmarks(lm, "auto:spinemed-xray-landmarks@1.0")
    stored = store.list(SERIES)
    assert [m.details["region"] for m in stored] == ["main thoracic"]
    before = stored[0].value
    assert before == pytest.approx(regional_cobb(lm)["main thoracic"].angle, abs=0.01)
    # drag T1's upper-right corner 40 px down: T1's superior endplate tilts, the curve's angle changes
    start = view.patient_to_widget(state.volume.voxel_to_patient((lm[1, 0] - 0.5, lm[1, 1] - 0.5, 0)))[0]
    end = view.patient_to_widget(state.volume.voxel_to_patient((lm[1, 0] - 0.5, lm[1, 1] + 39.5, 0)))[0]
    _send(view, QEvent.MouseButtonPress, start)
    _send(view, QEvent.MouseMove, (start + end) / 2)
    _send(view, QEvent.MouseMove, end)
    _send(view, QEvent.MouseButtonRelease, end)
    assert model.landmarks[1] == pytest.approx([lm[1, 0], lm[1, 1] + 40], abs=0.05)
    assert model.method == "user:tester"
    moved = lm.copy()
    moved[1, 1] += 40
    expected = sorted(c.angle for c in regional_cobb(moved).values() if c)
    assert expected != [pytest.approx(before, abs=1)]
    after = store.list(SERIES)
    assert sorted(m.value for m in after) == pytest.approx(expected, abs=0.02)
    assert {m.method for m in after} == {"user:tester"}
    undo.undo()
    assert model.landmarks == pytest.approx(lm)
    assert [m.value for m in store.list(SERIES)] == [pytest.approx(before, abs=0.01)]
    # what a reopened series shows: the stored landmarks
    again = MeasurementsModel(state, store)
    again.open_series(SERIES)
    restored, method = landmarks_from_measurements(again.measurements)
    assert restored == pytest.approx(lm, abs=0.01) and method.startswith("auto:")


def test_overlay_is_painted_on_the_radiograph(rig):
    _state, view, model, *_ = rig
    blank = view.grab().toImage()
    model.set_landmarks(_landmarks(), "auto:spinemed-xray-landmarks@1.0")
    painted = view.grab().toImage()
    diff = sum(blank.pixelColor(x, y) != painted.pixelColor(x, y) for x in range(0, 600, 6) for y in range(0, 900, 6))
    assert diff > 100   # outlines, names and curve lines drawn


def test_find_on_a_non_spine_image_says_not_confident(rig, qtbot):
    state, _view, model, *_ = rig
    rng = np.random.default_rng(0)
    state.set_volume(_radiograph(rng.integers(0, 4000, (1100, 600))))
    panel = XrayPanel(state, model)
    qtbot.addWidget(panel)
    worker = panel.find()
    wait_until(lambda: not worker.is_running, 120, "the landmark model")
    assert panel.status.text().startswith("Not confident"), panel.status.text()
    assert model.landmarks is None


def test_find_on_a_real_radiograph(rig, qtbot):
    from PIL import Image

    from core.xray.landmarks import default_model_dir

    state, _view, model, _measurements, store, _undo = rig
    root = aasce_dir()
    name = json.loads((default_model_dir() / "validation_files.json").read_text())["validation_files"][1]
    with Image.open(root / "images" / name) as im:
        state.set_volume(_radiograph(np.asarray(im.convert("L"))))
    panel = XrayPanel(state, model)
    qtbot.addWidget(panel)
    worker = panel.find()
    wait_until(lambda: not worker.is_running, 120, "the landmark model")
    assert model.landmarks is not None, panel.status.text()
    assert "thoracic" in panel.curves_label.text()
    assert store.list(SERIES), "the Cobb angles are stored"


def test_main_window_radiograph_tab_context_and_reopen(qapp, tmp_path):
    """In the workstation: a radiograph imported and opened, landmarks set, the Cobb angle goes to the
    consultation's study context and the store; reopening the series shows the stored landmarks again."""
    from PIL import Image

    from tests.app_support import opened_window, settle

    path = tmp_path / "spine_ap.png"
    Image.fromarray(np.random.default_rng(3).integers(60, 200, (1100, 600), dtype=np.uint8)).save(path)
    with opened_window(tmp_path, path, wait_3d=False, size=(1400, 900)) as window:
        tabs = window.spine.tabs
        assert "Radiograph" in [tabs.tabText(i) for i in range(tabs.count())]
        assert window.xray.panel.find_button.isEnabled()
        lm = _landmarks()
        window.xray.model.set_landmarks(lm, "auto:spinemed-xray-landmarks@1.0")
        names = [m.name for m in window.chat.context.measurements]
        assert "Cobb angle, main thoracic curve" in names, names
        series = window.current_series
        opened = []
        window.volume_opened.connect(opened.append)
        window.open_series(series)
        wait_until(lambda: opened, what="the radiograph to reopen")
        settle(0.2)
        assert window.xray.model.landmarks == pytest.approx(lm, abs=0.01)
        window.spine.undo_stack.clear()


def _click(view, point_mm) -> None:
    pos, _dist = view.patient_to_widget(point_mm)
    for kind in (QEvent.MouseButtonPress, QEvent.MouseButtonRelease):
        buttons = Qt.LeftButton if kind == QEvent.MouseButtonPress else Qt.NoButton
        QApplication.sendEvent(view, QMouseEvent(kind, pos, view.mapToGlobal(pos), Qt.LeftButton, buttons,
                                                 Qt.NoModifier))


@pytest.mark.parametrize("dicom", [False, True])
def test_distance_tool_on_a_radiograph_says_its_scale(rig, tmp_path, dicom):
    """PNG/JPEG: pixels, '(no calibration)'; DICOM DX with ImagerPixelSpacing 0.2 mm: mm, magnification caveat."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from app.measure.layer_2d import MeasureLayer
    from app.measure.values import format_value
    from core.library.opener import load_volume

    state, view, _model, measurements, _store, _undo = rig
    if dicom:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = tmp_path / "dx.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality, ds.PatientID = generate_uid(), generate_uid(), "DX", "x"
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 500, 300, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.ImagerPixelSpacing = [0.2, 0.2]
        ds.PixelData = np.random.default_rng(0).integers(0, 4000, (500, 300), dtype=np.uint16).tobytes()
        ds.save_as(path, enforce_file_format=True)
        volume, _ = load_volume(path)
        volume.series_uid = SERIES
        state.set_volume(volume)
    layer = MeasureLayer(measurements, user="tester")
    layer.attach([view])
    layer.set_tool("distance")
    vol = state.volume
    _click(view, vol.voxel_to_patient((10, 20, 0)))
    _click(view, vol.voxel_to_patient((10 + 30, 20 + 40, 0)))   # 50 px apart
    m = measurements.measurements[-1]
    if dicom:
        assert (m.unit, m.value) == ("mm", pytest.approx(10.0, abs=1e-6))
        assert m.details["scale_source"] == "ImagerPixelSpacing" and "magnif" in format_value(m)
    else:
        assert (m.unit, m.value) == ("px", pytest.approx(50.0, abs=1e-6))
        assert format_value(m) == "50.0 px (no calibration)"
