"""Everything a report needs about one series, gathered headless: the volume, its study context, its labelling.

    study = ReportStudy.open("resources/samples/ct_dicom_T11-T12")  # a path, a library series uid or study id
    study.labelling = labelling_from_labelmap(seg_path, "totalseg", study.series_uid)   # core.spine.labelmap
    report = draft_report(backend, study.context, study.labelling, **study.draft_kwargs())

The stored labelling (core.spine.store, table of migration 003) is used when the series has one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.consult.context import Measurement, StudyContext
from core.library.opener import OpenedStudy, open_study
from core.spine.labelling import SpineLabelling
from core.studies.sources import SeriesSource
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn


@dataclass
class ReportStudy:
    volume: Volume
    source: SeriesSource
    context: StudyContext
    labelling: SpineLabelling | None = None
    warnings: list[str] = field(default_factory=list)
    opened: OpenedStudy | None = field(default=None, repr=False)  # keeps a .zip's extracted files while in use

    @property
    def series_uid(self) -> str:
        return self.source.series_uid

    @property
    def study_key(self) -> str:
        return self.source.study_key

    def draft_kwargs(self) -> dict[str, Any]:
        return {"series_uid": self.source.series_uid, "study_uid": self.source.study_uid,
                "n_images": self.source.n_images or len(self.source.files), "is_2d": self.volume.is_2d,
                "has_volume": True, "volume": self.volume}

    @classmethod
    def open(cls, study: str | Path, library: Any = None, progress: ProgressFn | None = None,
             cancel: CancelToken | None = None) -> ReportStudy:
        """A path (folder, file or .zip), a library series uid or study id: see :mod:`core.library.opener`."""
        opened = open_study(study, library, progress, cancel)
        volume = opened.load(progress, cancel)
        source = opened.source
        context = StudyContext.from_series_source(source)
        labelling = stored_labelling(source.series_uid, getattr(library, "db", None))
        context.measurements = stored_measurements(source.series_uid, getattr(library, "db", None))
        return cls(volume, source, context, labelling, list(opened.warnings), opened=opened)


def _library_db(db: Any) -> Any:
    if db is not None:
        return db
    from core import paths

    if not paths.library_db_path().exists():
        return None
    import sqlite_utils

    return sqlite_utils.Database(paths.library_db_path())


def stored_labelling(series_uid: str, db: Any = None) -> SpineLabelling | None:
    """The labelling saved for a series in the library (None when there is none or no library yet)."""
    from core.spine.store import LevelStore

    try:
        db = _library_db(db)
        return LevelStore(db).load(series_uid) if db is not None else None
    except Exception:  # noqa: BLE001 - a damaged labelling must not stop a report; the draft says no levels
        return None


def stored_measurements(series_uid: str, db: Any = None) -> list[Measurement]:
    """The measurements saved for a series (core.spine.measure.store), in the consultation's form."""
    try:
        from core.spine.measure.measurement import context_measurements
        from core.spine.measure.store import MeasurementStore

        db = _library_db(db)
        return context_measurements(MeasurementStore(db).list(series_uid)) if db is not None else []
    except Exception:  # noqa: BLE001 - no measurement store (yet) or a damaged one: report without measurements
        return []


def load_measurements(path: str | Path) -> list[Measurement]:
    """Measurements from JSON: ``[{"name": "disc height", "level": "T11-T12", "value": 7.2, "unit": "mm"}, ...]``."""
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
        return [Measurement(str(m["name"]), m.get("level"), float(m["value"]), str(m.get("unit", ""))) for m in items]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: cannot read measurements ({exc})") from exc
