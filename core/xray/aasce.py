"""Readers for the AASCE 2019 / SpineWeb Dataset 16 label layout (radiograph landmarks and Cobb angles).

The layout: three headerless CSV files with one row per image, rows in the same order:
``filenames.csv`` (the image file name), ``landmarks.csv`` (136 numbers: x1..x68 then y1..y68, each divided by the
image's width or height) and ``angles.csv`` (three Cobb angles in degrees, in the order the challenge names proximal
thoracic, main thoracic, thoracolumbar/lumbar). Landmarks are returned in pixels of the image, shape (68, 2) as (x, y).

Some manual annotations have a broken vertebra (a last vertebra whose corners jump back to the top of the image):
:func:`broken_vertebrae` finds them so training and evaluation can leave them out.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.xray.levels import N_LANDMARKS, N_VERTEBRAE


class AasceFormatError(ValueError):
    """A label file that does not follow the AASCE layout; the message names the file, row and problem."""


@dataclass
class AasceRecord:
    name: str                       # image file name as listed in filenames.csv
    landmarks_norm: np.ndarray      # (68, 2) x/width, y/height
    angles: np.ndarray | None       # (3,) degrees, or None without an angles file

    @property
    def patient(self) -> str:
        return patient_id(self.name)

    def landmarks_px(self, width: int, height: int) -> np.ndarray:
        return self.landmarks_norm * np.array([width, height], dtype=float)


def _read_rows(path: Path, width: int | None) -> list[list[float]]:
    path = Path(path)
    if not path.is_file():
        raise AasceFormatError(f"{path}: file not found")
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            try:
                values = [float(c) for c in row]
            except ValueError:
                raise AasceFormatError(f"{path}, row {n}: not all values are numbers") from None
            if width is not None and len(values) != width:
                raise AasceFormatError(f"{path}, row {n}: {len(values)} values, expected {width}")
            if not np.all(np.isfinite(values)):
                raise AasceFormatError(f"{path}, row {n}: a value is not finite")
            rows.append(values)
    return rows


def read_filenames(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise AasceFormatError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8-sig") as f:
        names = [row[0].strip() for row in csv.reader(f) if row and row[0].strip()]
    if not names:
        raise AasceFormatError(f"{path}: no file names")
    return names


def read_landmarks(path: str | Path) -> np.ndarray:
    """(n, 68, 2) normalised (x, y) landmarks."""
    rows = np.asarray(_read_rows(Path(path), 2 * N_LANDMARKS), dtype=float)
    if rows.size == 0:
        raise AasceFormatError(f"{path}: no rows")
    return np.stack([rows[:, :N_LANDMARKS], rows[:, N_LANDMARKS:]], axis=-1)


def read_angles(path: str | Path) -> np.ndarray:
    """(n, 3) Cobb angles in degrees."""
    rows = np.asarray(_read_rows(Path(path), 3), dtype=float)
    if rows.size == 0:
        raise AasceFormatError(f"{path}: no rows")
    return rows


def read_dataset(filenames: str | Path, landmarks: str | Path | None = None,
                 angles: str | Path | None = None) -> list[AasceRecord]:
    """Records for every row; the files must have the same number of rows."""
    names = read_filenames(filenames)
    lms = read_landmarks(landmarks) if landmarks else None
    angs = read_angles(angles) if angles else None
    for label, arr, p in (("landmarks", lms, landmarks), ("angles", angs, angles)):
        if arr is not None and len(arr) != len(names):
            raise AasceFormatError(f"{p}: {len(arr)} rows of {label} but {len(names)} file names in {filenames}")
    nan = np.full((N_LANDMARKS, 2), np.nan)
    return [AasceRecord(n, lms[i] if lms is not None else nan, angs[i] if angs is not None else None)
            for i, n in enumerate(names)]


def patient_id(name: str) -> str:
    """The patient a file name belongs to: 'X-162 A AP.jpg' and 'X-162 B AP.jpg' are patient 'X-162'.

    Names without the ' A AP' suffix (e.g. 'sunhl-1th-20-Jul-2016-coronal7.jpg') lose a trailing number, so a
    numbered series of unknown patients stays on one side of a split.
    """
    stem = Path(name).stem
    m = re.match(r"^(.*?)\s+[A-Z]\s*AP$", stem)
    if m:
        return m.group(1).strip()
    return re.sub(r"\d+$", "", stem).rstrip("-_ ")


def broken_vertebrae(landmarks: np.ndarray) -> list[int]:
    """Indices (0 = T1) of vertebrae whose annotation cannot be right: the centre above the previous vertebra's by
    more than half a typical vertebra height, or the lower corners above the upper ones."""
    pts = np.asarray(landmarks, dtype=float).reshape(N_VERTEBRAE, 4, 2)
    upper_y = pts[:, :2, 1].mean(axis=1)
    lower_y = pts[:, 2:, 1].mean(axis=1)
    heights = lower_y - upper_y
    typical = float(np.median(np.abs(heights)))
    centre_y = (upper_y + lower_y) / 2
    bad = []
    for v in range(N_VERTEBRAE):
        if heights[v] <= 0 or (v > 0 and centre_y[v] < centre_y[v - 1] - typical / 2):
            bad.append(v)
    return bad


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file without decoding its pixels."""
    from PIL import Image

    with Image.open(path) as im:
        return im.size
