"""Score the landmark model on radiographs in the AASCE layout: SMAPE, angle MAE and landmark error.

Angles are compared the way the AASCE challenge scored them (:func:`core.xray.cobb.aasce_angles` of the predicted
landmarks against the reference angles). Every image the model is not confident about stays in the figures: flagged
images with landmarks are scored on them as they are; refused images (no landmarks: too small, blank, ...) count
with angles 0 (a 100 % SMAPE term) and no landmark error. Both are counted and listed. Images whose reference
annotation is broken (see :func:`core.xray.aasce.broken_vertebrae`) are left out and counted.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.xray.aasce import broken_vertebrae, read_dataset
from core.xray.cobb import aasce_angles
from core.xray.landmarks import LandmarkModel
from core.xray.metrics import angle_mae, landmark_errors, smape


@dataclass
class EvalReport:
    images: int = 0
    scored: int = 0
    broken_reference: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    not_confident: list[str] = field(default_factory=list)
    refused: int = 0
    smape: float = float("nan")
    mae: tuple[float, float, float] = (float("nan"),) * 3
    landmark_px: float = float("nan")
    landmark_px_median: float = float("nan")
    seconds_per_image: float = float("nan")

    def lines(self) -> list[str]:
        out = [(f"images: {self.images}, scored: {self.scored}"
                f" ({len(self.broken_reference)} left out for a broken reference annotation,"
                f" {len(self.unreadable)} unreadable)")]
        if self.scored:
            out += [f"SMAPE: {self.smape:.1f}%",
                    f"MAE proximal thoracic (AASCE 1st angle): {self.mae[0]:.1f} deg",
                    f"MAE main thoracic (AASCE 2nd angle): {self.mae[1]:.1f} deg",
                    f"MAE thoracolumbar/lumbar (AASCE 3rd angle): {self.mae[2]:.1f} deg",
                    f"mean landmark error: {self.landmark_px:.1f} px (median {self.landmark_px_median:.1f} px)",
                    (f"not confident: {len(self.not_confident)} image(s), scored all the same"
                     f" ({self.refused} refused without landmarks: angles counted as 0)"),
                    f"time: {self.seconds_per_image:.2f} s per image"]
        return out


def patient_halves(names, seed: int = 16) -> tuple[set[str], set[str]]:
    """Two halves (A, B) of ``names`` with every patient's images in one half: the patients, sorted, are shuffled
    with ``seed`` and the first half of them is A. Choosing among pipeline variants on A and reporting on B keeps
    the reported figure free of that choice."""
    import random

    from core.xray.aasce import patient_id

    patients = sorted({patient_id(n) for n in names})
    random.Random(seed).shuffle(patients)
    a_patients = set(patients[: len(patients) // 2])
    a = {n for n in names if patient_id(n) in a_patients}
    return a, set(names) - a


def load_gray(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None


def evaluate_dataset(images_dir: Path, filenames: Path, landmarks: Path | None, angles: Path,
                     model: LandmarkModel, only: set[str] | None = None,
                     progress: Callable[[int, int, str], None] | None = None) -> EvalReport:
    records = read_dataset(filenames, landmarks, angles)
    if only is not None:
        records = [r for r in records if r.name in only]
    rep = EvalReport(images=len(records))
    pred_angles, ref_angles, errors = [], [], []
    elapsed = 0.0
    for n, r in enumerate(records, start=1):
        if progress:
            progress(n, len(records), r.name)
        path = Path(images_dir) / r.name
        try:
            gray = load_gray(path)
        except (ValueError, FileNotFoundError) as exc:
            rep.unreadable.append(f"{path}: {exc}" if isinstance(exc, FileNotFoundError) else str(exc))
            continue
        h, w = gray.shape
        ref_px = r.landmarks_px(w, h)
        has_ref_landmarks = bool(np.all(np.isfinite(ref_px)))
        if has_ref_landmarks and broken_vertebrae(ref_px):
            rep.broken_reference.append(r.name)
            continue
        t0 = time.perf_counter()
        result = model.predict(gray)
        elapsed += time.perf_counter() - t0
        if not result.confident:
            rep.not_confident.append(f"{r.name}: {result.message()}")
        if result.landmarks.shape == (68, 2):
            pred_angles.append(aasce_angles(result.landmarks, h))
            if has_ref_landmarks:
                errors.append(landmark_errors(result.landmarks, ref_px))
        else:
            rep.refused += 1
            pred_angles.append(np.zeros(3))
        ref_angles.append(r.angles)
    rep.scored = len(pred_angles)
    if rep.scored:
        rep.smape = smape(pred_angles, ref_angles)
        rep.mae = tuple(float(v) for v in angle_mae(pred_angles, ref_angles))
        rep.seconds_per_image = elapsed / rep.scored
    if errors:
        rep.landmark_px = float(np.mean(errors))
        rep.landmark_px_median = float(np.median(errors))
    return rep
