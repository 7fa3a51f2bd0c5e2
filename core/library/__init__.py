"""The local study library: an SQLite file (sqlite-utils) of imported studies, series, files and thumbnails."""
from core.library.library import ImportReport, Library

__all__ = ["ImportReport", "Library"]
