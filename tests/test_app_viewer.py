"""The main window on the real JPEG 2000 CT series (T11-T12): import, 2D/3D rendering, linked views, W/L, cancel.

Real Qt window under Xvfb, real files, assertions on rendered pixels. Screenshots go to tests/_artifacts/app/.
Run: xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest tests/test_app_*.py -q
"""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from app import imaging
from tests.app_support import (
    T12_LABEL,
    artifacts_dir,
    ct_dicom_dir,
    ct_label_path,
    fraction_not_background,
    label_volume_lps,
    opened_ct_window,
    send_wheel,
    settle,
    widget_gray,
)

pytestmark = pytest.mark.skipif(ct_dicom_dir() is None, reason="CT DICOM sample (resources/samples or ../shared) absent")


@pytest.fixture(scope="module")
def ct_window(qapp, tmp_path_factory):
    """One main window with its own library, the CT sample imported and opened, 2D and 3D ready."""
    with opened_ct_window(tmp_path_factory.mktemp("library")) as window:
        yield window


@pytest.fixture
def ct(ct_window):
    """The CT window reset to the bone preset, cursor at the volume centre, views unzoomed."""
    state = ct_window.state
    state.apply_wl_preset("bone")
    state.set_cursor(tuple(n // 2 for n in state.volume.shape))
    ct_window.viewer.reset_views()
    settle(0.05)
    return ct_window


@pytest.fixture(scope="module")
def labels():
    path = ct_label_path()
    if path is None:
        pytest.skip("label map seg_total_v2.nii.gz not found in ../shared/data/spine-samples/ts_ct_dicom_T11-T12")
    return label_volume_lps(path)


def _t12_axial_slice(labels) -> int:
    return int(np.argmax((labels.data == T12_LABEL).sum(axis=(0, 1))))


def _sample_widget(view, gray: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    """Grey levels of the widget pixels under the centres of ``voxels`` (n, 3)."""
    out = []
    for ijk in voxels:
        p = view.voxel_to_widget(tuple(int(v) for v in ijk))
        x, y = int(p.x()), int(p.y())
        if 0 <= y < gray.shape[0] and 0 <= x < gray.shape[1]:
            out.append(gray[y, x])
    return np.asarray(out)


def test_ct_sample_opens_in_library_browser_info_panel_and_four_views(ct):
    vol = ct.state.volume
    assert vol.shape == (512, 512, 20) and vol.modality == "CT"
    assert len(ct.browser.series_uids()) == 1
    assert ct.browser.series_item(ct.current_series) is not None
    assert ct.info_panel.text("Modality") == "CT"
    assert ct.info_panel.text("Shape") == "512 × 512 × 20"
    assert ct.info_panel.text("Spacing").startswith("0.977 × 0.977 × 2")
    assert ct.info_panel.text("Files").startswith("20 files in")
    assert not ct.viewer.single_image
    for view in (*ct.viewer.slice_views.values(), ct.viewer.volume_view):
        assert view.isVisible() and view.width() > 200 and view.height() > 200
    out = artifacts_dir()
    ct.save_screenshot(out / "ct_main_window.png")
    for name, view in ct.viewer.slice_views.items():
        view.grab().save(str(out / f"ct_{name}.png"))
    ct.viewer.volume_view.capture_png(out / "ct_3d.png")
    assert (out / "ct_3d.png").stat().st_size > 5000


def test_bone_window_shows_t12_brighter_than_background_where_the_labels_say(ct, labels):
    view, state = ct.viewer.axial, ct.state
    k = _t12_axial_slice(labels)
    state.set_cursor((256, 256, k))
    settle(0.05)
    gray = widget_gray(view)
    rng = np.random.default_rng(0)
    bone = np.argwhere(labels.data[:, :, k] == T12_LABEL)
    air = np.argwhere(state.volume.data[:, :, k] < -900)
    bone = bone[rng.choice(len(bone), 300, replace=False)]
    air = air[rng.choice(len(air), 300, replace=False)]
    bone_px = _sample_widget(view, gray, np.c_[bone, np.full(len(bone), k)])
    air_px = _sample_widget(view, gray, np.c_[air, np.full(len(air), k)])
    assert np.median(bone_px) > np.median(air_px) + 60, (np.median(bone_px), np.median(air_px))
    # Anatomy on screen: the vertebra sits posterior (lower half of the axial image), near the midline.
    centre = bone.mean(axis=0)
    p = view.voxel_to_widget((int(centre[0]), int(centre[1]), k))
    top, bottom = view.voxel_to_widget((0, 0, k)).y(), view.voxel_to_widget((0, 511, k)).y()
    assert (p.y() - top) / (bottom - top) > 0.5
    # The brightest 1 % of the displayed slice is high-HU tissue (bone), i.e. the window maps HU upwards.
    shown = view.displayed_slice()
    hu = imaging.extract_slice(state.volume.data, imaging.AXIAL, k)
    brightest = shown >= np.percentile(shown, 99)
    assert np.mean(hu[brightest] > 200) > 0.9


def test_initial_cursor_lands_on_the_spine(ct, labels):
    t12 = np.argwhere(labels.data == T12_LABEL).mean(axis=0)
    i, j, _k = imaging.spine_cursor_guess(ct.state.volume.data, "CT")
    assert abs(i - t12[0]) < 25 and abs(j - t12[1]) < 25, ((i, j), t12)


def test_click_in_axial_moves_sagittal_and_coronal(ct, qtbot):
    axial, sagittal, coronal = ct.viewer.axial, ct.viewer.sagittal, ct.viewer.coronal
    before = widget_gray(sagittal)
    target = (300, 330, ct.state.cursor[2])
    p = axial.voxel_to_widget(target)
    qtbot.mouseClick(axial, Qt.LeftButton, pos=QPoint(int(p.x()), int(p.y())))
    i, j, k = ct.state.cursor
    assert abs(i - 300) <= 1 and abs(j - 330) <= 1 and k == target[2]
    assert sagittal.slice_index == i and coronal.slice_index == j
    settle(0.05)
    assert np.abs(widget_gray(sagittal) - before).mean() > 1.0  # the sagittal view shows another slice
    # The crosshair in the coronal view is drawn at the new i position.
    q = coronal.voxel_to_widget(ct.state.cursor)
    assert abs(q.x() - p.x() * coronal.transform().scale_x / axial.transform().scale_x) < coronal.width()


def test_wheel_scrolls_slices_and_ctrl_wheel_zooms(ct):
    axial = ct.viewer.axial
    k0 = axial.slice_index
    send_wheel(axial, +1)
    assert axial.slice_index == k0 + 1
    send_wheel(axial, -3)
    assert axial.slice_index == k0 - 2
    assert ct.state.cursor[2] == k0 - 2  # the shared cursor moved, so the other views follow
    scale = axial.transform().scale_x
    send_wheel(axial, +2, modifiers=Qt.ControlModifier)
    assert axial.slice_index == k0 - 2
    assert axial.transform().scale_x == pytest.approx(scale * 1.15**2)


def test_right_drag_pans_and_the_wl_tool_makes_left_drag_change_the_window(ct, qtbot):
    axial, state = ct.viewer.axial, ct.state
    start = QPoint(200, 200)
    before = axial.transform().to_widget(0, 0)
    qtbot.mousePress(axial, Qt.RightButton, pos=start)
    qtbot.mouseMove(axial, start + QPoint(30, -20))
    qtbot.mouseRelease(axial, Qt.RightButton, pos=start + QPoint(30, -20))
    after = axial.transform().to_widget(0, 0)
    assert after[0] - before[0] == pytest.approx(30) and after[1] - before[1] == pytest.approx(-20)
    cursor = state.cursor
    ct.wl_tool_action.setChecked(True)
    try:
        qtbot.mousePress(axial, Qt.LeftButton, pos=start)
        qtbot.mouseMove(axial, start + QPoint(0, 40))
        qtbot.mouseRelease(axial, Qt.LeftButton, pos=start + QPoint(0, 40))
    finally:
        ct.wl_tool_action.setChecked(False)
    assert state.level > 500 and state.window == 2000 and state.cursor == cursor


def test_wl_presets_and_shift_drag_change_pixel_intensities(ct, qtbot):
    view, state = ct.viewer.axial, ct.state
    k = state.cursor[2]
    soft = np.argwhere((state.volume.data[:, :, k] > 20) & (state.volume.data[:, :, k] < 80))
    soft = soft[np.random.default_rng(1).choice(len(soft), 300, replace=False)]
    voxels = np.c_[soft, np.full(len(soft), k)]
    bone_px = _sample_widget(view, widget_gray(view), voxels)
    index = ct.wl_combo.findData("soft_tissue")
    ct.wl_combo.setCurrentIndex(index)
    ct.wl_combo.activated.emit(index)
    assert (state.window, state.level) == (400.0, 40.0)
    settle(0.05)
    soft_px = _sample_widget(view, widget_gray(view), voxels)
    assert np.median(soft_px) > np.median(bone_px) + 30, (np.median(soft_px), np.median(bone_px))
    view.grab().save(str(artifacts_dir() / "ct_axial_soft_tissue.png"))

    start = QPoint(view.width() // 2, view.height() // 2)
    qtbot.mousePress(view, Qt.LeftButton, Qt.ShiftModifier, start)
    qtbot.mouseMove(view, start + QPoint(60, 0))
    qtbot.mouseRelease(view, Qt.LeftButton, Qt.ShiftModifier, start + QPoint(60, 0))
    assert state.window > 400 and state.wl_preset is None
    assert ct.wl_combo.currentData() == ""  # "Custom"


def test_3d_view_renders_volume_and_bone_isosurface(ct, qtbot):
    vv = ct.viewer.volume_view
    background = tuple(round(c * 255) for c in (0.08, 0.09, 0.11))
    pixels = vv.capture_array()
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert fraction_not_background(pixels, background) > 0.05
    assert vv.combo.currentData() == "ct_bone"
    with qtbot.waitSignal(vv.ready, timeout=60_000):
        vv.combo.setCurrentIndex(vv.combo.findData("ct_bone_surface"))
    surface = vv.capture_array()
    assert fraction_not_background(surface, background) > 0.03
    assert np.abs(surface.astype(int) - pixels.astype(int)).mean() > 1.0
    vv.capture_png(artifacts_dir() / "ct_3d_bone_surface.png")
    with qtbot.waitSignal(vv.ready, timeout=10_000):
        vv.combo.setCurrentIndex(vv.combo.findData("ct_bone"))


def test_cancelling_a_load_keeps_the_window_usable(ct, qtbot):
    uid, before = ct.current_series, ct.state.volume
    worker = ct.open_series(uid)
    ct.task_status.cancel_button.click()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=30_000)
    assert worker.state == "cancelled"
    assert ct.state.volume is before
    assert "cancelled" in ct.statusBar().currentMessage()
    qtbot.waitUntil(lambda: not ct.task_status.workers, timeout=10_000)
    with qtbot.waitSignal(ct.volume_opened, timeout=60_000):
        ct.open_series(uid)
    assert ct.state.volume is not before and ct.state.volume.shape == (512, 512, 20)
    qtbot.waitUntil(lambda: ct.viewer.volume_view.prepared is not None, timeout=60_000)


def test_double_click_in_browser_opens_the_series(ct, qtbot):
    item = ct.browser.series_item(ct.current_series)
    rect = ct.browser.tree.visualItemRect(item)
    viewport = ct.browser.tree.viewport()
    with qtbot.waitSignal(ct.volume_opened, timeout=60_000):
        # A real double-click starts with a press: item views only activate the item that was pressed.
        qtbot.mouseClick(viewport, Qt.LeftButton, pos=rect.center())
        qtbot.mouseDClick(viewport, Qt.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: ct.viewer.volume_view.prepared is not None, timeout=60_000)
