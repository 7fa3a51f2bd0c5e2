"""One way to open a STUDY argument, for every command: a path (folder, file or .zip), a series uid of the library,
or a study id of the library (``spinemed library`` lists them).

The series used is always the one with the most images; the others are kept in ``sources`` and named in the
warnings, so ``spinemed ask X``, ``spinemed report X`` and ``spinemed levels auto X`` all read the same series.
A path is read where it is (nothing is added to the library); a .zip is extracted into a temporary folder that
lives as long as the :class:`OpenedStudy`.

    opened = open_study("resources/samples/ct_dicom_T11-T12")
    volume = opened.load(progress, cancel)
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.studies.errors import StudyLoadError
from core.studies.loaders import load_series, scan
from core.studies.sources import SeriesSource
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn


@dataclass
class OpenedStudy:
    source: SeriesSource  # the series used: the one with the most images
    sources: list[SeriesSource]  # every series found, the used one first
    warnings: list[str] = field(default_factory=list)
    _extracted: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def series_uid(self) -> str:
        return self.source.series_uid

    @property
    def study_key(self) -> str:
        """The key conversations and reports are stored under: the study uid, else the series."""
        return self.source.study_key

    def load(self, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Volume:
        """The used series as a Volume; its own warnings (blank slices...) are added to ``warnings``."""
        volume = load_series(self.source, progress, cancel)
        self.warnings.extend(w for w in volume.warnings if w not in self.warnings)
        return volume


def _largest_first(sources: list[SeriesSource]) -> list[SeriesSource]:
    return sorted(sources, key=lambda s: s.n_images or len(s.files), reverse=True)  # stable: ties keep scan order


def _opened(sources: list[SeriesSource], warnings: list[str], extracted=None) -> OpenedStudy:
    ordered = _largest_first(sources)
    used = ordered[0]
    if len(ordered) > 1:
        warnings.append(f"{len(ordered)} series found: using '{used.series_description or used.series_uid}' "
                        f"({used.n_images or len(used.files)} images)")
    return OpenedStudy(used, ordered, warnings + list(used.warnings), extracted)


def open_path(path: str | Path, progress: ProgressFn | None = None,
              cancel: CancelToken | None = None) -> OpenedStudy:
    """Open a folder, an image file or a .zip. Raises StudyLoadError naming the file and the problem."""
    path = Path(path)
    extracted = tempfile.TemporaryDirectory(prefix="spinemed-open-") if path.suffix.lower() == ".zip" else None
    result = scan(path, progress, cancel, extract_dir=extracted.name if extracted else None)
    warnings = [str(p) for p in result.problems]
    if not result.series:
        reason = "; ".join(p.reason if p.path.absolute() == path.absolute() else str(p) for p in result.problems)
        raise StudyLoadError(path, reason or "no image found")
    return _opened(result.series, warnings, extracted)


def open_study(study: str | Path, library: Any = None, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None, add_to_library: bool = False) -> OpenedStudy:
    """Open a path, a library series uid or a library study id (``library`` defaults to the user's library).

    ``add_to_library`` imports a path first (the consultation commands do, so that the conversation is found
    with its study in the workstation); the series is chosen the same way either way."""
    path = Path(study)
    if path.exists() and not add_to_library:
        return open_path(path, progress, cancel)
    own = library is None
    if own:
        from core import paths
        from core.library import Library

        if not path.exists() and not paths.library_db_path().exists():  # a typo must not create a library
            raise StudyLoadError(study, "neither an existing path nor a series uid (there is no library yet)")
        library = Library()
    try:
        warnings: list[str] = []
        if path.exists():
            imported = library.import_path(path, progress, cancel)
            warnings = [str(p) for p in imported.problems]
            uids = imported.series
            if not uids:
                raise StudyLoadError(path, "; ".join(p.reason if p.path.absolute() == path.absolute() else str(p)
                                                     for p in imported.problems) or "no image found")
        else:
            text = str(study)
            uids = [text]
            if text.isdigit():
                uids = [row["series_uid"] for row in library.series(int(text))] or uids
        try:
            sources = [library.source(uid) for uid in uids]
        except KeyError:
            raise StudyLoadError(study, "neither an existing path, a series uid nor a study id of the library "
                                        f"({library.path})") from None
    finally:
        if own:
            library.close()
    return _opened(sources, warnings)


def load_volume(path: str | Path, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None) -> tuple[Volume, list[str]]:
    """The volume at ``path`` (its largest series) and the warnings. Raises StudyLoadError."""
    opened = open_path(path, progress, cancel)
    volume = opened.load(progress, cancel)
    return volume, opened.warnings
