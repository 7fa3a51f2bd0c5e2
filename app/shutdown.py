"""Leaving Qt in order, before Python's own teardown.

At interpreter exit Python drops its wrappers in no defined order, and PySide then deletes whatever Qt objects are
left: a window still open, a worker thread still running, a receiver that a signal still points to. One of those
deleted while Qt still holds it can crash the process after all the work is done (seen once at the end of a green
test run: "shared QObject was deleted directly", then a segfault). So the workstation and the test session end the
same way: every window is closed, worker threads are stopped and joined, deferred deletions run, and the remaining
top-level widgets are deleted while the QApplication still exists.
"""
from __future__ import annotations

import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, QThread, QThreadPool
from PySide6.QtWidgets import QApplication

THREAD_WAIT_MS = 30_000


def release_qt(wait_ms: int = THREAD_WAIT_MS) -> list[str]:
    """Close and delete every top-level widget and join the worker threads; return what could not be stopped."""
    app = QApplication.instance()
    if app is None:
        return []
    problems: list[str] = []
    for widget in QApplication.topLevelWidgets():
        if shiboken6.isValid(widget):
            widget.close()  # windows stop their own work in closeEvent (chat model, 3D view, tasks)
    for widget in QApplication.topLevelWidgets():
        if not shiboken6.isValid(widget):
            continue
        for thread in widget.findChildren(QThread):
            if thread.isRunning():
                thread.quit()
                if not thread.wait(wait_ms):
                    problems.append(f"thread {thread.objectName() or type(thread).__name__} did not stop")
    if not QThreadPool.globalInstance().waitForDone(wait_ms):
        problems.append("background tasks still running")
    _flush_deferred_deletes()
    for widget in QApplication.topLevelWidgets():
        if shiboken6.isValid(widget) and not _has_running_thread(widget):
            shiboken6.delete(widget)
    _flush_deferred_deletes()
    return problems


def _has_running_thread(widget) -> bool:
    return any(t.isRunning() for t in widget.findChildren(QThread))


def _flush_deferred_deletes() -> None:
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()
