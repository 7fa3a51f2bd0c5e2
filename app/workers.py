"""Running core functions off the GUI thread, with progress, cancellation and readable errors.

``TaskWorker(fn, *args)`` calls ``fn(*args, progress=..., cancel=...)`` on a QThreadPool thread and emits, on
the GUI thread, ``progress(fraction, message)`` then exactly one of ``finished(result)``, ``failed(message)``
or ``cancelled()``. :class:`TaskStatus` is the status-bar progress bar with its Cancel button.
"""
from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any, ClassVar

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from core.tasks import Cancelled, CancelToken


def describe_error(exc: BaseException, what: str = "") -> str:
    """One readable line: what failed and why. Core errors already name the file; others get their type."""
    reason = str(exc).strip() or type(exc).__name__
    if not type(exc).__module__.startswith("core"):
        reason = f"{type(exc).__name__}: {reason}"
    return f"{what} failed: {reason}" if what else reason


class _Signals(QObject):
    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()


class TaskWorker(QObject):
    """One background call of a core-style function ``fn(*args, progress=, cancel=)``."""

    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    done = Signal()  # after any of finished/failed/cancelled

    _active: ClassVar[set[TaskWorker]] = set()  # keeps running workers alive until they report

    def __init__(self, fn: Callable[..., Any], *args: Any, description: str = "", **kwargs: Any) -> None:
        super().__init__()
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.description = description
        self.token = CancelToken()
        self.state = "pending"  # -> running -> finished | failed | cancelled
        self.result: Any = None
        self.error: str = ""
        # Signals emitted from the pool thread reach this GUI-thread object through a queued connection.
        self._signals = _Signals()
        self._signals.progress.connect(self.progress)
        self._signals.finished.connect(self._on_finished)
        self._signals.failed.connect(self._on_failed)
        self._signals.cancelled.connect(self._on_cancelled)

    def start(self, pool: QThreadPool | None = None) -> TaskWorker:
        TaskWorker._active.add(self)
        self.state = "running"
        runnable = QRunnable.create(self._run)
        (pool or QThreadPool.globalInstance()).start(runnable)
        return self

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def is_running(self) -> bool:
        return self.state in ("pending", "running")

    def _run(self) -> None:
        signals = self._signals
        try:
            self.token.raise_if_cancelled()
            result = self.fn(*self.args, progress=self._report, cancel=self.token, **self.kwargs)
            # A result that arrives after Cancel was pressed is stale: the user asked for nothing.
            self.token.raise_if_cancelled()
        except Cancelled:
            signals.cancelled.emit()
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message, never a crash
            traceback.print_exc()
            signals.failed.emit(describe_error(exc, self.description))
        else:
            signals.finished.emit(result)

    def _report(self, fraction: float, message: str = "") -> None:
        self._signals.progress.emit(float(fraction), str(message))

    def _on_finished(self, result: Any) -> None:
        if self.token.cancelled:
            self._on_cancelled()
            return
        self.state, self.result = "finished", result
        self.finished.emit(result)
        self._end()

    def _on_failed(self, message: str) -> None:
        self.state, self.error = "failed", message
        self.failed.emit(message)
        self._end()

    def _on_cancelled(self) -> None:
        self.state = "cancelled"
        self.cancelled.emit()
        self._end()

    def _end(self) -> None:
        self.done.emit()
        TaskWorker._active.discard(self)


class TaskStatus(QWidget):
    """Status-bar strip: what runs, a progress bar and a Cancel button that cancels every running task."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workers: list[TaskWorker] = []
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setMaximumWidth(220)
        self.bar.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_all)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self._refresh()

    def track(self, worker: TaskWorker) -> TaskWorker:
        self.workers.append(worker)
        worker.progress.connect(lambda f, msg, w=worker: self._on_progress(w, f, msg))
        worker.done.connect(lambda w=worker: self._on_done(w))
        self.label.setText(worker.description or "Working…")
        self.bar.setValue(0)
        self._refresh()
        return worker

    def cancel_all(self) -> None:
        for worker in list(self.workers):
            worker.cancel()
        if self.workers:
            self.label.setText("Cancelling…")

    def _on_progress(self, worker: TaskWorker, fraction: float, message: str) -> None:
        if self.workers and worker is self.workers[-1]:
            self.bar.setValue(int(fraction * 1000))
            if message and not worker.token.cancelled:
                self.label.setText(message)

    def _on_done(self, worker: TaskWorker) -> None:
        if worker in self.workers:
            self.workers.remove(worker)
        if self.workers:
            self.label.setText(self.workers[-1].description or "Working…")
        self._refresh()

    def _refresh(self) -> None:
        busy = bool(self.workers)
        self.setVisible(busy)
        self.cancel_button.setEnabled(busy)
