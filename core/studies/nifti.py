"""NIfTI (.nii / .nii.gz) import with nibabel: header probe for the scan, and loading into an LPS Volume.

Every header is checked by :mod:`core.studies.nifti_header` (and against the memory free) before nibabel reads it.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import re
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.spatialimages import HeaderDataError
from nibabel.wrapstruct import WrapStructError

from core.studies.errors import StudyLoadError
from core.studies.limits import check_memory
from core.studies.nifti_header import (
    NiftiLayout,
    NiftiProblem,
    check_extensions,
    check_header,
    read_head,
    verify_gzip,
)
from core.studies.sources import SeriesSource
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn, check, report

__all__ = ["NiftiProblem", "content_id", "guess_modality", "load", "looks_like_ct", "probe", "ras_to_lps"]

_SEG_TOKENS = {"msk", "mask", "seg", "dseg", "labels", "segmentation", "labelmap"}
_MR_TOKENS = {"mr", "mri", "t1", "t2", "t1w", "t2w", "t2star", "flair", "stir", "dwi", "pd", "pdw", "bold",
              "dixon", "mprage", "space", "tse", "swi"}
_CT_TOKENS = {"ct", "cta"}
_ID_HASH_BYTES = 1 << 20
# nibabel's own errors for headers our checks let through; its texts are not for users.
_NIBABEL_ERRORS = (HeaderDataError, WrapStructError, ValueError, OverflowError, TypeError, KeyError, IndexError)


def content_id(path: Path, prefix: str) -> str:
    """Stable series id of a single-file image: hash of its size and first MiB (same file -> same id anywhere)."""
    digest = hashlib.sha1()
    with open(path, "rb") as fp:
        digest.update(fp.read(_ID_HASH_BYTES))
        fp.seek(0, 2)
        digest.update(str(fp.tell()).encode())
    return f"{prefix}:{digest.hexdigest()[:32]}"


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


def guess_modality(path: Path, description: str = "") -> str:
    """'SEG' for label maps, 'CT' / 'MR' from the file name (BIDS suffix first) or header description, else 'OT'."""
    name_tokens = _tokens(_stem(path))
    all_tokens = name_tokens + _tokens(description)
    if any(t in _SEG_TOKENS or t.endswith("seg") for t in all_tokens):
        return "SEG"
    for tokens in (name_tokens[-1:], _tokens(description), name_tokens):
        if any(t in _CT_TOKENS for t in tokens):
            return "CT"
        if any(t in _MR_TOKENS for t in tokens):
            return "MR"
    return "OT"


def _layout(path: Path, verify: bool) -> NiftiLayout:
    """The checked header layout; ``verify`` also reads a .nii.gz to its end (import) to prove it is complete."""
    head, compressed = read_head(path)
    layout = check_header(head, path.stat().st_size, compressed)
    check_extensions(path, layout, compressed)
    if verify and compressed:
        verify_gzip(path, layout.vox_offset + layout.nbytes)
    return layout


def _first_volume_memory(layout: NiftiLayout) -> int:
    """Bytes for the first volume as stored plus, when scaled, float32 output (nibabel scales through float64)."""
    voxels = layout.first_volume_bytes // layout.dtype.itemsize
    return layout.first_volume_bytes + (voxels * 12 if layout.scaled else 0)


def _open(path: Path, layout: NiftiLayout, mmap: bool = True, header_only: bool = False):
    """The nibabel image; files found by content under another name are opened by their header magic."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return _open_unnamed(path, layout, header_only)
    try:
        img = nib.load(str(path), mmap=mmap)
    except nib.filebasedimages.ImageFileError:
        raise NiftiProblem("not a NIfTI file (nibabel does not recognise its header)") from None
    except (OSError, EOFError, zlib.error):
        raise NiftiProblem("the file cannot be read: damaged or incomplete") from None
    except _NIBABEL_ERRORS:
        raise NiftiProblem("the NIfTI header is damaged (its fields contradict each other)") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise NiftiProblem(f"not a NIfTI file (read as {type(img).__name__})")
    return img


def _open_unnamed(path: Path, layout: NiftiLayout, header_only: bool):
    """Read at most header + pixel data (never a whole decompressed bomb) and let nibabel parse the bytes."""
    needed = layout.vox_offset + (0 if header_only else layout.nbytes)
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if compressed:
                with gzip.open(raw, "rb") as gz:
                    data = gz.read(needed)
            else:
                data = raw.read(needed)
        klass = nib.Nifti2Image if layout.version == 2 else nib.Nifti1Image
        return klass.from_stream(io.BytesIO(data))
    except (OSError, EOFError, zlib.error):
        raise NiftiProblem("the file cannot be read: damaged or incomplete") from None
    except (nib.filebasedimages.ImageFileError, *_NIBABEL_ERRORS):
        raise NiftiProblem("the NIfTI header is damaged (its fields contradict each other)") from None


def _description(img) -> str:
    raw = img.header.get("descrip")
    if raw is None:
        return ""
    value = raw.item() if hasattr(raw, "item") else raw
    return (value.decode("latin-1", "replace") if isinstance(value, bytes) else str(value)).strip("\x00 ").strip()


def probe(path: Path, verify: bool = True) -> SeriesSource:
    """Checked header of a NIfTI file (raises NiftiProblem when it cannot be read as an image).

    ``verify`` (import) also reads a .nii.gz to its end, so a cut-off download is refused now, not when opened.
    """
    layout = _layout(path, verify)
    try:
        check_memory(path, _first_volume_memory(layout), f"a {_dims(layout.shape[:3])} image")
    except StudyLoadError as exc:
        raise NiftiProblem(exc.reason) from None
    img = _open(path, layout, header_only=True)
    shape = layout.shape
    warnings = []
    extra = int(np.prod(shape[3:])) if len(shape) > 3 else 1
    if extra > 1:
        warnings.append(f"{len(shape)}D image: only the first of {extra} volumes is shown")
    if img.header.get("sform_code", 0) == 0 and img.header.get("qform_code", 0) == 0:
        warnings.append("no orientation in the NIfTI header: axes assumed to be R-L, P-A, I-S (RAS)")
    if _checked_affine(img)[1]:
        warnings.append(_ZERO_VOXELS)
    description = _description(img)
    return SeriesSource(
        kind="nifti", series_uid=content_id(path, "nifti"), files=[path],
        modality=guess_modality(path, description), series_description=_stem(path),
        n_images=int(shape[2]) if len(shape) > 2 else 1, warnings=warnings,
    )


def _dims(shape) -> str:
    return " x ".join(str(n) for n in shape)


_ZERO_VOXELS = ("the voxel axes in the header are flat (a zero size, or two axes parallel): 1 mm voxels along "
                "R-L, P-A, I-S assumed, so distances and orientation are not reliable")


def _checked_affine(img) -> tuple[np.ndarray, str | None]:
    """The header's voxel->RAS affine, or 1 mm axes and a warning when its axes are flat (no volume)."""
    try:
        affine = np.asarray(img.affine, dtype=float)
    except _NIBABEL_ERRORS:
        affine = np.full((4, 4), np.nan)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise NiftiProblem("the voxel size or orientation in the header is not a number: the header is damaged")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        return np.eye(4), _ZERO_VOXELS
    return affine, None


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def ras_to_lps(affine: np.ndarray) -> np.ndarray:
    """NIfTI (RAS+) voxel->world affine to the LPS+ convention of Volume: negate the x and y rows."""
    lps = np.array(affine, dtype=float)
    lps[:2, :] *= -1
    return lps


def load(source: SeriesSource, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Volume:
    """Load a NIfTI file: scaled only when scl_slope is set (else the stored integer type is kept)."""
    path = Path(source.files[0])
    report(progress, 0.05, f"Reading {path.name}")
    try:
        layout = _layout(path, verify=False)  # the file may have changed since it was imported
        check_memory(path, _first_volume_memory(layout), f"a {_dims(layout.shape[:3])} image")
        img = _open(path, layout, mmap=False)  # a memory map would keep the file open (and locked on Windows)
        affine, warning = _checked_affine(img)
        data = _read_first_volume(img)
    except NiftiProblem as exc:
        raise StudyLoadError(path, exc.reason) from None
    check(cancel)
    report(progress, 0.9, "Converting")
    if data.dtype.byteorder not in ("=", "|"):
        data = data.astype(data.dtype.newbyteorder("="))
    description = _description(img)
    warnings = [warning] if warning and warning not in source.warnings else []
    modality = source.modality or guess_modality(path, description)
    if modality == "OT" and looks_like_ct(data):
        modality = "CT"
        warnings.append(f"{path.name}: the file does not say its modality; its values look like CT Hounsfield units "
                        "(air near -1000, bone above 300), so it is treated as CT")
    return Volume(
        data=data, affine=ras_to_lps(affine), modality=modality,
        series_description=source.series_description or _stem(path), series_uid=source.series_uid,
        source_paths=[path], warnings=warnings,
    )


def looks_like_ct(data: np.ndarray) -> bool:
    """Whether stored values look like CT Hounsfield units: some air (-1100..-900, or the -1024/-2048/-3024 padding
    some scanners use outside the reconstruction circle) and bone (above 300). MR magnitudes are never below zero."""
    sample = np.asarray(data[::4, ::4, ::4] if data.ndim == 3 else data, dtype=np.float32)
    if sample.size == 0 or not np.isfinite(sample).any():
        return False
    air = np.count_nonzero((sample >= -3100) & (sample <= -900)) / sample.size
    return air >= 0.01 and float(np.nanmax(sample)) >= 300.0


def _read_first_volume(img) -> np.ndarray:
    """The stored values of the first 3D volume (float32 when the header scales them); NiftiProblem if unreadable."""
    try:
        proxy = img.dataobj
        # nibabel moves scl_slope/scl_inter from the header into the array proxy when it loads the file.
        slope, inter = float(getattr(proxy, "slope", 1.0)), float(getattr(proxy, "inter", 0.0))
        scaled = (slope, inter) != (1.0, 0.0)
        if len(img.shape) > 3:
            first = (slice(None),) * 3 + (0,) * (len(img.shape) - 3)
            data = np.asanyarray(proxy[first])  # nibabel keeps the stored dtype when there is no scaling
        elif scaled:
            data = img.get_fdata(dtype=np.float32)
        else:
            data = np.asanyarray(proxy)
        if scaled and data.dtype != np.float32:
            data = data.astype(np.float32)
        return data
    except (EOFError, gzip.BadGzipFile, zlib.error):
        raise NiftiProblem("the compressed pixel data are damaged or cut short: the file is incomplete") from None
    except OSError as exc:
        raise NiftiProblem(f"the file cannot be read ({exc.strerror or 'input/output error'})") from None
    except MemoryError:
        raise NiftiProblem("not enough memory to read this image") from None
    except _NIBABEL_ERRORS:
        raise NiftiProblem("the pixel data are shorter than the header declares: the file is damaged or "
                           "incomplete") from None
