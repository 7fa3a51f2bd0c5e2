"""The DICOM header of a loaded radiograph: the one place the radiograph tools (scale, view refusal, anterior side,
frontal-view check) and the Study panel get it from. The DICOM loader keeps it on the volume (read on its worker);
a volume built elsewhere has it read once from its first file. PNG/JPEG, or a file that cannot be read as DICOM,
give None."""
from __future__ import annotations

from typing import Any


def radiograph_header(volume: Any):
    """The header (pydicom Dataset, no pixels) of ``volume``'s first source file, or None."""
    kept = getattr(volume, "dicom_header", None)
    if kept is not None:
        return kept
    paths = list(getattr(volume, "source_paths", []) or [])
    if not paths or str(paths[0]).lower().endswith((".png", ".jpg", ".jpeg")):
        return None
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(paths[0], stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError):
        return None
    try:
        volume.dicom_header = ds  # read once
    except AttributeError:
        pass
    return ds
