"""Automatic vertebra corner landmarks (T1 to L5) on AP spine radiographs, with a confidence check.

Runs the exported landmark network with onnxruntime (never torch). The model folder holds ``model.onnx``, its
settings ``model.json`` (input size, confidence limits measured on the validation split) and a model card.
The model was trained on adolescent scoliosis AP radiographs only: on anything else (a lateral view, a CT scout, a
hand) it must say it is not confident instead of drawing vertebrae; :attr:`LandmarkResult.problems` lists why.
Landmarks are decision support and must be checked (and corrected by dragging) by a clinician.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.xray.cobb import Curve, aasce_angles, regional_cobb, vertebra_centres
from core.xray.levels import N_LANDMARKS, N_VERTEBRAE
from core.xray.preprocess import detail, prepare01, standardise, to_gray

MODEL_NAME = "spinemed-xray-landmarks"
MIN_HEIGHT_PX = 256
MIN_WIDTH_PX = 96


class LandmarkModelError(RuntimeError):
    """The model cannot be loaded or run; the message names the file and the problem."""


@dataclass
class LandmarkResult:
    landmarks: np.ndarray               # (68, 2) image pixels (x, y), or empty when the image was refused
    spread: np.ndarray                  # (68,) heatmap standard deviation, fraction of the input
    image_size: tuple[int, int]         # (width, height)
    problems: list[str] = field(default_factory=list)
    model: str = MODEL_NAME
    refused: str = ""                   # the header says this is not an AP radiograph (the message names the file)
    refined: bool = False               # the second stage (one close-up crop per vertebra) placed the corners

    @property
    def confident(self) -> bool:
        return not self.refused and not self.problems and self.landmarks.shape == (N_LANDMARKS, 2)

    def message(self) -> str:
        if self.refused:
            return "Not read: " + self.refused
        if self.confident:
            return "17 vertebrae (T1-L5) found; check every corner before use (decision support)."
        return "Not confident: " + "; ".join(self.problems)

    def regional_cobb(self) -> dict[str, Curve | None]:
        return regional_cobb(self.landmarks)

    def aasce_angles(self) -> np.ndarray:
        return aasce_angles(self.landmarks, self.image_size[1])


def radiograph_array(volume) -> np.ndarray:
    """The (rows, columns) image of a single-slice Volume (a radiograph as core.studies loads it: MONOCHROME1
    already inverted, so bone is bright)."""
    if not volume.is_2d:
        raise ValueError(f"not a radiograph: {volume.shape[2]} slices (the landmark model reads one projection image)")
    return np.asarray(volume.data[:, :, 0]).T


def default_model_dir() -> Path | None:
    from core import paths

    for d in paths.model_dirs():
        if (d / MODEL_NAME / "model.onnx").is_file():
            return d / MODEL_NAME
    return None


def geometry_problems(landmarks: np.ndarray, limits: dict) -> list[str]:
    """Reasons the 17 predicted vertebrae cannot be a spine column as the model was trained to see it."""
    pts = landmarks.reshape(N_VERTEBRAE, 4, 2)
    problems = []
    centres = vertebra_centres(landmarks)
    step = np.diff(centres[:, 1])
    if np.any(step <= 0):
        problems.append("the vertebrae found are not in order from top to bottom")
    heights = pts[:, 2:, 1].mean(axis=1) - pts[:, :2, 1].mean(axis=1)
    widths = pts[:, [1, 3], 0].mean(axis=1) - pts[:, [0, 2], 0].mean(axis=1)
    if np.any(heights <= 0) or np.any(widths <= 0):
        problems.append("some vertebrae found have their corners in the wrong order")
    if np.all(step > 0):
        ratio = float(step.max() / step.min())
        if ratio > limits.get("max_spacing_ratio", 4.0):
            problems.append(f"the spacing of the vertebrae varies {ratio:.1f}-fold (a spine varies far less)")
        lateral = np.abs(np.diff(centres[:, 0], n=2)) / np.median(step)
        if lateral.max() > limits.get("max_lateral_jump", 1.5):
            problems.append("the column found zig-zags from one vertebra to the next")
    return problems


class LandmarkModel:
    """The exported network and its confidence limits, loaded once."""

    def __init__(self, model_dir: str | Path | None = None, threads: int = 0):
        d = Path(model_dir) if model_dir else default_model_dir()
        if d is None:
            raise LandmarkModelError(f"no radiograph landmark model found (looked for {MODEL_NAME}/model.onnx in "
                                     "the model folders: SPINEMED_MODELS_DIR, the data folder, resources/models)")
        onnx_path, json_path = d / "model.onnx", d / "model.json"
        for p in (onnx_path, json_path):
            if not p.is_file():
                raise LandmarkModelError(f"{p}: missing")
        try:
            self.settings = json.loads(json_path.read_text(encoding="utf-8"))
            self.height = int(self.settings["input_height"])
            self.width = int(self.settings["input_width"])
        except (ValueError, KeyError) as exc:
            raise LandmarkModelError(f"{json_path}: not valid model settings ({exc})") from None
        self.limits = self.settings.get("confidence", {})
        self.model_dir = d
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(onnx_path), sess_options=opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own, undocumented exception types
            raise LandmarkModelError(f"{onnx_path}: cannot be loaded by onnxruntime ({exc})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.refine_session = None
        refine = self.settings.get("refine")
        if refine:
            self.refine_session = self._refine_session(d, refine, opts, ort)

    @staticmethod
    def _refine_session(d: Path, refine: dict, opts, ort):
        """The second stage's session; its settings must match how :mod:`core.xray.refine` cuts the crops."""
        from core.xray import refine as R

        path = d / str(refine.get("file", "refine.onnx"))
        expected = {"crop": R.CROP, "side_pitches": R.SIDE_PITCHES, "work_height": R.WORK_HEIGHT}
        got = {k: refine.get(k) for k in expected}
        if got != expected:
            raise LandmarkModelError(f"{d / 'model.json'}: the refinement stage was trained on crops {got}, this "
                                     f"version of the workstation cuts {expected}")
        passes, average = refine.get("passes", 2), refine.get("average_passes", 1)
        if not (isinstance(passes, int) and isinstance(average, int) and 1 <= average <= passes):
            raise LandmarkModelError(f"{d / 'model.json'}: refine passes {passes!r} and average_passes {average!r} "
                                     "must be whole numbers with 1 <= average_passes <= passes")
        if not path.is_file():
            raise LandmarkModelError(f"{path}: missing (named by model.json's refine settings)")
        try:
            return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own, undocumented exception types
            raise LandmarkModelError(f"{path}: cannot be loaded by onnxruntime ({exc})") from None

    def refine(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The second stage's corners (68, 2) from the first stage's, in original image pixels."""
        from core.xray.refine import refine_landmarks

        name = self.refine_session.get_inputs()[0].name
        run = lambda x: self.refine_session.run(None, {name: x.astype(np.float32)})[0]
        settings = self.settings["refine"]
        return refine_landmarks(run, image, landmarks, int(settings.get("passes", 2)),
                                bool(settings.get("flip", False)), int(settings.get("average_passes", 1)))

    @property
    def name(self) -> str:
        return str(self.settings.get("name", MODEL_NAME))

    def run_batch(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Standardised (N, 1, H, W) float32 -> coords (N, 68, 2) in [0, 1], spread (N, 68), peak (N, 68)."""
        out = self.session.run(None, {self.input_name: inputs.astype(np.float32)})
        if len(out) < 3:
            raise LandmarkModelError(f"{self.model_dir / 'model.onnx'}: expected outputs coords, spread, peak")
        return out[0], out[1], out[2]

    def predict(self, image: np.ndarray) -> LandmarkResult:
        """Landmarks of one radiograph (H, W) array, bone bright; refused or flagged with reasons when unsure."""
        gray = to_gray(image)
        h, w = gray.shape
        empty = LandmarkResult(np.empty((0, 2)), np.empty(0), (w, h), model=self.name)
        if h < MIN_HEIGHT_PX or w < MIN_WIDTH_PX:
            empty.problems.append(f"the image is too small ({w} x {h} px; the landmark model needs at least "
                                  f"{MIN_WIDTH_PX} x {MIN_HEIGHT_PX} px of a radiograph of T1 to L5)")
            return empty
        if float(gray.max() - gray.min()) == 0.0:
            empty.problems.append("the image is blank (one grey level)")
            return empty
        if w > 1.3 * h:
            empty.problems.append(f"the image is wider than tall ({w} x {h} px): the model reads AP radiographs "
                                  "of the thoracic and lumbar spine, upright")
            return empty
        prepared = prepare01(gray, self.height, self.width)
        min_detail = float(self.limits.get("min_detail", 0.0))
        if detail(prepared) < min_detail:
            empty.problems.append(f"the image shows almost no detail (neighbour contrast {detail(prepared):.4f} < "
                                  f"{min_detail:.4f}): not a radiograph of the spine")
            return empty
        x = standardise(prepared)[None, None]
        coords, spread, peak = self.run_batch(x)
        pts = coords[0].astype(float) * np.array([w, h], dtype=float)
        result = LandmarkResult(pts, spread[0].astype(float), (w, h), model=self.name)
        med_peak = float(np.median(peak[0]))
        min_peak = float(self.limits.get("min_median_peak", 0.0))
        med_spread = float(np.median(spread[0]))
        max_spread = float(self.limits.get("max_median_spread", 1.0))
        if med_peak < min_peak or med_spread > max_spread:
            result.problems.append(f"the model's heatmaps are flatter than on any radiograph it was validated on "
                                   f"(median peak {med_peak:.5f} < {min_peak:.5f}): this does not look like an AP "
                                   "radiograph of the thoracic and lumbar spine")
        # the column's plausibility is judged on the first stage (its limits were measured there); the second
        # stage moves vertebrae locally, so on its output only order and crossed corners are checked
        result.problems += geometry_problems(pts, self.limits)
        if not result.problems and self.refine_session is not None:
            result.landmarks = self.refine(gray, pts)
            result.refined = True
            result.problems += geometry_problems(result.landmarks, {"max_spacing_ratio": float("inf"),
                                                                    "max_lateral_jump": float("inf")})
        return result

    def predict_volume(self, volume) -> LandmarkResult:
        """:meth:`predict` on a loaded radiograph, after its DICOM header is checked: a lateral or oblique view, a
        CT localiser or a CT/MR slice is refused with the file's name and the reason (:mod:`core.xray.views`)."""
        from core.xray.views import volume_refusal

        why = volume_refusal(volume)
        if why:
            return LandmarkResult(np.empty((0, 2)), np.empty(0), (0, 0), model=self.name, refused=why)
        return self.predict(radiograph_array(volume))
