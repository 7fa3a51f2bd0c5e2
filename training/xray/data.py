"""Radiographs and landmarks for training: patient-wise split, a preprocessed cache, and batch augmentation.

The cache (``cache_HxW.npz`` in the run folder) holds every image already scaled and resized by
:func:`core.xray.preprocess.prepare01` (as uint8), the normalised landmarks, the original sizes, the reference
angles and a mask of the landmarks that can be trusted (broken vertebrae of the manual annotation left out).
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.xray.aasce import broken_vertebrae, read_dataset
from core.xray.preprocess import prepare01


@dataclass
class XrayData:
    names: list[str]
    images: np.ndarray        # (N, H, W) uint8, network input size
    landmarks: np.ndarray     # (N, 68, 2) normalised (x, y)
    valid: np.ndarray         # (N, 68) bool: the landmark is trusted
    sizes: np.ndarray         # (N, 2) original (width, height)
    angles: np.ndarray        # (N, 3) reference angles, degrees
    broken: np.ndarray        # (N,) bool: the annotation has a broken vertebra


def load_data(data_dir: Path, cache: Path, height: int, width: int, progress=None) -> XrayData:
    data_dir = Path(data_dir)
    labels = data_dir / "labels"
    records = read_dataset(labels / "filenames.csv", labels / "landmarks.csv", labels / "angles.csv")
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if list(z["names"]) == [r.name for r in records]:
            return XrayData(list(z["names"]), z["images"], z["landmarks"], z["valid"], z["sizes"], z["angles"],
                            z["broken"])
    from PIL import Image

    images = np.empty((len(records), height, width), np.uint8)
    valid = np.ones((len(records), 68), bool)
    sizes = np.empty((len(records), 2), np.int64)
    for i, r in enumerate(records):
        path = data_dir / "images" / r.name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: listed in {labels / 'filenames.csv'} but missing")
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L"))
        sizes[i] = (arr.shape[1], arr.shape[0])
        images[i] = np.round(prepare01(arr, height, width) * 255).astype(np.uint8)
        for v in broken_vertebrae(r.landmarks_px(*sizes[i])):
            valid[i, 4 * v: 4 * v + 4] = False
        if progress:
            progress(i + 1, len(records))
    lms = np.stack([r.landmarks_norm for r in records])
    angles = np.stack([r.angles for r in records])
    broken = ~valid.all(axis=1)
    names = [r.name for r in records]
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, names=np.array(names), images=images, landmarks=lms, valid=valid, sizes=sizes, angles=angles,
             broken=broken)
    tmp.replace(cache)
    return XrayData(names, images, lms, valid, sizes, angles, broken)


def patient_split(names: list[str], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Train and validation indices with every patient's images on one side only."""
    from core.xray.aasce import patient_id

    patients = sorted({patient_id(n) for n in names})
    random.Random(seed).shuffle(patients)
    n_val = max(1, round(val_fraction * len(patients)))
    val_patients = set(patients[:n_val])
    val = [i for i, n in enumerate(names) if patient_id(n) in val_patients]
    train = [i for i, n in enumerate(names) if patient_id(n) not in val_patients]
    return train, val


def write_split(path: Path, names: list[str], train: list[int], val: list[int], seed: int) -> None:
    from core.xray.aasce import patient_id

    path.write_text(json.dumps({
        "seed": seed,
        "train_images": len(train), "validation_images": len(val),
        "train_patients": len({patient_id(names[i]) for i in train}),
        "validation_patients": len({patient_id(names[i]) for i in val}),
        "validation_files": [names[i] for i in val],
    }, indent=1), encoding="utf-8")


# left/right corner swap for a horizontal flip: UL<->UR, LL<->LR in every vertebra
FLIP_ORDER = np.array([4 * v + c for v in range(17) for c in (1, 0, 3, 2)])


def augment_batch(images, landmarks, valid, generator, enabled: bool = True):
    """Random affine + flip + intensity on a (B, 1, H, W) float [0, 1] batch; landmarks (B, 68, 2) in [0, 1]."""
    import torch
    from torch.nn import functional as F

    b, _, h, w = images.shape
    if not enabled:
        return images, landmarks, valid
    g = generator
    rnd = lambda lo, hi: lo + (hi - lo) * torch.rand(b, generator=g)
    angle = rnd(-10, 10) * math.pi / 180
    scale = rnd(0.85, 1.15)
    sx = scale * rnd(0.92, 1.08)
    sy = scale
    tx = rnd(-0.08, 0.08)
    ty = rnd(-0.06, 0.06)
    flip = torch.rand(b, generator=g) < 0.5
    # output pixel (normalised [-1, 1], aspect-corrected) -> input pixel: p_in = A p_out + t
    aspect = h / w
    cos, sin = torch.cos(angle), torch.sin(angle)
    # work in a square frame (x scaled by w/h) so rotations are rigid in pixels
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = cos / sx
    theta[:, 0, 1] = -sin / sy * aspect
    theta[:, 1, 0] = sin / sx / aspect
    theta[:, 1, 1] = cos / sy
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    fl = torch.where(flip, -1.0, 1.0)
    theta[:, :, 0] = theta[:, :, 0] * fl.unsqueeze(1)
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # landmarks: invert the map. p_in = M p_out + t  =>  p_out = M^-1 (p_in - t)
    m = theta[:, :, :2]
    t = theta[:, :, 2]
    p_in = landmarks * 2 - 1
    p_out = torch.linalg.solve(m.unsqueeze(1).expand(b, 68, 2, 2), (p_in - t.unsqueeze(1)).unsqueeze(-1))[..., 0]
    lm = (p_out + 1) / 2
    order = torch.as_tensor(FLIP_ORDER)
    lm = torch.where(flip.view(b, 1, 1), lm[:, order], lm)
    valid = torch.where(flip.view(b, 1), valid[:, order], valid)
    inside = (lm >= 0).all(-1) & (lm <= 1).all(-1)
    valid = valid & inside
    # intensity: gamma, contrast, brightness, noise
    gamma = torch.exp(rnd(-0.4, 0.4)).view(b, 1, 1, 1)
    out = out.clamp(0, 1) ** gamma
    out = out * rnd(0.8, 1.2).view(b, 1, 1, 1) + rnd(-0.1, 0.1).view(b, 1, 1, 1)
    out = out + 0.02 * torch.randn(out.shape, generator=g) * torch.rand(b, 1, 1, 1, generator=g)
    return out.clamp(0, 1), lm, valid
