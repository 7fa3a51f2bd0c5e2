"""Importing through the window: a plain radiograph opens in one large view; bad files are reported by name."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from tests.app_support import artifacts_dir, ct_dicom_dir, settle, widget_gray


@pytest.fixture
def window(qtbot, tmp_path):
    from app.main_window import MainWindow
    from core.library import Library

    library = Library(tmp_path / "library.db")
    win = MainWindow(library=library)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.close()
    library.close()


def _radiograph(path):
    """A synthetic lateral spine radiograph: dark background, a bright vertical column of 'vertebrae'."""
    img = np.full((600, 300), 30, np.uint8)
    for top in range(40, 560, 70):
        img[top : top + 55, 110:190] = 200  # vertebral bodies
    img[:, 200:215] = 120  # posterior line
    Image.fromarray(img).save(path)
    return path


def test_radiograph_opens_in_a_single_large_view(window, qtbot, tmp_path):
    png = _radiograph(tmp_path / "lateral_spine.png")
    with qtbot.waitSignal(window.volume_opened, timeout=60_000) as opened:
        window.import_paths([png], open_first=True)
    volume = opened.args[0]
    assert volume.is_2d and volume.modality == "DX"
    viewer = window.viewer
    assert viewer.single_image and viewer.axial.radiograph
    assert viewer.axial.isVisible()
    assert not viewer.sagittal.isVisible() and not viewer.coronal.isVisible()
    assert not viewer.volume_view.isVisible()
    assert viewer.axial.width() > 0.9 * viewer.width() and viewer.axial.height() > 0.9 * viewer.height()
    assert window.info_panel.text("Shape") == "300 × 600 (single image)"
    assert window.info_panel.text("Spacing").startswith("unknown")  # not the 1 × 1 × 1 mm stand-in
    assert window.info_panel.text("Orientation") == "—"  # a PNG/JPEG says none
    settle(0.1)
    # Tall image (portrait) shown upright: the bright column is in the middle third, vertically long.
    gray = widget_gray(viewer.axial)
    shown = viewer.axial.displayed_slice()
    assert shown.shape == (600, 300)
    centre = viewer.axial.voxel_to_widget((150, 300 - 40, 0))
    assert gray[int(centre.y()), int(centre.x())] > 150
    window.save_screenshot(artifacts_dir() / "radiograph_window.png")


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom complains about the garbage, as it should
def test_bad_file_import_lists_the_file_and_reason_without_breaking_the_window(window, qtbot, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 5)
    (folder / "notes.nii.gz").write_bytes(b"this is not gzip")
    with qtbot.waitSignal(window.problems_shown, timeout=60_000) as shown:
        window.import_paths([folder])
    lines = shown.args[0]
    assert any("broken.dcm" in line for line in lines), lines
    assert any("notes.nii.gz" in line for line in lines), lines
    assert all(": " in line for line in lines)
    dialog = window.problem_dialog
    assert dialog.isVisible() and "broken.dcm" in dialog.informativeText()
    assert window.isVisible() and window.state.volume is None
    # Still usable: a good file imports and opens afterwards.
    png = _radiograph(tmp_path / "ok.png")
    with qtbot.waitSignal(window.volume_opened, timeout=60_000):
        window.import_paths([png], open_first=True)
    dialog.close()


def test_missing_path_is_reported(window, qtbot, tmp_path):
    with qtbot.waitSignal(window.problems_shown, timeout=30_000) as shown:
        window.import_paths([tmp_path / "no-such-folder"])
    assert "no-such-folder" in shown.args[0][0]
    window.problem_dialog.close()


@pytest.mark.skipif(ct_dicom_dir() is None, reason="CT DICOM sample (resources/samples or ../shared) absent")
def test_a_file_damaged_after_import_opens_blank_and_is_named(window, qtbot, tmp_path):
    series_dir = tmp_path / "ct"
    shutil.copytree(ct_dicom_dir(), series_dir)
    with qtbot.waitSignal(window.import_finished, timeout=60_000) as imported:
        window.import_paths([series_dir])
    damaged = sorted(series_dir.iterdir())[5]
    damaged.write_bytes(damaged.read_bytes()[:20_000])
    with qtbot.waitSignal(window.problems_shown, timeout=60_000) as shown:
        window.open_series(imported.args[0].series[0])
    message = shown.args[0][0]
    assert damaged.name in message and "shown blank, like missing slices" in message, message
    assert window.state.volume is not None and window.state.volume.shape[2] == len(list(series_dir.iterdir()))
    window.problem_dialog.close()


@pytest.mark.skipif(ct_dicom_dir() is None, reason="CT DICOM sample (resources/samples or ../shared) absent")
def test_a_series_mostly_damaged_after_import_fails_the_load_with_a_name(window, qtbot, tmp_path):
    series_dir = tmp_path / "ct"
    shutil.copytree(ct_dicom_dir(), series_dir)
    with qtbot.waitSignal(window.import_finished, timeout=60_000) as imported:
        window.import_paths([series_dir])
    damaged = sorted(series_dir.iterdir())[:10]
    for path in damaged:
        path.write_bytes(path.read_bytes()[:20_000])
    with qtbot.waitSignal(window.problems_shown, timeout=60_000) as shown:
        window.open_series(imported.args[0].series[0])
    message = shown.args[0][0]
    assert damaged[0].name in message and "Loading series failed" in message, message
    assert window.state.volume is None and window.isVisible()
    window.problem_dialog.close()
