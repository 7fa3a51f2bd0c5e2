"""The one exception the study loaders raise when a series cannot be turned into a Volume."""
from __future__ import annotations

from pathlib import Path


class StudyLoadError(Exception):
    """A file or series could not be loaded; ``reason`` is in words a user understands."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot load {self.path}: {reason}")
