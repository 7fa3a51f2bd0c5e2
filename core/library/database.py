"""Opening the library's SQLite file for the stores that share it (conversations, reports).

One helper so every store opens it the same way: a connection usable from worker threads (callers serialise
access with their own lock), WAL journal, foreign keys on, and the library's migrations applied.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import sqlite_utils

from core import paths
from core.library.migrations import migrate


def open_library_db(db_path: Path | str | None = None) -> tuple[Path, sqlite_utils.Database]:
    """(path, database) for ``db_path`` or the default library file, migrated to the current schema."""
    path = Path(db_path) if db_path else paths.library_db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA journal_mode = WAL")
    migrate(db)
    return path, db


class LibraryStore:
    """Base of the stores kept in the library file: the database, its path, one lock serialising access."""

    def __init__(self, db_path: Path | str | None = None) -> None:
        self.path, self.db = open_library_db(db_path)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self.db.close()
