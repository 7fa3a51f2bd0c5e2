"""TaskWorker: progress, result, readable failures and cancellation, delivered on the GUI thread."""
from __future__ import annotations

import threading
import time

from PySide6.QtCore import QThread

from app.workers import TaskStatus, TaskWorker
from core.studies.errors import StudyLoadError
from core.tasks import check


def _steps(n, progress=None, cancel=None):
    for i in range(n):
        check(cancel)
        progress((i + 1) / n, f"step {i + 1}")
        time.sleep(0.01)
    return threading.current_thread().name


def test_progress_then_result_on_the_gui_thread(qtbot):
    worker = TaskWorker(_steps, 5, description="Counting")
    seen, threads = [], []
    worker.progress.connect(lambda f, msg: (seen.append((f, msg)), threads.append(QThread.currentThread())))
    with qtbot.waitSignal(worker.finished, timeout=10_000) as done:
        worker.start()
    assert done.args[0] != threading.main_thread().name  # ran in a pool thread
    qtbot.waitUntil(lambda: len(seen) == 5)
    assert seen[-1] == (1.0, "step 5")
    assert all(t is QThread.currentThread() for t in threads)  # delivered on the GUI thread
    assert worker.state == "finished"


def test_failure_message_names_the_file_and_reason(qtbot):
    def fail(progress=None, cancel=None):
        raise StudyLoadError("/data/ct/IM0007.dcm", "truncated: pixel data ends early")

    worker = TaskWorker(fail, description="Loading series")
    with qtbot.waitSignal(worker.failed, timeout=10_000) as failed:
        worker.start()
    assert failed.args[0] == "Loading series failed: cannot load /data/ct/IM0007.dcm: truncated: pixel data ends early"


def test_unexpected_exceptions_carry_their_type(qtbot):
    def fail(progress=None, cancel=None):
        raise OSError("disk full")

    worker = TaskWorker(fail)
    with qtbot.waitSignal(worker.failed, timeout=10_000) as failed:
        worker.start()
    assert failed.args[0] == "OSError: disk full"


def test_cancel_button_stops_the_task(qtbot):
    status = TaskStatus()
    qtbot.addWidget(status)
    worker = status.track(TaskWorker(_steps, 500, description="Long"))
    assert status.workers == [worker]
    with qtbot.waitSignal(worker.cancelled, timeout=10_000):
        worker.start()
        status.cancel_button.click()
    assert worker.state == "cancelled" and not status.workers


def test_a_result_arriving_after_cancel_is_discarded(qtbot):
    release = threading.Event()

    def ignores_cancel(progress=None, cancel=None):
        release.wait(5)
        return "stale"

    worker = TaskWorker(ignores_cancel)
    finished = []
    worker.finished.connect(finished.append)
    with qtbot.waitSignal(worker.cancelled, timeout=10_000):
        worker.start()
        worker.cancel()
        release.set()
    assert not finished
