"""Report export: the file extension picks the format. No Qt.

    export_report(report, "out/report.pdf", volume=volume)   # .pdf .docx .txt .json .dcm
    export_formats()                                         # {".pdf": "PDF document", ...}

Every format carries the decision-support disclaimer and the signature state. The PDF and DOCX include the key image
(mid-sagittal view with the level labels) when ``volume`` is given; the DICOM SR references the volume's source files.
The file is written to a temporary name in the target folder and renamed, so a failed export never leaves half a
report; a folder that cannot be written raises :class:`ExportError` naming it.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from core.report.model import SpineReport
from core.studies.volume import Volume

FORMATS: dict[str, tuple[str, str]] = {  # extension -> (module:function, description)
    ".pdf": ("core.report.export.pdf:write_pdf", "PDF document"),
    ".docx": ("core.report.export.word:write_docx", "Word document (DOCX)"),
    ".txt": ("core.report.export.text:write_text", "plain text"),
    ".json": ("core.report.export.jsonfile:write_json", "SpineMed report JSON"),
    ".dcm": ("core.report.export.sr:write_sr", "DICOM Structured Report (Comprehensive SR)"),
}


class ExportError(RuntimeError):
    """The report could not be written; the message names the path and the reason."""


def export_formats() -> dict[str, str]:
    return {ext: desc for ext, (_, desc) in FORMATS.items()}


def _writer(ext: str) -> Callable[..., None]:
    import importlib

    module, _, fn = FORMATS[ext][0].partition(":")
    return getattr(importlib.import_module(module), fn)


def _check_folder(path: Path) -> None:
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: the folder {folder} cannot be created "
                          f"({exc.strerror or exc})") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {path}: the folder {folder} is read-only (no write permission)")
    if path.exists() and not os.access(path, os.W_OK):
        raise ExportError(f"cannot write {path}: the file exists and is read-only")


def _umask() -> int:
    """The process umask without changing it (os.umask would, briefly, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def export_report(report: SpineReport, path: str | Path, volume: Volume | None = None) -> Path:
    """Write ``report`` to ``path`` in the format its extension names; returns the path written."""
    path = Path(path).expanduser().absolute()
    ext = path.suffix.lower()
    if ext not in FORMATS:
        raise ExportError(f"cannot write {path}: unknown report format {ext or '(no extension)'!r} "
                          f"(use one of {', '.join(FORMATS)})")
    _check_folder(path)
    key_image = None
    if volume is not None and ext in (".pdf", ".docx"):
        from core.report.export.keyimage import render_key_image

        key_image = render_key_image(volume, report)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=ext)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: the folder {path.parent} is read-only or full "
                          f"({exc.strerror or exc})") from exc
    os.close(fd)
    try:
        _writer(ext)(report, Path(tmp), key_image=key_image, volume=volume)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; an export is an ordinary document
        os.replace(tmp, path)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # a writer's own failure (e.g. reportlab's LayoutError) is an export failure too
        raise ExportError(f"cannot write {path}: the {ext[1:].upper()} writer failed "
                          f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
