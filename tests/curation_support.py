"""Helpers for the curation tests: small label maps and images written in the public formats."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np


def box_labelmap(values_by_z: list[tuple[int, int, int]], shape=(40, 40, 60), fill_x=(12, 28), fill_y=(10, 24)):
    """An int16 label map (i, j, k) with one box per (value, k0, k1) slab."""
    data = np.zeros(shape, dtype=np.int16)
    for value, k0, k1 in values_by_z:
        data[fill_x[0]:fill_x[1], fill_y[0]:fill_y[1], k0:k1] = value
    return data


def save_nifti(data: np.ndarray, path: Path, spacing=(1.5, 1.5, 2.0)) -> Path:
    affine = np.diag([*spacing, 1.0])
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def write_verse_subject(folder: Path, subject: str = "sub-verse900") -> dict[str, Path]:
    """VerSe subject-based files: L1 (20), L2 (21), L3 (22) slabs from the top (high k = superior in RAS)."""
    folder.mkdir(parents=True, exist_ok=True)
    mask = box_labelmap([(20, 44, 56), (21, 28, 40), (22, 12, 24)])
    mask_path = save_nifti(mask, folder / f"{subject}_seg-vert_msk.nii.gz")
    ctd = [{"direction": ["L", "A", "S"]}]  # the axis letters of this RAS-stored array are informative only
    for value, k in ((20, 50.0), (21, 34.0), (22, 18.0)):
        ctd.append({"label": value, "X": 20.0, "Y": 14.0, "Z": k})
    ctd_path = folder / f"{subject}_seg-subreg_ctd.json"
    ctd_path.write_text(json.dumps(ctd))
    return {"mask": mask_path, "ctd": ctd_path}
