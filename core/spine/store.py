"""Vertebral labellings in the study library, one current labelling per series plus every saved version.

    store = LevelStore(library.db)          # or LevelStore.open(path_to_library_db)
    store.save(labelling)                   # keyed by labelling.series_uid
    store.load(series_uid) -> SpineLabelling | None
    store.history(series_uid) -> [SpineLabelling, ...]   oldest first

The tables are created by the library migration ``003_levels``.
"""
from __future__ import annotations

from pathlib import Path

import sqlite_utils

from core.library.migrations import migrate
from core.spine.labelling import SpineLabelling, now_iso


class LevelStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        migrate(db)

    @classmethod
    def open(cls, path: str | Path) -> LevelStore:
        return cls(sqlite_utils.Database(Path(path)))

    def save(self, labelling: SpineLabelling) -> None:
        if not labelling.series_uid:
            raise ValueError("a labelling needs its series_uid to be stored")
        text = labelling.to_json(indent=None)
        prov = labelling.provenance
        saved_at = now_iso()
        with self.db.conn:
            self.db["spine_levels"].upsert(
                {"series_uid": labelling.series_uid, "labelling": text, "method": prov.method, "user": prov.user,
                 "confidence": labelling.confidence, "saved_at": saved_at},
                pk="series_uid",
            )
            self.db["spine_levels_history"].insert(
                {"series_uid": labelling.series_uid, "labelling": text, "method": prov.method, "user": prov.user,
                 "saved_at": saved_at}
            )

    def load(self, series_uid: str) -> SpineLabelling | None:
        rows = list(self.db["spine_levels"].rows_where("series_uid = ?", [series_uid]))
        return SpineLabelling.from_json(rows[0]["labelling"]) if rows else None

    def history(self, series_uid: str) -> list[SpineLabelling]:
        rows = self.db["spine_levels_history"].rows_where("series_uid = ?", [series_uid], order_by="id")
        return [SpineLabelling.from_json(r["labelling"]) for r in rows]

    def delete(self, series_uid: str) -> None:
        """Forget the current labelling (the history is kept for the record)."""
        with self.db.conn:
            self.db["spine_levels"].delete_where("series_uid = ?", [series_uid])

    def labelled_series(self) -> list[str]:
        return [r["series_uid"] for r in self.db["spine_levels"].rows_where(order_by="series_uid")]
