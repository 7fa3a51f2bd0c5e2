"""Helpers for the GUI tests (tests/test_app_*.py): sample paths, waiting, pixel access, synthetic input events.

GUI tests need a real X display (Xvfb); VTK draws nothing under QT_QPA_PLATFORM=offscreen, so xcb is forced.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np

os.environ["QT_QPA_PLATFORM"] = "xcb"

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "spine-samples"
SHARED_CT = SAMPLES / "ts_ct_dicom_T11-T12"
BUNDLED_CT = REPO / "resources" / "samples" / "ct_dicom_T11-T12"
ARTIFACTS = REPO / "tests" / "_artifacts" / "app"
T12_LABEL = 32


def ct_dicom_dir() -> Path | None:
    """The JPEG 2000 CT series: bundled with the code, or the shared sample it was copied from."""
    for candidate in (BUNDLED_CT, SHARED_CT / "dicom"):
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    return None


def ct_label_path() -> Path | None:
    path = SHARED_CT / "seg_total_v2.nii.gz"
    return path if path.is_file() else None


def label_volume_lps(path: Path):
    """The TotalSegmentator label map (NIfTI, RAS) as an LPS-canonical Volume on the CT's grid."""
    import nibabel as nib

    from core.studies.volume import Volume

    img = nib.load(str(path))
    affine = img.affine.copy()
    affine[:2] *= -1  # RAS -> LPS
    return Volume(np.asarray(img.dataobj).astype(np.int16), affine).as_closest_lps()


def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    """Process Qt events until ``predicate()`` is true; fail with ``what`` after ``timeout`` seconds."""
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        QApplication.processEvents()
        time.sleep(0.01)


def settle(seconds: float = 0.2) -> None:
    from PySide6.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def qimage_to_rgb(image) -> np.ndarray:
    """(h, w, 3) uint8 copy of a QImage."""
    from PySide6.QtGui import QImage

    image = image.convertToFormat(QImage.Format_RGB888)
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), np.uint8, count=stride * h).reshape(h, stride)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


def widget_gray(widget) -> np.ndarray:
    """Grey levels (h, w) of a plain QWidget as painted (QWidget.grab; not for the VTK widget)."""
    return qimage_to_rgb(widget.grab().toImage()).mean(axis=2)


def send_wheel(widget, steps: int, pos=None, modifiers=None) -> None:
    """A mouse-wheel event of ``steps`` notches (positive = away from the user) at ``pos`` in ``widget``."""
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    pos = QPointF(pos) if pos is not None else QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(
        pos,
        QPointF(widget.mapToGlobal(pos.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.NoButton,
        modifiers if modifiers is not None else Qt.NoModifier,
        Qt.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def fraction_not_background(pixels: np.ndarray, background_rgb, tolerance: int = 12) -> float:
    """Share of pixels differing from the background colour by more than ``tolerance`` in any channel."""
    diff = np.abs(pixels.astype(int) - np.asarray(background_rgb, int)[None, None, :]).max(axis=2)
    return float((diff > tolerance).mean())


@contextlib.contextmanager
def opened_window(folder: Path, path: Path, *, wait_3d: bool = True, size=(1500, 950), timeout: float = 120.0):
    """A main window with its own library in ``folder``, ``path`` imported and opened (and the 3D view prepared,
    unless ``wait_3d`` is False: a radiograph has none); closed with its library afterwards."""
    from app.main_window import MainWindow
    from core.library import Library

    library = Library(folder / "library.db")
    window = MainWindow(library=library)
    try:
        window.resize(*size)
        window.show()
        opened = []
        window.volume_opened.connect(opened.append)
        window.import_paths([path], open_first=True)
        wait_until(lambda: opened, timeout, f"{Path(path).name} to open")
        if wait_3d:
            wait_until(lambda: window.viewer.volume_view.prepared is not None, timeout, "the 3D view to be prepared")
        settle(0.3)
        yield window
    finally:
        window.close()
        library.close()
        settle(0.1)


def opened_ct_window(folder: Path):
    """A main window with its own library in ``folder``, the CT sample imported and opened, 2D and 3D ready."""
    return opened_window(folder, ct_dicom_dir())


def click_pixel(view, x: float, y: float) -> None:
    """A real left click (press and release) on pixel column ``x``, row ``y`` of the image shown in ``view``."""
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    volume = view.state.volume
    pos = view.patient_to_widget(volume.voxel_to_patient((x - 0.5, y - 0.5, 0.0)))[0]
    for kind in (QEvent.MouseButtonPress, QEvent.MouseButtonRelease):
        buttons = Qt.LeftButton if kind == QEvent.MouseButtonPress else Qt.NoButton
        QApplication.sendEvent(view, QMouseEvent(kind, pos, view.mapToGlobal(pos), Qt.LeftButton, buttons,
                                                 Qt.NoModifier))
