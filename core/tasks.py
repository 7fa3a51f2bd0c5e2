"""Progress reporting and cancellation for long tasks, usable from any thread (no Qt).

Long core functions take ``progress`` (a callable ``(fraction 0..1, message)``) and ``cancel`` (a
:class:`CancelToken`). They call ``cancel.raise_if_cancelled()`` between units of work, so a worker thread in
the GUI can stop them cleanly; the caller catches :class:`Cancelled`.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

ProgressFn = Callable[[float, str], None]


class Cancelled(Exception):
    """Raised inside a task when its CancelToken was cancelled."""


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


def report(progress: ProgressFn | None, fraction: float, message: str = "") -> None:
    """Call ``progress`` if given, clamping the fraction to 0..1."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def check(cancel: CancelToken | None) -> None:
    """Raise Cancelled if ``cancel`` is set; a None token never cancels."""
    if cancel is not None:
        cancel.raise_if_cancelled()


def sub_progress(progress: ProgressFn | None, start: float, end: float) -> ProgressFn | None:
    """A progress callback mapping 0..1 onto start..end of ``progress``."""
    if progress is None:
        return None
    return lambda f, msg="": progress(start + (end - start) * f, msg)
