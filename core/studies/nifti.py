"""NIfTI (.nii / .nii.gz) import with nibabel: header probe for the scan, and loading into an LPS Volume."""
from __future__ import annotations

import gzip
import hashlib
import re
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from core.studies.errors import StudyLoadError
from core.studies.sources import SeriesSource
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn, check, report

_SEG_TOKENS = {"msk", "mask", "seg", "dseg", "labels", "segmentation", "labelmap"}
_MR_TOKENS = {"mr", "mri", "t1", "t2", "t1w", "t2w", "t2star", "flair", "stir", "dwi", "pd", "pdw", "bold",
              "dixon", "mprage", "space", "tse", "swi"}
_CT_TOKENS = {"ct", "cta"}
_ID_HASH_BYTES = 1 << 20


class NiftiProblem(Exception):
    """The file is not a readable NIfTI image; ``reason`` is for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


def _open(path: Path, mmap: bool = True):
    """The nibabel image; files found by content under another name are opened by their header magic."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return _open_unnamed(path)
    try:
        img = nib.load(str(path), mmap=mmap)
    except nib.filebasedimages.ImageFileError as exc:
        raise NiftiProblem(f"not a NIfTI file ({exc})") from None
    except (OSError, EOFError, ValueError) as exc:
        raise NiftiProblem(f"unreadable NIfTI file: {exc}") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise NiftiProblem(f"not a NIfTI file (read as {type(img).__name__})")
    return img


def _open_unnamed(path: Path):
    try:
        with open(path, "rb") as fp:
            data = fp.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        klass = nib.Nifti2Image if data[4:8] in (b"n+2\x00", b"ni2\x00") else nib.Nifti1Image
        return klass.from_bytes(data)
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as exc:
        raise NiftiProblem(f"unreadable NIfTI file: {exc}") from None


def _description(img) -> str:
    raw = img.header.get("descrip")
    if raw is None:
        return ""
    value = raw.item() if hasattr(raw, "item") else raw
    return (value.decode("latin-1", "replace") if isinstance(value, bytes) else str(value)).strip("\x00 ").strip()


def probe(path: Path) -> SeriesSource:
    """Header-only look at a NIfTI file (raises NiftiProblem when it is not one)."""
    img = _open(path)
    shape = img.shape
    warnings = []
    if len(shape) < 2 or any(n == 0 for n in shape):
        raise NiftiProblem(f"NIfTI image has an unusable shape {shape}")
    extra = int(np.prod(shape[3:])) if len(shape) > 3 else 1
    if extra > 1:
        warnings.append(f"{len(shape)}D image: only the first of {extra} volumes is shown")
    if img.header.get("sform_code", 0) == 0 and img.header.get("qform_code", 0) == 0:
        warnings.append("no orientation in the NIfTI header: axes assumed to be R-L, P-A, I-S (RAS)")
    description = _description(img)
    return SeriesSource(
        kind="nifti", series_uid=content_id(path, "nifti"), files=[path],
        modality=guess_modality(path, description), series_description=_stem(path),
        n_images=int(shape[2]) if len(shape) > 2 else 1, warnings=warnings,
    )


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
        img = _open(path, mmap=False)  # a memory map would keep the file open (and locked on Windows)
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
    except NiftiProblem as exc:
        raise StudyLoadError(path, exc.reason) from None
    except (OSError, EOFError, ValueError, MemoryError, zlib.error) as exc:
        raise StudyLoadError(path, f"NIfTI pixel data could not be read: {exc}") from None
    check(cancel)
    report(progress, 0.9, "Converting")
    if data.dtype.byteorder not in ("=", "|"):
        data = data.astype(data.dtype.newbyteorder("="))
    description = _description(img)
    return Volume(
        data=data, affine=ras_to_lps(img.affine), modality=source.modality or guess_modality(path, description),
        series_description=source.series_description or _stem(path), series_uid=source.series_uid,
        source_paths=[path],
    )
