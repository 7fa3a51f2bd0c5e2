"""Level labels in the main window on the bundled CT (T11-T12): painted at the right pixels in 2D and 3D, click to
select (the chat chip follows), chat level links move the cursor, drag, rename, undo, persistence, label-map import,
auto-label with its "name one level" message, a distance measurement sent to the chat context.

Real window under Xvfb, real files, assertions on rendered pixels:
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest tests/test_app_levels*.py -q
Its picture is README's docs/screenshots/levels_2d_3d.png when `make screenshots` runs it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtTest import QTest

from app.levels import dialogs, style
from tests.app_support import (
    artifacts_dir,
    ct_dicom_dir,
    ct_label_path,
    opened_ct_window,
    qimage_to_rgb,
    settle,
    wait_until,
)

pytestmark = pytest.mark.skipif(ct_dicom_dir() is None, reason="CT DICOM sample (resources/samples or ../shared) absent")

REPO = Path(__file__).resolve().parents[1]
# Vertebral-body centres of the sample in voxels of the LPS-canonical volume (i, j, k), read off the
# TotalSegmentator mask (T11 is cut by the top of the field of view: its centre is the whole-mask centre).
KNOWN_VOXELS = {"T11": (250.6, 347.6, 13.2), "T12": (245.3, 334.5, 8.6)}


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    with opened_ct_window(tmp_path_factory.mktemp("levels-library")) as win:
        yield win


def known_labelling(volume, series_uid: str):
    """T11, T12 and their disc from the known voxel centres (no ../shared needed)."""
    from core.spine.labelling import DiscLabel, Provenance, SpineLabelling, VertebraLabel

    pts = {name: volume.voxel_to_patient(ijk) for name, ijk in KNOWN_VOXELS.items()}
    return SpineLabelling(
        vertebrae=[VertebraLabel("T11", pts["T11"]), VertebraLabel("T12", pts["T12"])],
        discs=[DiscLabel("T11-T12", (pts["T11"] + pts["T12"]) / 2, pts["T11"] - pts["T12"])],
        provenance=Provenance("test"), series_uid=series_uid, confidence=1.0, anchor="T12",
    )


@pytest.fixture
def win(window):
    """The window with the known labelling (fresh undo history), nothing selected, views reset, no tool on."""
    spine = window.spine
    spine.measure_panel.set_tool(None)
    spine.controller.open_series(window.current_series)
    spine.controller.apply(known_labelling(window.state.volume, window.current_series), "Test labels")
    spine.undo_stack.clear()
    window.state.select_level(None)
    window.viewer.reset_views()
    window.spine.tabs.setCurrentIndex(0)
    settle(0.05)
    return window


def _centroid(win, name: str) -> np.ndarray:
    return np.asarray(win.state.labelling.vertebra(name).centroid)


def _go_to(win, name: str, zoom: float = 1.0) -> None:
    """Cursor on the centroid, so every 2D view shows the slice through it; zoom the 2D views about it."""
    win.state.go_to_patient_mm(_centroid(win, name))
    if zoom != 1.0:
        for view in win.viewer.slice_views.values():
            view.zoom_by(zoom, view.voxel_to_widget(win.state.cursor))
    settle(0.05)


def _pixel(view, pos) -> np.ndarray:
    rgb = qimage_to_rgb(view.grab().toImage())
    return rgb[round(pos.y()), round(pos.x())].astype(int)


def _close_to(pixel, rgb, tol: int = 40) -> bool:
    return int(np.abs(np.asarray(pixel) - np.asarray(rgb)).max()) <= tol


def test_labels_are_painted_at_the_projected_centroids_in_all_2d_views(win):
    _go_to(win, "T12")
    centre = _centroid(win, "T12")
    for view in win.viewer.slice_views.values():
        pos, dist = view.patient_to_widget(centre)
        assert dist < 1.5, (view.orientation, dist)
        assert _close_to(_pixel(view, pos), style.MARKER_RGB), (view.orientation, _pixel(view, pos))
    # Far from the slice the marker is not drawn: the same pixel shows the image (grey).
    sag = win.viewer.sagittal
    pos, _ = sag.patient_to_widget(centre)
    win.state.move_slice("sagittal", 60)  # 60 voxels = 59 mm to the patient's left
    settle(0.05)
    pixel = _pixel(sag, pos)
    assert not _close_to(pixel, style.MARKER_RGB, 60) and np.ptp(pixel) < 12, pixel
    win.state.move_slice("sagittal", -60)
    # The selected level is highlighted.
    win.state.select_level("T12")
    settle(0.05)
    pos, _ = sag.patient_to_widget(centre)
    assert _close_to(_pixel(sag, pos), style.SELECTED_RGB), _pixel(sag, pos)
    assert win.spine.panel.level_rows() == ["T11", "T11-T12", "T12"]


def test_click_on_a_label_selects_the_level_and_the_chat_chip_shows_it(win):
    _go_to(win, "T11", zoom=3.0)
    view = win.viewer.sagittal
    pos, _ = view.patient_to_widget(_centroid(win, "T11"))
    cursor_before = win.state.cursor
    QTest.mouseClick(view, Qt.LeftButton, Qt.NoModifier, pos.toPoint())
    settle(0.05)
    assert win.state.selected_level == "T11"
    assert "T11" in win.chat.level_chip.text() and win.chat.selected_level == "T11"
    assert win.chat.context.selected_level == "T11"
    assert win.state.cursor == cursor_before  # clicking a label does not move the cursor
    assert [i.text(0).strip() for i in win.spine.panel.tree.selectedItems()] == ["T11"]
    # Clicking on the vertebra (8 mm in front of its centre, off the marker) moves the cursor and selects it too.
    body = view.patient_to_widget(_centroid(win, "T12") + np.array([0.0, -8.0, 0.0]))[0]
    assert win.spine.layer.marker_at(view, body) is None
    QTest.mouseClick(view, Qt.LeftButton, Qt.NoModifier, body.toPoint())
    settle(0.05)
    assert win.state.selected_level == "T12" and "T12" in win.chat.level_chip.text()
    assert win.state.cursor != cursor_before


def test_chat_level_link_selects_the_level_and_moves_the_cursor(win):
    win.state.set_cursor((10, 10, 0))
    win.chat._on_anchor(QUrl("level:T12"))  # what clicking a level link in the transcript does
    settle(0.05)
    expected = tuple(round(v) for v in KNOWN_VOXELS["T12"])
    assert win.state.cursor == expected
    assert win.state.selected_level == "T12" and "T12" in win.chat.level_chip.text()
    win.chat.level_clicked.emit("T11-T12")  # a disc goes to its centre
    assert win.state.selected_level == "T11-T12"
    assert win.chat.context.levels_in_view == ["T11", "T11-T12", "T12"]


def test_drag_moves_the_stored_centroid_and_undo_redo_restore_it(win):
    from core.spine.store import LevelStore

    _go_to(win, "T12", zoom=3.0)
    view = win.viewer.sagittal
    before = _centroid(win, "T12")
    start, _ = view.patient_to_widget(before)
    end = QPoint(int(start.x()) + 40, int(start.y()))
    QTest.mousePress(view, Qt.LeftButton, Qt.NoModifier, start.toPoint())
    for step in (10, 25, 40):
        QTest.mouseMove(view, QPoint(int(start.x()) + step, int(start.y())))
    QTest.mouseRelease(view, Qt.LeftButton, Qt.NoModifier, end)
    settle(0.05)
    after = _centroid(win, "T12")
    mm_per_px = win.state.volume.spacing[1] / view.transform().scale_x
    moved = after - before
    # Sagittal: screen right is posterior (+y); the drag stays in the sagittal plane.
    assert moved[1] == pytest.approx((end.x() - start.toPoint().x()) * mm_per_px, abs=0.6)
    assert abs(moved[0]) < 1e-6 and abs(moved[2]) < 0.6
    stored = LevelStore(win.library.db).load(win.current_series)
    assert np.allclose(stored.vertebra("T12").centroid, after)
    assert stored.provenance.method == "user" and stored.provenance.based_on == "test"
    assert _close_to(_pixel(view, view.patient_to_widget(after)[0]), style.SELECTED_RGB)
    win.spine.undo_stack.undo()
    assert np.allclose(_centroid(win, "T12"), before)
    assert np.allclose(LevelStore(win.library.db).load(win.current_series).vertebra("T12").centroid, before)
    win.spine.undo_stack.redo()
    assert np.allclose(_centroid(win, "T12"), after)


def test_rename_by_double_click_renames_the_others_and_undo_restores(win, monkeypatch):
    asked = []
    monkeypatch.setattr(dialogs, "ask_level_name", lambda parent, labelling, index: asked.append(index) or "L1")
    _go_to(win, "T12")
    view = win.viewer.sagittal
    pos, _ = view.patient_to_widget(_centroid(win, "T12"))
    QTest.mouseDClick(view, Qt.LeftButton, Qt.NoModifier, pos.toPoint())
    settle(0.05)
    labelling = win.state.labelling
    assert asked == [1]
    assert labelling.names() == ["T12", "L1"] and [d.name for d in labelling.discs] == ["T12-L1"]
    assert labelling.provenance.method == "user"
    assert win.state.selected_level == "L1"
    assert win.spine.panel.level_rows() == ["T12", "T12-L1", "L1"]
    assert win.chat.context.levels_in_view == ["T12", "T12-L1", "L1"]
    win.spine.undo_stack.undo()
    assert win.state.labelling.names() == ["T11", "T12"]
    assert win.state.selected_level is None  # L1 no longer exists
    # A disc name is refused with a message, nothing changes.
    with pytest.raises(ValueError, match="disc"):
        win.spine.controller.rename(0, "T11-T12")
    assert win.state.labelling.names() == ["T11", "T12"]


def test_labelling_and_measurements_persist_across_reopening_the_series(win):
    from core.spine.store import LevelStore

    win.spine.controller.move_vertebra(0, _centroid(win, "T11") + np.array([0.0, 0.0, 2.0]))
    expected = win.state.labelling.to_dict()["vertebrae"]
    opened = []

    def on_opened(volume) -> None:
        opened.append(volume)

    win.volume_opened.connect(on_opened)
    win.open_series(win.current_series)
    wait_until(lambda: opened, what="the series to open again")
    win.volume_opened.disconnect(on_opened)
    wait_until(lambda: win.viewer.volume_view.prepared is not None, what="the 3D view")
    assert win.state.labelling is not None
    assert win.state.labelling.to_dict()["vertebrae"] == expected
    assert not win.spine.undo_stack.canUndo()  # history starts afresh per opening
    assert LevelStore(win.library.db).history(win.current_series)  # every version is kept
    assert win.spine.panel.level_rows() == ["T11", "T11-T12", "T12"]


def test_distance_measurement_has_the_known_length_and_reaches_the_chat(win):
    _go_to(win, "T12")
    view = win.viewer.axial
    k = win.state.cursor[2]
    vol = win.state.volume
    a, b = vol.voxel_to_patient((220, 330, k)), vol.voxel_to_patient((270, 330, k))
    expected = 50 * vol.spacing[0]  # 50 columns along x, across the T12 body
    win.spine.tabs.setCurrentIndex(1)
    win.spine.measure_panel.tool_buttons["distance"].click()
    for p in (a, b):
        QTest.mouseClick(view, Qt.LeftButton, Qt.NoModifier, view.patient_to_widget(p)[0].toPoint())
    settle(0.05)
    m = win.spine.measurements.measurements[-1]
    # Clicks land on whole widget pixels: allow the size of one screen pixel at each end.
    tolerance = 2 * vol.spacing[0] / view.transform().scale_x
    assert m.kind == "distance" and m.unit == "mm" and m.value == pytest.approx(expected, abs=tolerance)
    assert m.level == "T12"  # the nearest labelled level
    name, level, value, unit = win.spine.measure_panel.rows()[-1]
    assert (name, level, unit) == ("distance", m.level, "mm") and float(value) == pytest.approx(m.value, abs=0.05)
    assert any(c.name == "distance" and c.unit == "mm" for c in win.chat.context.measurements)
    assert "distance" in win.chat.context.to_text()
    from core.spine.measure.store import MeasurementStore

    stored = MeasurementStore(win.library.db).list(win.current_series)
    assert [s.value for s in stored][-1] == pytest.approx(m.value)
    win.spine.measure_panel.set_tool(None)


def test_3d_markers_exist_and_the_capture_shows_the_marker_colour(win):
    actors = win.spine.actors
    kinds = sorted((p.kind, p.name) for p in actors.props)
    assert kinds == [("disc", "T11-T12"), ("vertebra", "T11"), ("vertebra", "T12")]
    assert win.viewer.volume_view.overlay_renderer.GetViewProps().GetNumberOfItems() == 5  # 2 spheres, 2 names, ring
    win.viewer.volume_view.refresh()
    pixels = win.viewer.volume_view.capture_array()
    x, y = actors.display_position(_centroid(win, "T11"))
    row, col = pixels.shape[0] - 1 - round(y), round(x)
    patch = pixels[row - 2:row + 3, col - 2:col + 3].reshape(-1, 3).astype(int)
    distance = np.abs(patch - np.asarray(style.MARKER_RGB)).max(axis=1)
    assert distance.min() <= 60, patch
    # A click (no drag) on the marker in the 3D view selects its level (VTK counts rows from the bottom).
    vtk_widget = win.viewer.volume_view.vtk_widget
    QTest.mouseClick(vtk_widget, Qt.LeftButton, Qt.NoModifier, QPoint(round(x), vtk_widget.height() - 1 - round(y)))
    settle(0.05)
    assert win.state.selected_level == "T11"
    x12, y12 = actors.display_position(_centroid(win, "T12"))
    win.viewer.volume_view.clicked.emit(round(x12), round(y12))
    assert win.state.selected_level == "T12"
    # A drag (camera rotation) that ends on a marker is not a click.
    interactor = win.viewer.volume_view.interactor
    interactor.SetEventInformation(round(x) - 60, round(y), 0, 0, "\0", 0, None)
    interactor.LeftButtonPressEvent()
    interactor.SetEventInformation(round(x), round(y), 0, 0, "\0", 0, None)
    interactor.MouseMoveEvent()
    interactor.LeftButtonReleaseEvent()
    assert win.state.selected_level == "T12"
    win.viewer.volume_view.reset_camera()
    win.viewer.volume_view.capture_png(artifacts_dir() / "levels_3d.png")


def test_auto_label_without_anchor_asks_the_user_to_name_one_level_then_naming_works(win, monkeypatch):
    from core.spine.autolabel import process

    children = []  # auto-label runs in a child process: record each one started
    real_init = process._Child.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        children.append(self.proc)

    monkeypatch.setattr(process._Child, "__init__", init)
    panel = win.spine.panel
    worker = panel.auto_label()
    assert panel.running_row.isVisible() and panel.cancel_button.isEnabled()
    wait_until(lambda: not worker.is_running, 120, "auto-labelling")
    assert worker.state == "finished", worker.error
    assert len(children) == 1 and children[0].returncode == 0
    labelling = win.state.labelling
    assert labelling.vertebrae and not labelling.named and labelling.needs_confirmation
    assert panel.banner.isVisible() and panel.banner_kind == "ask"
    assert "Name one vertebra" in panel.banner.text()
    assert not panel.running_row.isVisible()
    assert win.spine.undo_stack.undoText() == "Auto-label"
    # Semi-automatic: name the (unnamed) vertebra from the list.
    monkeypatch.setattr(dialogs, "ask_level_name", lambda parent, labelling, index: "T12")
    item = next(panel.tree.topLevelItem(i) for i in range(panel.tree.topLevelItemCount())
                if panel.tree.topLevelItem(i).data(0, Qt.UserRole)[0] == "vertebra")
    panel.tree.setCurrentItem(item)
    panel._rename_current()
    assert "T12" in win.state.labelling.names() and not panel.banner.isVisible()
    # Cancel stops a running auto-label and its process; the labelling stays as it was.
    before = win.state.labelling
    worker = panel.auto_label()
    wait_until(lambda: len(children) == 2, 30, "the labelling process to start")
    panel.cancel_button.click()
    wait_until(lambda: not worker.is_running, 60, "the cancelled auto-label")
    assert worker.state == "cancelled" and win.state.labelling is before
    assert "cancelled" in panel.banner.text()
    assert children[1].returncode is not None  # stopped and reaped: no process left behind


def test_labels_from_the_totalsegmentator_label_map(win):
    path = ct_label_path()
    if path is None:
        pytest.skip("seg_total_v2.nii.gz not found in ../shared/data/spine-samples/ts_ct_dicom_T11-T12")
    worker = win.spine.panel.load_labelmap(path, "totalseg")
    wait_until(lambda: not worker.is_running, 60, "the label map")
    assert worker.state == "finished", worker.error
    labelling = win.state.labelling
    assert labelling.names() == ["T11", "T12"] and labelling.provenance.method == "reference"
    for name, ijk in KNOWN_VOXELS.items():
        assert np.linalg.norm(win.state.volume.patient_to_voxel(labelling.vertebra(name).centroid) - ijk) < 1.0
    assert [d.name for d in labelling.discs] == ["T11-T12"]
    _go_to(win, "T12")
    view = win.viewer.coronal
    pos, _ = view.patient_to_widget(labelling.vertebra("T12").centroid)
    assert _close_to(_pixel(view, pos), style.MARKER_RGB)
    # With the wrong numbering the organ labels would become 'vertebrae': refused, with the reason.
    worker = win.spine.panel.load_labelmap(path, "verse")
    wait_until(lambda: not worker.is_running, 60, "the label map")
    assert worker.state == "failed" and win.spine.panel.banner_kind == "error"
    assert "right numbering" in win.spine.panel.banner.text()
    assert win.state.labelling is labelling


def _focus_3d(volume_view, point, zoom: float) -> None:
    """Turn the 3D camera towards a point (same viewing direction) and zoom, as a reader would with the mouse."""
    camera = volume_view.renderer.GetActiveCamera()
    shift = np.asarray(point) - np.asarray(camera.GetFocalPoint())
    camera.SetFocalPoint(*point)
    camera.SetPosition(*(np.asarray(camera.GetPosition()) + shift))
    camera.Zoom(zoom)
    volume_view.renderer.ResetCameraClippingRange()
    volume_view.refresh()


def test_screenshot_of_levels_in_2d_and_3d(win, screenshot_path):
    """docs/screenshots/levels_2d_3d.png: labels in the three 2D views and the 3D view, the Levels panel."""
    path = ct_label_path()
    if path is not None:
        worker = win.spine.panel.load_labelmap(path, "totalseg")
        wait_until(lambda: not worker.is_running, 60, "the label map")
    win.spine.controller.go_to_level("T12")
    state = win.state
    state.apply_wl_preset("bone")
    for view in (win.viewer.sagittal, win.viewer.coronal):
        view.zoom_by(2.5, view.voxel_to_widget(state.cursor))
    axial = win.viewer.axial
    axial.zoom_by(1.6, axial.voxel_to_widget(state.cursor))
    _focus_3d(win.viewer.volume_view, _centroid(win, "T12"), zoom=2.5)
    # One measurement on screen: the width of the T12 body, across its anterior part (clear of the labels).
    model = win.spine.measurements
    for m in list(model.measurements):
        model.remove(m)
    k = state.cursor[2]
    win.spine.measure_panel.set_tool("distance")
    for i in (226, 266):
        point = state.volume.voxel_to_patient((i, 318, k))
        QTest.mouseClick(axial, Qt.LeftButton, Qt.NoModifier, axial.patient_to_widget(point)[0].toPoint())
    win.spine.measure_panel.set_tool(None)
    assert len(model.measurements) == 1
    settle(1.0)
    out = win.save_screenshot(screenshot_path("levels_2d_3d.png"))
    assert out.stat().st_size > 50_000
    pixels = qimage_to_rgb(win.grab_window_image())
    orange = np.abs(pixels.astype(int) - np.asarray(style.SELECTED_RGB)).max(axis=2) <= 30
    assert orange.sum() > 100  # the selected level's markers and names are on screen


def test_context_menu_on_a_marker_offers_name_go_to_and_remove(win):
    _go_to(win, "T11", zoom=3.0)
    view = win.viewer.coronal
    pos, _ = view.patient_to_widget(_centroid(win, "T11"))
    pan = view.pan
    QTest.mousePress(view, Qt.RightButton, Qt.NoModifier, pos.toPoint())
    QTest.mouseRelease(view, Qt.RightButton, Qt.NoModifier, pos.toPoint())
    menu = win.spine.layer.context_menu
    texts = [a.text() for a in menu.actions()]
    assert texts == ["Name T11… (renames the others)", "Go to T11", "Remove T11"], texts
    menu.close()
    assert view.pan == pan  # a right press on a marker opens the menu, it does not pan
    menu.actions()[2].trigger()
    assert win.state.labelling.names() == ["T12"] and "T11-T12" not in win.spine.panel.level_rows()
    win.spine.undo_stack.undo()
    assert win.state.labelling.names() == ["T11", "T12"]
