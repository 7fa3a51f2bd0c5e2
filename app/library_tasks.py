"""Library calls meant for worker threads (no Qt): import several paths, load one series.

An SQLite connection may only be used by the thread that opened it, so each task opens its own ``Library`` on
the same database file (WAL mode lets the GUI thread keep reading meanwhile) and closes it when done.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from core.studies.sources import ImportProblem
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn, check, sub_progress


@dataclass
class ImportSummary:
    new_series: list[str] = field(default_factory=list)
    existing_series: list[str] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def series(self) -> list[str]:
        """Every series the import found, new ones first."""
        return self.new_series + [uid for uid in self.existing_series if uid not in self.new_series]

    def text(self) -> str:
        parts = [f"{len(self.new_series)} new series"]
        if self.existing_series:
            parts.append(f"{len(self.existing_series)} already in the library")
        if self.problems:
            parts.append(f"{len(self.problems)} problem(s)")
        return "Imported: " + ", ".join(parts)


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
) -> ImportSummary:
    """Import each path in turn; problems of one path never stop the others."""
    summary = ImportSummary()
    paths = [Path(p) for p in paths]
    with thread_library(library) as lib:
        for n, path in enumerate(paths):
            check(cancel)
            step = sub_progress(progress, n / len(paths), (n + 1) / len(paths))
            report = lib.import_path(path, progress=step, cancel=cancel)
            summary.new_series.extend(report.new_series)
            summary.existing_series.extend(report.existing_series)
            summary.problems.extend(report.problems)
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
