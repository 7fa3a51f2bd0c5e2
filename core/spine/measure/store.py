"""Spine measurements in the study library, per series.

    store = MeasurementStore(library.db)     # or MeasurementStore.open(path_to_library_db)
    mid = store.save(series_uid, measurement)           # -> id (also set on the measurement)
    store.list(series_uid, kind=None, level=None)       # -> [SpineMeasurement], in the order saved
    store.delete(mid)
    store.replace_automatic(series_uid, measurements)   # drop this series' auto:* rows, save the new ones
    store.export_json(series_uid)                       # the JSON document 'Export measurements' writes

The table is created by the library migration ``005_measurements``.
"""
from __future__ import annotations

import json
from pathlib import Path

import sqlite_utils

from core.library.migrations import migrate
from core.spine.labelling import now_iso
from core.spine.measure.measurement import SpineMeasurement, measurements_to_json

TABLE = "spine_measurements"


class MeasurementStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        migrate(db)

    @classmethod
    def open(cls, path: str | Path) -> MeasurementStore:
        return cls(sqlite_utils.Database(Path(path)))

    def save(self, series_uid: str, m: SpineMeasurement) -> int:
        """Store (or, when ``m.id`` is set and exists, update) one measurement; returns its id."""
        if not series_uid:
            raise ValueError("a measurement needs its series_uid to be stored")
        row = {"series_uid": series_uid, "kind": m.kind, "name": m.name, "level": m.level, "value": m.value,
               "unit": m.unit, "points": json.dumps([list(p) for p in m.points]), "method": m.method,
               "created": m.created, "details": json.dumps(m.details), "saved_at": now_iso()}
        with self.db.conn:
            if m.id is not None and self.db[TABLE].count_where("id = ?", [m.id]):
                self.db[TABLE].update(m.id, row)
            else:
                m.id = self.db[TABLE].insert(row).last_pk
        return int(m.id)

    def list(self, series_uid: str, kind: str | None = None, level: str | None = None) -> list[SpineMeasurement]:
        where, args = ["series_uid = ?"], [series_uid]
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if level:
            where.append("level = ?")
            args.append(level)
        rows = self.db[TABLE].rows_where(" and ".join(where), args, order_by="id")
        return [_from_row(r) for r in rows]

    def get(self, measurement_id: int) -> SpineMeasurement | None:
        rows = list(self.db[TABLE].rows_where("id = ?", [measurement_id]))
        return _from_row(rows[0]) if rows else None

    def delete(self, measurement_id: int) -> bool:
        """Remove one measurement; False when there was none with that id."""
        with self.db.conn:
            found = self.db[TABLE].count_where("id = ?", [measurement_id]) > 0
            self.db[TABLE].delete_where("id = ?", [measurement_id])
        return found

    def delete_series(self, series_uid: str) -> int:
        with self.db.conn:
            n = self.db[TABLE].count_where("series_uid = ?", [series_uid])
            self.db[TABLE].delete_where("series_uid = ?", [series_uid])
        return n

    def replace_automatic(self, series_uid: str, measurements: list[SpineMeasurement]) -> list[int]:
        """Re-run of the automatic measurements: the series' previous ``auto:*`` rows go, users' rows stay."""
        with self.db.conn:
            self.db[TABLE].delete_where("series_uid = ? and method like 'auto:%'", [series_uid])
        return [self.save(series_uid, m) for m in measurements]

    def export_json(self, series_uid: str, indent: int | None = 1) -> str:
        return measurements_to_json(self.list(series_uid), series_uid, indent)


def _from_row(r: dict) -> SpineMeasurement:
    return SpineMeasurement(kind=r["kind"], name=r["name"], level=r["level"], value=r["value"], unit=r["unit"] or "",
                            points=json.loads(r["points"] or "[]"), method=r["method"], created=r["created"],
                            details=json.loads(r["details"] or "{}"), id=r["id"])
