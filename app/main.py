"""Desktop entry point: ``run_gui(paths)`` opens the main window, imports the given paths and shows the first series."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from app.main_window import MainWindow

__all__ = ["MainWindow", "run_gui"]


def run_gui(paths: list[Path], model_path: Path | None = None) -> int:
    """Start the workstation; import ``paths`` (folders, files, zips) into the library and open the first series.

    Returns the Qt event loop's exit code.
    """
    # VTK's Qt widget needs X11/GLX; under Wayland sessions Qt would otherwise pick a platform VTK cannot draw on.
    if sys.platform.startswith("linux"):
        os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("SpineMed Workstation")
    app.setOrganizationName("SpineMed")
    window = MainWindow(model_path=model_path)
    window.resize(1500, 950)
    window.show()
    if paths:
        window.import_paths([Path(p) for p in paths], open_first=True)
    code = int(app.exec())
    from app.shutdown import release_qt

    for problem in release_qt():
        print(f"spinemed: at exit, {problem}", file=sys.stderr)
    return code
