"""Everything a report needs about one series, gathered headless: the volume, its study context, its labelling.

    study = open_study("resources/samples/ct_dicom_T11-T12")        # a path, or a library series uid
    study.labelling = labelling_from_labelmap(seg_path, "totalseg", study.series_uid)   # or the stored labelling
    report = draft_report(backend, study.context, study.labelling, **study.draft_kwargs())

The stored labelling (core.spine.store, table of migration 003) is used when the series has one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.consult.context import Measurement, StudyContext
from core.spine.labelling import DiscLabel, Provenance, SpineLabelling, VertebraLabel
from core.studies import StudyLoadError, load_series, scan
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

    @property
    def series_uid(self) -> str:
        return self.source.series_uid

    @property
    def study_key(self) -> str:
        return self.source.study_uid or f"series:{self.source.series_uid}"

    def draft_kwargs(self) -> dict[str, Any]:
        return {"series_uid": self.source.series_uid, "study_uid": self.source.study_uid,
                "n_images": self.source.n_images or len(self.source.files), "is_2d": self.volume.is_2d,
                "has_volume": True}


def open_study(study: str | Path, library: Any = None, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None) -> ReportStudy:
    """A path (folder, file, zip-free) or the series uid of a library series; the largest series of a path is used."""
    warnings: list[str] = []
    path = Path(study)
    if path.exists():
        result = scan(path, cancel=cancel)
        warnings += [str(p) for p in result.problems]
        if not result.series:
            raise StudyLoadError(path, "; ".join(p.reason if p.path == Path(path) else str(p) for p in result.problems) or "no image found")
        series = sorted(result.series, key=lambda s: s.n_images, reverse=True)
        if len(series) > 1:
            warnings.append(f"{len(series)} series found: using '{series[0].series_description}'")
        source = series[0]
    else:
        if library is None:
            from core.library import Library

            library = Library()
        try:
            source = library.source(str(study))
        except KeyError:
            raise StudyLoadError(str(study), "neither an existing path nor a series uid of the library") from None
    volume = load_series(source, progress, cancel)
    context = StudyContext.from_series_source(source)
    labelling = stored_labelling(source.series_uid, getattr(library, "db", None))
    context.measurements = stored_measurements(source.series_uid, getattr(library, "db", None))
    return ReportStudy(volume, source, context, labelling, warnings + list(source.warnings) + volume.warnings)


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
    """The measurements saved for a series (core.spine.measure_store), in the consultation's form."""
    try:
        from core.spine.measure_store import MeasurementStore

        db = _library_db(db)
        return [m.to_context() for m in MeasurementStore(db).list(series_uid)] if db is not None else []
    except Exception:  # noqa: BLE001 - no measurement store (yet) or a damaged one: report without measurements
        return []


def labelling_from_labelmap(path: str | Path, numbering: str, series_uid: str = "") -> SpineLabelling:
    """A labelling from a reference label map (VerSe, TotalSegmentator, SCT numbering): body centres, named."""
    from core.spine.numbering import get_numbering
    from core.spine.reference import reference_from_labelmap

    result = scan(Path(path))
    if not result.series:
        raise StudyLoadError(Path(path), "no label map found")
    ref = reference_from_labelmap(load_series(result.series[0]), get_numbering(numbering))
    if not ref.points:
        raise StudyLoadError(Path(path), f"no vertebra labels of the {numbering} numbering")
    vertebrae = [VertebraLabel(name, point) for name, point in ref.points.items()]
    discs = [DiscLabel(name, point, (0.0, 0.0, 1.0)) for name, point in ref.discs.items()]
    return SpineLabelling(vertebrae, discs, Provenance("reference", version=f"label map ({numbering})"),
                          configuration=ref.configuration, series_uid=series_uid, confidence=1.0,
                          anchor=next(iter(ref.points)), message=f"from label map {Path(path).name}",
                          notes=list(ref.notes))


def load_measurements(path: str | Path) -> list[Measurement]:
    """Measurements from JSON: ``[{"name": "disc height", "level": "T11-T12", "value": 7.2, "unit": "mm"}, ...]``."""
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
        return [Measurement(str(m["name"]), m.get("level"), float(m["value"]), str(m.get("unit", ""))) for m in items]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: cannot read measurements ({exc})") from exc
