"""The one in-memory image model every loader produces and every view consumes.

Conventions (stated once, used everywhere):
- ``data`` is indexed ``data[i, j, k]`` where, for DICOM, i = column, j = row, k = slice (frame).
- ``affine`` is a 4x4 matrix mapping ``(i, j, k, 1)`` voxel indices to patient coordinates in
  millimetres in **LPS** (DICOM convention: +x towards patient Left, +y Posterior, +z Superior).
  NIfTI files store RAS; loaders flip the first two rows when reading them.
- Values are real-world units after rescale (Hounsfield units for CT).
- A plain radiograph (CR/DX/PNG/JPEG) is a volume with one slice (``shape[2] == 1``) and ``is_2d``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

AXIS_CODES = ("L", "P", "S")
_OPPOSITE = {"L": "R", "R": "L", "P": "A", "A": "P", "S": "I", "I": "S"}


@dataclass
class Volume:
    data: np.ndarray
    affine: np.ndarray
    modality: str = "OT"
    series_description: str = ""
    series_uid: str = ""
    study_uid: str = ""
    patient_age: str | None = None
    patient_sex: str | None = None
    source_paths: list[Path] = field(default_factory=list)
    body_part: str = ""
    warnings: list[str] = field(default_factory=list)  # found while loading, e.g. images shown blank
    spacing_known: bool = True  # False for a PNG/JPEG: its 1 mm "spacing" is a stand-in, measurements are in pixels
    # A single DICOM image's header (pydicom Dataset, no pixels), read by its loader off the GUI thread: the
    # radiograph tools and the Study panel read it from here (core.xray.header.radiograph_header).
    dicom_header: object | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.data.ndim == 2:
            self.data = self.data[:, :, np.newaxis]
        if self.data.ndim != 3:
            raise ValueError(f"volume data must be 2D or 3D, got shape {self.data.shape}")
        self.affine = np.asarray(self.affine, dtype=float)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k (column norms of the affine)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def is_2d(self) -> bool:
        return self.data.shape[2] == 1

    def orientation(self) -> str:
        """Three letters naming the patient direction each array axis increases towards (e.g. 'LPS', 'PIR')."""
        letters = []
        for col in range(3):
            vec = self.affine[:3, col]
            axis = int(np.argmax(np.abs(vec)))
            letter = AXIS_CODES[axis]
            letters.append(letter if vec[axis] > 0 else _OPPOSITE[letter])
        return "".join(letters)

    def voxel_to_patient(self, ijk) -> np.ndarray:
        """Voxel indices (..., 3) -> LPS millimetres (..., 3)."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def patient_to_voxel(self, xyz) -> np.ndarray:
        """LPS millimetres (..., 3) -> continuous voxel indices (..., 3)."""
        inv = np.linalg.inv(self.affine)
        xyz = np.asarray(xyz, dtype=float)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def as_closest_lps(self) -> Volume:
        """Same image with axes permuted/flipped so i, j, k increase towards L, P, S.

        No resampling: oblique acquisitions keep their small tilt in the affine. Views use this so that
        axial = data[:, :, k], coronal = data[:, j, :], sagittal = data[i, :, :].
        """
        if self.is_2d:
            return self
        rot = self.affine[:3, :3]
        perm = [int(np.argmax(np.abs(rot[axis, :]))) for axis in range(3)]
        if sorted(perm) != [0, 1, 2]:
            return self
        data = np.transpose(self.data, perm)
        affine = np.eye(4)
        affine[:3, :3] = rot[:, perm]
        affine[:3, 3] = self.affine[:3, 3]
        for axis in range(3):
            if affine[axis, axis] < 0:
                n = data.shape[axis]
                data = np.flip(data, axis=axis)
                affine[:3, 3] = affine[:3, 3] + affine[:3, axis] * (n - 1)
                affine[:3, axis] = -affine[:3, axis]
        return replace(self, data=np.ascontiguousarray(data), affine=affine)
