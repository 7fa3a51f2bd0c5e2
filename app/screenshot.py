"""Regenerate the documentation screenshot: the main window with the bundled CT sample open (2D and 3D).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m app.screenshot [--out FILE] [PATH ...]

Uses a throw-away library (a temporary SPINEMED_HOME), so the user's own library is never touched.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "screenshots" / "main_window.png"
DEFAULT_SAMPLE = REPO / "resources" / "samples" / "ct_dicom_T11-T12"


def _wait(predicate, timeout: float, what: str) -> None:
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        QApplication.processEvents()
        time.sleep(0.02)


def capture_main_window(out: Path, paths: list[Path], size: tuple[int, int] = (1500, 950),
                        question: str = "", level: str = "") -> Path:
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from core.library import Library

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="spinemed-shot-") as home:
        os.environ["SPINEMED_HOME"] = home
        library = Library(Path(home) / "library.db")
        window = MainWindow(library=library)
        window.resize(*size)
        window.show()
        window.import_paths(paths, open_first=True)
        _wait(lambda: window.state.volume is not None, 120, "the series to open")
        volume_view = window.viewer.volume_view
        if not window.viewer.single_image:
            _wait(lambda: volume_view.prepared is not None, 120, "the 3D view")
            # Thin slabs (few slices) are a narrow strip at fit-to-window zoom: zoom on the cursor like a reader would.
            for view in (window.viewer.sagittal, window.viewer.coronal):
                view.zoom_by(2.5, view.voxel_to_widget(window.state.cursor))
        if question:
            done = []
            window.chat.answer_finished.connect(done.append)
            _wait(lambda: window.chat.backend is not None, 60, "the model to load")
            window.chat.set_selected_level(level or None)
            window.chat.ask(question)
            _wait(lambda: bool(done), 180, "the model's answer")
        end = time.monotonic() + 1.0  # let the last paints and the 3D render land
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        path = window.save_screenshot(out)
        window.close()
        library.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[DEFAULT_SAMPLE])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--question", default="", help="ask the embedded model this before the screenshot")
    parser.add_argument("--level", default="", help="selected level for the question, e.g. T12")
    args = parser.parse_args(argv)
    print(capture_main_window(args.out, args.paths or [DEFAULT_SAMPLE], question=args.question, level=args.level))
    return 0


if __name__ == "__main__":
    sys.exit(main())
