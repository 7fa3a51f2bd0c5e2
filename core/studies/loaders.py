"""Import entry points: ``scan`` a folder, file or zip into series sources, and ``load_series`` one into a Volume.

File types are recognised by content (DICOM preamble or header, NIfTI magic, PNG/JPEG signatures), not by name;
names only decide whether an unrecognised file is worth a complaint (``scan.dcm`` full of noise is reported,
``notes.txt`` is skipped silently).
"""
from __future__ import annotations

import gzip
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from core.studies import dicom, nifti, raster
from core.studies.errors import StudyLoadError, unexpected_reason
from core.studies.sources import ImportProblem, ScanResult, SeriesSource
from core.studies.volume import Volume
from core.tasks import Cancelled, CancelToken, ProgressFn, check, report, sub_progress

_EXPECTED_KIND = {".dcm": "dicom", ".dicom": "dicom", ".ima": "dicom", ".nii": "nifti", ".nii.gz": "nifti",
                  ".png": "raster", ".jpg": "raster", ".jpeg": "raster", ".zip": "zip"}
_NOT_A = {"dicom": "not a DICOM file (no DICOM header found)", "nifti": "not a NIfTI file (no NIfTI header found)",
          "raster": "not a PNG/JPEG image (unrecognised content)", "zip": "not a zip archive"}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_ZIP_LIMIT_BYTES = 64 << 30  # refuse archives that claim to unpack to more than this


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _is_nifti_header(head: bytes) -> bool:
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return int.from_bytes(head[:4], "little") == 348 or int.from_bytes(head[:4], "big") == 348
    return len(head) >= 8 and head[4:8] in (b"n+2\x00", b"ni2\x00")


def _gunzip_head(path: Path, n: int = 540) -> bytes:
    try:
        with gzip.open(path, "rb") as fp:
            return fp.read(n)
    except (OSError, EOFError, zlib.error):
        return b""


def detect_kind(path: Path) -> str | None:
    """'dicom' | 'nifti' | 'raster' | 'zip' from the file's first bytes, or None when it is none of them."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(540)
    except OSError:
        return None
    if dicom.looks_like_dicom(head):
        return "dicom"
    if _is_nifti_header(head):
        return "nifti"
    if head[:2] == b"\x1f\x8b" and _is_nifti_header(_gunzip_head(path)):
        return "nifti"
    if head.startswith((_PNG_MAGIC, b"\xff\xd8\xff")):
        return "raster"
    if head[:4] in _ZIP_MAGIC:
        return "zip"
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _skip_silently(path: Path) -> bool:
    return path.name.startswith(".")  # macOS resource forks (._IM0001.dcm), .DS_Store


def _walk(folder: Path, cancel: CancelToken | None) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        check(cancel)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        files.extend(Path(root) / n for n in sorted(names))
    return files


def scan(path: str | Path, progress: ProgressFn | None = None, cancel: CancelToken | None = None,
         extract_dir: str | Path | None = None) -> ScanResult:
    """Find the series in a folder (recursively), a single file, or a .zip (extracted into ``extract_dir``).

    Never raises for bad user files: they come back as ``ImportProblem``s next to the series that did import.
    Raises ``ValueError`` for a zip without ``extract_dir`` and ``Cancelled`` when cancelled.
    """
    root = Path(path).expanduser().absolute()
    result = ScanResult()
    archive_folder = None
    if not root.exists():
        result.problems.append(ImportProblem(root, "does not exist"))
        return result
    report(progress, 0.0, f"Looking for images in {root.name}")
    if root.is_file() and detect_kind(root) == "zip":
        if extract_dir is None:
            raise ValueError("extract_dir is required to import a zip archive")
        try:
            archive_folder, problems = extract_zip(root, Path(extract_dir), cancel)
        except StudyLoadError as exc:
            result.problems.append(ImportProblem(root, exc.reason))
            return result
        result.problems.extend(problems)
        files = _walk(archive_folder, cancel)
    elif root.is_file():
        files = [root]
    else:
        files = _walk(root, cancel)
    report(progress, 0.05, f"Checking {len(files)} files")
    by_kind: dict[str, list[Path]] = {"dicom": [], "nifti": [], "raster": []}
    for n, file in enumerate(files):
        if n % 64 == 0:
            check(cancel)
        if file.name.upper() == "DICOMDIR":  # an index of the files next to it, which are scanned anyway
            continue
        kind = detect_kind(file)
        expected = _EXPECTED_KIND.get(_suffix(file))
        if kind in by_kind:
            by_kind[kind].append(file)
        elif kind == "zip":
            result.problems.append(ImportProblem(file, "zip archive inside the import: extract it and import the folder"))
        elif expected and not _skip_silently(file):
            reason = _NOT_A[expected]
            if _size(file) == 0:
                reason = f"empty file ({reason})"
            result.problems.append(ImportProblem(file, reason))
    report(progress, 0.1, "Reading headers")
    dicom_part = dicom.scan_files(by_kind["dicom"], sub_progress(progress, 0.1, 0.95), cancel)
    result.series.extend(dicom_part.series)
    result.problems.extend(dicom_part.problems)
    for kind, probe, problem_type in (("nifti", nifti.probe, nifti.NiftiProblem),
                                      ("raster", raster.probe, raster.RasterProblem)):
        for file in by_kind[kind]:
            check(cancel)
            try:
                result.series.append(probe(file))
            except problem_type as exc:
                result.problems.append(ImportProblem(file, exc.reason))
            except OSError as exc:
                result.problems.append(ImportProblem(file, f"cannot read file ({exc.strerror or 'input/output error'})"))
            except Exception as exc:  # noqa: BLE001 - one unforeseen file must not stop the others: it is reported
                result.problems.append(ImportProblem(file, unexpected_reason(exc), internal=type(exc).__name__))
    if not result.series and not result.problems:
        result.problems.append(ImportProblem(root, f"no images found in {root}"))
    if archive_folder is not None:  # name files inside the archive as the user knows them: archive.zip/inner/path
        for problem in result.problems:
            if problem.path.is_relative_to(archive_folder):
                problem.path = root / problem.path.relative_to(archive_folder)
    result.problems.sort(key=lambda p: str(p.path))
    report(progress, 1.0, f"Found {len(result.series)} series")
    return result


def _safe_member_path(name: str) -> PurePosixPath | None:
    """The member's relative path, or None if it is absolute or climbs out of the target folder."""
    name = name.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or ":" in parts[0] or any(p == ".." for p in parts):
        return None
    return PurePosixPath(*[p for p in parts if p not in ("", ".")])


def extract_zip(archive: Path, extract_dir: Path, cancel: CancelToken | None = None
                ) -> tuple[Path, list[ImportProblem]]:
    """Unpack into a new folder under ``extract_dir``; unsafe members (absolute, ``..``, links) are refused."""
    problems: list[ImportProblem] = []
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise StudyLoadError(archive, "not a readable zip archive (damaged or incomplete)") from None
    with zf:
        members = zf.infolist()
        total = sum(m.file_size for m in members)
        extract_dir.mkdir(parents=True, exist_ok=True)
        if total > min(_ZIP_LIMIT_BYTES, shutil.disk_usage(extract_dir).free):
            raise StudyLoadError(archive, f"zip unpacks to {total / 1e9:.1f} GB: not enough free disk space")
        target = Path(tempfile.mkdtemp(prefix=archive.stem[:40] + "-", dir=extract_dir)).resolve()
        for member in members:
            check(cancel)
            rel = _safe_member_path(member.filename)
            is_link = stat.S_ISLNK(member.external_attr >> 16)
            if rel is None or is_link:
                problems.append(ImportProblem(archive / member.filename.lstrip("/\\"),
                                              "unsafe path in zip (outside the archive folder): not extracted"))
                continue
            dest = target.joinpath(*rel.parts)
            if member.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError, ValueError):
                problems.append(ImportProblem(archive / member.filename, "could not be extracted (damaged, encrypted "
                                              "or compressed in a way this program cannot unpack)"))
                dest.unlink(missing_ok=True)
    return target, problems


def load_series(source: SeriesSource, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None) -> Volume:
    """Load a scanned series into a Volume; raises StudyLoadError (with the file and reason) or Cancelled."""
    if not source.files:
        raise StudyLoadError(source.series_uid or "?", "the series has no files")
    for file in source.files:
        if not Path(file).is_file():
            raise StudyLoadError(file, "file not found (moved or deleted since it was imported)")
    check(cancel)
    loader = _LOADERS.get(source.kind)
    if loader is None:
        raise StudyLoadError(source.files[0], f"unknown series kind {source.kind!r}")
    try:
        return loader(source, progress, cancel)
    except (StudyLoadError, Cancelled):
        raise
    except Exception as exc:  # the safety net: users get a reason, never a traceback; ``internal`` keeps the type
        raise StudyLoadError(source.files[0], unexpected_reason(exc), internal=type(exc).__name__) from exc


_LOADERS = {"dicom": dicom.load_series, "nifti": nifti.load, "raster": raster.load}
