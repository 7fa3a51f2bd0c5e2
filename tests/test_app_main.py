"""``run_gui``: the desktop entry point imports the given paths into the library and opens the first series."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QTimer

from tests.app_support import ct_dicom_dir


@pytest.mark.skipif(ct_dicom_dir() is None, reason="CT DICOM sample (resources/samples or ../shared) absent")
def test_run_gui_imports_opens_the_first_series_and_exits_cleanly(qapp, spinemed_home):
    from app.main import MainWindow, run_gui

    seen: dict = {}

    def poll() -> None:
        windows = [w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if not windows:
            return
        win = windows[0]
        if win.state.volume is not None and win.viewer.volume_view.prepared is not None:
            seen["shape"] = win.state.volume.shape
            seen["series"] = win.browser.series_uids()
            seen["title"] = win.windowTitle()
            timer.stop()
            win.close()
            qapp.quit()

    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(100)
    failsafe = QTimer()  # never hang the suite
    failsafe.setSingleShot(True)
    failsafe.timeout.connect(qapp.quit)
    failsafe.start(90_000)
    # Exactly one quit request: a second one would stay queued and end the next test's event loop at once.
    qapp.setQuitOnLastWindowClosed(False)
    try:
        code = run_gui([ct_dicom_dir()])
    finally:
        timer.stop()
        failsafe.stop()
        qapp.setQuitOnLastWindowClosed(True)
    assert code == 0
    assert seen.get("shape") == (512, 512, 20), seen
    assert len(seen["series"]) == 1 and "CT Body" in seen["title"]
    assert (spinemed_home / "library.db").is_file()  # the default library honours SPINEMED_HOME
