"""The DICOM header of a loaded radiograph, read once from its first file: the one place the radiograph tools
(scale, view refusal, anterior side, frontal-view check) get it from. PNG/JPEG, or a file that cannot be read as
DICOM, give None."""
from __future__ import annotations

from typing import Any


def radiograph_header(volume: Any):
    """The header (pydicom Dataset, no pixels) of ``volume``'s first source file, or None."""
    paths = list(getattr(volume, "source_paths", []) or [])
    if not paths:
        return None
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(paths[0], stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError):
        return None
