"""The one exception the study loaders raise when a series cannot be turned into a Volume."""
from __future__ import annotations

from pathlib import Path


class StudyLoadError(Exception):
    """A file or series could not be loaded; ``reason`` is in words a user understands.

    ``internal`` names the unexpected exception this error replaced, when the loaders' safety net caught one that
    no check foresaw (empty for the errors the checks raise themselves): logs and the fuzz benchmark count them.
    """

    def __init__(self, path: str | Path, reason: str, *, internal: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        self.internal = internal
        super().__init__(f"cannot load {self.path}: {reason}")

    def __reduce__(self):
        # Rebuilt from path and reason (not the formatted message) when it crosses a process boundary.
        return (type(self), (self.path, self.reason), {"internal": self.internal})


def unexpected_reason(exc: BaseException) -> str:
    """Plain words for an exception no check foresaw (its own text is library jargon, not for users)."""
    if isinstance(exc, MemoryError):
        return "not enough memory to read this image"
    if isinstance(exc, RecursionError):
        return "the file's structure is nested too deeply to read: it is damaged"
    return "the file is damaged or stored in a form this program cannot read"
