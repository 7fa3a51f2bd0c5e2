"""What an import scan finds: series sources (not yet loaded) and problems with files.

A :class:`SeriesSource` is cheap (headers only). ``core.studies.loaders.load_series(source)`` turns it into a
:class:`~core.studies.volume.Volume`. The library stores sources; the viewer loads them on demand.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ImportProblem:
    """One file (or folder) that could not be imported, and why, in words a user understands."""

    path: Path
    reason: str
    internal: str = ""  # the unexpected exception behind it, when the safety net caught one (logs, fuzzing)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class SeriesSource:
    kind: str  # "dicom" | "nifti" | "raster"
    series_uid: str  # DICOM SeriesInstanceUID, or a stable id derived from the file's absolute path + content hash
    files: list[Path]
    modality: str = "OT"
    series_description: str = ""
    study_uid: str = ""
    study_description: str = ""
    study_date: str = ""
    patient_age: str | None = None
    patient_sex: str | None = None
    n_images: int = 0
    warnings: list[str] = field(default_factory=list)  # e.g. "missing slice between z=10 and z=14 mm"

    @property
    def study_key(self) -> str:
        """The key a study is kept under (library, conversations, reports, model choice): its study uid, else the
        series (NIfTI and images have no study uid)."""
        return self.study_uid or f"series:{self.series_uid}"


@dataclass
class ScanResult:
    series: list[SeriesSource] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)
