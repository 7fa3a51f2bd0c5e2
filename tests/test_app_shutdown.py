"""Leaving Qt in order (app/shutdown.py): a window with a running worker thread and a background task ends cleanly.

Each case runs in its own Python process, since what is checked is how that process exits."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, time
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication, QWidget
from app.workers import TaskWorker

app = QApplication(sys.argv[:1])
window = QWidget()
window.show()
thread = QThread(window)
thread.setObjectName("model-thread")
thread.start()

def slow(progress, cancel):
    time.sleep(1.0)
    return 1

TaskWorker(slow).start()
app.processEvents()
if sys.argv[1] == "release":
    from app.shutdown import release_qt

    print("problems:", release_qt(), flush=True)
print("done", flush=True)
"""


def _run(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)


def test_released_qt_exits_cleanly():
    proc = _run("release")
    assert proc.returncode == 0, proc.stderr
    assert "problems: []" in proc.stdout and "done" in proc.stdout
    assert "Destroyed while thread" not in proc.stderr


def test_without_release_the_running_thread_aborts_the_exit():
    """The failure release_qt prevents: Qt aborts when a window still owns a running thread at interpreter exit."""
    proc = _run("keep")
    assert "done" in proc.stdout
    assert proc.returncode != 0 and "Destroyed while thread 'model-thread' is still running" in proc.stderr
