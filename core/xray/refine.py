"""Second landmark stage: a close-up crop around each vertebra the first stage found, and its four corners.

The first stage sees the whole radiograph at 512 x 256 and places each vertebra within about half a vertebra; the
second looks at one square crop per vertebra, cut from a 1280-pixel-high copy of the radiograph, centred on the
first stage's vertebra centre and ``SIDE_PITCHES`` vertebra spacings wide, and gives the corners of the vertebra
nearest the crop's centre. Training (``training/xray/refine_train.py``) and run time use these same functions, so
the crops are cut identically. Onnxruntime only at run time.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from core.xray.levels import N_VERTEBRAE
from core.xray.preprocess import scale_intensity, to_gray

WORK_HEIGHT = 1280          # height of the working copy the crops are cut from
CROP = 128                  # crop side in pixels (the refinement network's input)
SIDE_PITCHES = 3.2          # crop side in vertebra spacings: the nearest vertebra fits even when the centre is off
# left/right corner swap of one vertebra under a horizontal flip: UL<->UR, LL<->LR
FLIP_CORNERS = np.array([1, 0, 3, 2])


def working_image(image: np.ndarray) -> tuple[Image.Image, float, float]:
    """The 8-bit working copy (PIL 'L', WORK_HEIGHT rows, aspect kept) and its (x, y) scale from the original."""
    gray01 = scale_intensity(to_gray(image))
    h, w = gray01.shape
    ww = max(1, round(w * WORK_HEIGHT / h))
    im = Image.fromarray(np.round(gray01 * 255).astype(np.uint8), mode="L")
    im = im.resize((ww, WORK_HEIGHT), Image.Resampling.BILINEAR)
    return im, ww / w, WORK_HEIGHT / h


def crop_matrix(centre, side: float, angle_deg: float = 0.0, flip: bool = False) -> np.ndarray:
    """(2, 3) map from crop pixel (u, v) to working-image pixel (x, y): ``p = M[:, :2] @ (u, v) + M[:, 2]``."""
    s = side / CROP
    a = np.radians(angle_deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * s
    if flip:
        r = r @ np.diag([-1.0, 1.0])
    t = np.asarray(centre, dtype=float) - r @ np.array([CROP / 2, CROP / 2])
    return np.concatenate([r, t[:, None]], axis=1)


def cut(work: Image.Image, matrix: np.ndarray) -> np.ndarray:
    """(CROP, CROP) uint8 crop of the working image through ``matrix`` (zeros outside the image)."""
    data = tuple(float(v) for v in matrix.reshape(-1))
    out = work.transform((CROP, CROP), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def to_crop(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Working-image points (..., 2) -> crop pixels."""
    return np.linalg.solve(matrix[:, :2], (np.asarray(points, float) - matrix[:, 2]).reshape(-1, 2).T).T.reshape(
        np.shape(points))


def from_crop(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Crop pixels (..., 2) -> working-image points."""
    return np.asarray(points, float) @ matrix[:, :2].T + matrix[:, 2]


def standardise_crops(crops_u8: np.ndarray) -> np.ndarray:
    """(N, CROP, CROP) uint8 -> (N, 1, CROP, CROP) float32, each crop zero mean and unit standard deviation."""
    x = crops_u8.astype(np.float32) / 255.0
    m = x.mean(axis=(1, 2), keepdims=True)
    s = np.maximum(x.std(axis=(1, 2), keepdims=True), 1e-3)
    return ((x - m) / s)[:, None]


def local_pitch(centres: np.ndarray) -> np.ndarray:
    """(17,) spacing at each vertebra: the mean distance to its neighbours along the column (one at the ends),
    never under half the median spacing (a collapsed first-stage guess would give a useless crop)."""
    d = np.linalg.norm(np.diff(np.asarray(centres, float), axis=0), axis=1)
    left = np.concatenate([[d[0]], d])
    right = np.concatenate([d, [d[-1]]])
    pitch = (left + right) / 2
    med = float(np.median(d))
    return np.maximum(pitch, 0.5 * med)


def crops_for(work: Image.Image, centres_work: np.ndarray, pitch_work: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crops (N, CROP, CROP) uint8 and their matrices (N, 2, 3) around the given working-image centres."""
    mats = np.stack([crop_matrix(c, SIDE_PITCHES * p) for c, p in zip(centres_work, pitch_work)])
    crops = np.stack([cut(work, m) for m in mats])
    return crops, mats


def run_crops(run, crops_u8: np.ndarray, flip: bool = False) -> np.ndarray:
    """(N, 4, 2) corners in crop pixels of (N, CROP, CROP) uint8 crops. With ``flip`` each crop is also run mirrored
    left-right, its corners mirrored back (left and right corners swapped) and the two answers averaged (test-time
    flip: the network was trained on flipped crops too)."""
    n = len(crops_u8)
    corners = np.asarray(run(standardise_crops(crops_u8)), float).reshape(n, 4, 2)
    if not flip:
        return corners
    mirrored = np.asarray(run(standardise_crops(crops_u8[:, :, ::-1])), float).reshape(n, 4, 2)[:, FLIP_CORNERS]
    mirrored[..., 0] = CROP - mirrored[..., 0]      # pixel i covers [i, i + 1): column i <-> CROP - 1 - i
    return (corners + mirrored) / 2


def refine_landmarks(run, image: np.ndarray, landmarks: np.ndarray, passes: int = 2, flip: bool = False,
                     average: int = 1) -> np.ndarray:
    """Refined (68, 2) original-image landmarks. ``run(x)`` maps standardised (N, 1, CROP, CROP) crops to
    (N, 4, 2) corners in crop pixels. Each pass re-centres the crops on the previous pass's vertebrae; ``flip`` adds
    the mirrored crops (:func:`run_crops`); the answer is the mean of the last ``average`` passes.

    The second stage snaps each crop to its nearest vertebra, so two neighbouring first-stage guesses can land on
    the same vertebra; such a vertebra keeps its first-stage corners (the column stays in order and every level
    keeps a place)."""
    work, sx, sy = working_image(image)
    return refine_on_work(run, work, (sx, sy), landmarks, passes, flip, average)


def refine_on_work(run, work: Image.Image, scale, landmarks: np.ndarray, passes: int = 2, flip: bool = False,
                   average: int = 1) -> np.ndarray:
    """:func:`refine_landmarks` on an already made working image and its (x, y) scale."""
    if not 1 <= average <= passes:
        raise ValueError(f"cannot average the last {average} of {passes} passes")
    outputs = refine_passes(run, work, scale, landmarks, passes, flip)
    return combine_passes(outputs, landmarks, scale, average)


def refine_passes(run, work: Image.Image, scale, landmarks: np.ndarray, passes: int, flip: bool = False) -> list:
    """Each pass's vertebrae (17, 4, 2) in working-image pixels, before :func:`combine_passes`."""
    first = np.asarray(landmarks, float).reshape(N_VERTEBRAE, 4, 2) * np.asarray(scale, float)
    current = first
    pitch = local_pitch(first.mean(axis=1))
    outputs = []
    for _ in range(passes):
        crops, mats = crops_for(work, current.mean(axis=1), pitch)
        corners = run_crops(run, crops, flip)
        current = np.stack([from_crop(m, c) for m, c in zip(mats, corners)])
        outputs.append(current)
    return outputs


def combine_passes(outputs: list, landmarks: np.ndarray, scale, average: int = 1) -> np.ndarray:
    """(68, 2) original-image landmarks: the mean of the last ``average`` passes, the column kept in order."""
    scale = np.asarray(scale, float)
    first = np.asarray(landmarks, float).reshape(N_VERTEBRAE, 4, 2) * scale
    current = _keep_order(first, np.mean(outputs[-average:], axis=0))
    return (current / scale).reshape(-1, 2)


def _keep_order(first: np.ndarray, refined: np.ndarray) -> np.ndarray:
    """Refined vertebrae, except where two land on the same vertebra (or out of order): there the one that moved
    further from its first-stage place gets its first-stage corners back, until the column is in order."""
    out = refined.copy()
    moved = np.linalg.norm(refined.mean(axis=1) - first.mean(axis=1), axis=1)
    pitch = local_pitch(first.mean(axis=1))
    reverted = np.zeros(N_VERTEBRAE, bool)
    for _ in range(N_VERTEBRAE):
        c = out.mean(axis=1)
        gap = c[1:, 1] - c[:-1, 1]
        bad = np.flatnonzero(gap < 0.4 * pitch[:-1])
        bad = [i for i in bad if not (reverted[i] and reverted[i + 1])]
        if not bad:
            break
        i = bad[0]
        j = i if (moved[i] >= moved[i + 1] and not reverted[i]) or reverted[i + 1] else i + 1
        out[j] = first[j]
        reverted[j] = True
    return out
