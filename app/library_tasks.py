"""Library calls meant for worker threads (no Qt): import several paths, load one series.

An SQLite connection may only be used by the thread that opened it, so each task opens its own ``Library`` on
the same database file (WAL mode lets the GUI thread keep reading meanwhile) and closes it when done.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.library import ImportReport
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn, check, sub_progress


@contextmanager
def thread_library(library) -> Iterator[object]:
    """A Library on ``library``'s database for the calling thread (objects without ``path`` are used as is)."""
    path = getattr(library, "path", None)
    if path is None:
        yield library
        return
    own = type(library)(path)
    try:
        yield own
    finally:
        own.close()


def import_paths(
    library, paths: list[Path], progress: ProgressFn | None = None, cancel: CancelToken | None = None
) -> ImportReport:
    """Import each path in turn; problems of one path never stop the others."""
    summary = ImportReport()
    paths = [Path(p) for p in paths]
    with thread_library(library) as lib:
        for n, path in enumerate(paths):
            check(cancel)
            step = sub_progress(progress, n / len(paths), (n + 1) / len(paths))
            report = lib.import_path(path, progress=step, cancel=cancel)
            summary.add(report)
    return summary


@dataclass
class LoadedSeries:
    series_uid: str
    volume: Volume  # as stored (its orientation is what the info panel reports)
    display: Volume  # the same image reoriented for the views (LPS-canonical)


def load_series(
    library, series_uid: str, progress: ProgressFn | None = None, cancel: CancelToken | None = None
) -> LoadedSeries:
    """Load a series and reorient it for display here, off the GUI thread (a full copy for big volumes)."""
    with thread_library(library) as lib:
        volume = lib.load(series_uid, progress=progress, cancel=cancel)
    check(cancel)
    return LoadedSeries(series_uid, volume, volume.as_closest_lps())
