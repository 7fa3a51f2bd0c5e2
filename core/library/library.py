"""The study library API.

    lib = Library()                      # default location (core.paths), or Library(path_to_db)
    report = lib.import_path(folder)     # DICOM folder, single file, zip, NIfTI, PNG/JPEG
    for study in lib.studies(): ...
    volume = lib.load(series_uid)

Importing the same files twice does not duplicate anything (series are keyed by SeriesInstanceUID or, for
non-DICOM files, a stable id of the file). Each series is written in its own transaction: a failure (corrupt
file, full disk) leaves what was already in the library untouched and is reported as an ImportProblem.
"""
from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils

from core import paths
from core.library.migrations import migrate
from core.library.thumbnails import make_thumbnail
from core.studies.loaders import load_series, scan
from core.studies.sources import ImportProblem, SeriesSource
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn, check, report, sub_progress


@dataclass
class ImportReport:
    new_series: list[str] = field(default_factory=list)
    existing_series: list[str] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def series(self) -> list[str]:
        """Every series the import found, new ones first."""
        return self.new_series + [uid for uid in self.existing_series if uid not in self.new_series]

    def add(self, other: ImportReport) -> None:
        """Fold another path's import into this one (importing several paths)."""
        self.new_series.extend(other.new_series)
        self.existing_series.extend(other.existing_series)
        self.problems.extend(other.problems)

    def summary(self) -> str:
        parts = [f"{len(self.new_series)} new series", f"{len(self.existing_series)} already in the library"]
        if self.problems:
            parts.append(f"{len(self.problems)} problem(s)")
        return ", ".join(parts)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Library:
    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else paths.library_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite_utils.Database(self.path)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA journal_mode = WAL")
        migrate(self.db)

    def close(self) -> None:
        self.db.close()

    # --- import -------------------------------------------------------------------------------------------
    def import_path(
        self, path: Path, progress: ProgressFn | None = None, cancel: CancelToken | None = None
    ) -> ImportReport:
        path = Path(path)
        result = ImportReport()
        if not path.exists():
            result.problems.append(ImportProblem(path, "does not exist"))
            return result
        scanned = scan(path, sub_progress(progress, 0.0, 0.5), cancel, extract_dir=paths.imports_dir())
        result.problems.extend(scanned.problems)
        total = max(1, len(scanned.series))
        for n, source in enumerate(scanned.series):
            check(cancel)
            report(progress, 0.5 + 0.5 * n / total, f"Adding {source.series_description or source.modality} to the library")
            try:
                if self._add_series(source):
                    result.new_series.append(source.series_uid)
                else:
                    result.existing_series.append(source.series_uid)
            except sqlite3.OperationalError as exc:  # e.g. "database or disk is full", "database is locked"
                result.problems.append(ImportProblem(self.path, f"could not save series {source.series_uid}: {exc}"))
        report(progress, 1.0, result.summary())
        return result

    def _add_series(self, source: SeriesSource) -> bool:
        """Insert one series (and its study, files, thumbnail) atomically. False if it was already there."""
        files = [Path(f).resolve() for f in source.files]
        existing = self.db["series"].count_where("series_uid = ?", [source.series_uid])
        try:
            thumb = make_thumbnail(source) if not existing else None
        except Exception as exc:  # noqa: BLE001 - a thumbnail is cosmetic; the series still imports
            reason = getattr(exc, "reason", "") or "the image could not be read"  # StudyLoadError's plain words
            source.warnings.append(f"no thumbnail: {reason}")
            thumb = None
        # One transaction for the whole series: db.atomic() makes the inner writes savepoints of it.
        with self.db.atomic():
            study_id = self._study_id(source)
            if not existing:
                self.db.execute(
                    "insert into series (series_uid, study_id, kind, modality, description, n_images, warnings, "
                    "imported_at, thumbnail) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [source.series_uid, study_id, source.kind, source.modality, source.series_description,
                     source.n_images or len(files), json.dumps(source.warnings), _now(), thumb],
                )
            for f in files:
                stat = f.stat()
                self.db.execute(
                    "insert into files (path, series_uid, size, mtime) values (?, ?, ?, ?) "
                    "on conflict(path) do update set series_uid = excluded.series_uid, size = excluded.size, "
                    "mtime = excluded.mtime",
                    [str(f), source.series_uid, stat.st_size, stat.st_mtime],
                )
        return not existing

    def _study_id(self, source: SeriesSource) -> int:
        key = source.study_key
        row = self.db.execute("select id, modalities from studies where study_key = ?", [key]).fetchone()
        if row:
            modalities = sorted(set(filter(None, (row[1] or "").split(","))) | {source.modality})
            self.db.execute("update studies set modalities = ? where id = ?", [",".join(modalities), row[0]])
            return row[0]
        cursor = self.db.execute(
            "insert into studies (study_key, study_uid, description, study_date, patient_age, patient_sex, "
            "modalities, imported_at) values (?, ?, ?, ?, ?, ?, ?, ?)",
            [key, source.study_uid, source.study_description or source.series_description, source.study_date,
             source.patient_age, source.patient_sex, source.modality, _now()],
        )
        return cursor.lastrowid

    # --- queries ------------------------------------------------------------------------------------------
    def studies(self) -> list[dict]:
        rows = self.db.query(
            "select studies.*, (select count(*) from series where series.study_id = studies.id) as n_series "
            "from studies order by imported_at desc, id desc"
        )
        return list(rows)

    def series(self, study_id: int) -> list[dict]:
        rows = self.db.query(
            "select series_uid, study_id, kind, modality, description, n_images, warnings, imported_at, "
            "thumbnail is not null as has_thumbnail from series where study_id = ? order by imported_at, series_uid",
            [study_id],
        )
        out = []
        for row in rows:
            row["warnings"] = json.loads(row["warnings"] or "[]")
            row["has_thumbnail"] = bool(row["has_thumbnail"])
            out.append(row)
        return out

    def thumbnail(self, series_uid: str) -> bytes | None:
        rows = list(self.db.query("select thumbnail from series where series_uid = ?", [series_uid]))
        return rows[0]["thumbnail"] if rows else None

    def files(self, series_uid: str) -> list[Path]:
        return [Path(r["path"]) for r in self.db["files"].rows_where("series_uid = ?", [series_uid], order_by="path")]

    def source(self, series_uid: str) -> SeriesSource:
        rows = list(self.db.query(
            "select series.*, studies.study_uid, studies.description as study_description, studies.study_date, "
            "studies.patient_age, studies.patient_sex from series join studies on studies.id = series.study_id "
            "where series_uid = ?", [series_uid]))
        if not rows:
            raise KeyError(f"series {series_uid} is not in the library {self.path}")
        row = rows[0]
        return SeriesSource(
            kind=row["kind"],
            series_uid=series_uid,
            files=self.files(series_uid),
            modality=row["modality"],
            series_description=row["description"] or "",
            study_uid=row["study_uid"] or "",
            study_description=row["study_description"] or "",
            study_date=row["study_date"] or "",
            patient_age=row["patient_age"],
            patient_sex=row["patient_sex"],
            n_images=row["n_images"] or 0,
            warnings=json.loads(row["warnings"] or "[]"),
        )

    def load(
        self, series_uid: str, progress: ProgressFn | None = None, cancel: CancelToken | None = None
    ) -> Volume:
        return load_series(self.source(series_uid), progress, cancel)

    def remove_series(self, series_uid: str) -> None:
        """Forget a series (files on disk are not touched); an emptied study is removed too."""
        with self.db.atomic():
            rows = list(self.db["series"].rows_where("series_uid = ?", [series_uid]))
            if not rows:
                return
            self.db["files"].delete_where("series_uid = ?", [series_uid])
            self.db["series"].delete(series_uid)
            study_id = rows[0]["study_id"]
            if not self.db["series"].count_where("study_id = ?", [study_id]):
                self.db["studies"].delete(study_id)
