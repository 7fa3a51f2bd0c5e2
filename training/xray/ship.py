"""Export a trained landmark run to ONNX and put it, with its settings and model card, in a model folder.

The confidence limits written to ``model.json`` come from the validation split: 0.85 x the smallest median heatmap
peak and 1.5 x the largest median spread seen on a validation radiograph, half the smallest neighbour contrast (:func:`core.xray.preprocess.detail`),
and geometry limits (:func:`core.xray.landmarks.geometry_problems`) no
tighter than 1.5 x the most extreme validation radiograph.
The card's figures are re-measured here with onnxruntime on the validation split, so they describe the shipped file.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from pathlib import Path

import numpy as np

from core.xray.cobb import vertebra_centres
from core.xray.landmarks import MODEL_NAME, LandmarkModel, geometry_problems
from core.xray.preprocess import detail, standardise
from training.xray.config import XrayTrainConfig
from training.xray.data import load_data, patient_split
from training.xray.train import evaluate, load_trained

VERSION = "1.0"


def export_onnx(run_dir: Path, onnx_path: Path) -> None:
    import torch

    from training.xray.model import ExportWrapper, LandmarkNet

    cfg = XrayTrainConfig.load(run_dir / "config.json")
    net = load_trained(LandmarkNet(), run_dir)
    x = torch.zeros(1, 1, cfg.input_height, cfg.input_width)
    torch.onnx.export(ExportWrapper(net), (x,), str(onnx_path), input_names=["image"],
                      output_names=["coords", "spread", "peak"], dynamic_axes={"image": {0: "batch"}},
                      opset_version=17, dynamo=False)


def ship(run_dir: str | Path, dest_root: str | Path = "resources/models", name: str = MODEL_NAME) -> Path:
    run_dir = Path(run_dir)
    cfg = XrayTrainConfig.load(run_dir / "config.json")
    history = json.loads((run_dir / "history.json").read_text(encoding="utf-8"))
    dest = Path(dest_root) / name
    dest.mkdir(parents=True, exist_ok=True)
    export_onnx(run_dir, dest / "model.onnx")
    settings = {"name": name, "version": VERSION, "input_height": cfg.input_height, "input_width": cfg.input_width,
                "outputs": "coords (N,68,2) x,y in [0,1] of the input; spread (N,68) heatmap std, same units; "
                           "peak (N,68) each heatmap's largest probability",
                "confidence": {"max_median_spread": 1.0, "max_spacing_ratio": 4.0, "max_lateral_jump": 1.5}}
    (dest / "model.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
    # validation through onnxruntime, exactly as the workstation runs it
    data = load_data(Path(cfg.data_dir), run_dir / f"cache_{cfg.input_height}x{cfg.input_width}.npz",
                     cfg.input_height, cfg.input_width)
    _, val_idx = patient_split(data.names, cfg.val_fraction, cfg.seed)
    model = LandmarkModel(dest)
    x = np.stack([standardise(im.astype(np.float32) / 255) for im in data.images[val_idx]])
    coords, spread, peak = model.run_batch(x[:, None])
    figures = evaluate(coords, data, val_idx)
    med = np.median(spread, axis=1)
    limits = settings["confidence"]
    limits["max_median_spread"] = round(float(med.max()) * 1.5, 4)
    peaks = np.median(peak, axis=1)
    details = [detail(im.astype(np.float32) / 255) for im in data.images[val_idx]]
    limits["min_detail"] = round(min(details) * 0.5, 5)
    limits["min_median_peak"] = round(float(peaks.min()) * 0.85, 6)
    # geometry limits: never tighter than 1.5 x the most extreme validation radiograph
    ratios, jumps = [], []
    for j, i in enumerate(val_idx):
        c = vertebra_centres(coords[j] * data.sizes[i])
        step = np.diff(c[:, 1])
        if np.all(step > 0):
            ratios.append(float(step.max() / step.min()))
            jumps.append(float((np.abs(np.diff(c[:, 0], n=2)) / np.median(step)).max()))
    if ratios:
        limits["max_spacing_ratio"] = round(max(limits["max_spacing_ratio"], 1.5 * max(ratios)), 2)
        limits["max_lateral_jump"] = round(max(limits["max_lateral_jump"], 1.5 * max(jumps)), 2)
    geo_flagged = sum(bool(geometry_problems(coords[j] * data.sizes[i], limits)) for j, i in enumerate(val_idx))
    settings["validation"] = {**figures, "median_spread_max": float(med.max()), "median_peak_min": float(peaks.min()),
                              "median_peak_median": float(np.median(peaks)),
                              "median_spread_median": float(np.median(med)),
                              "flagged_by_geometry": int(geo_flagged), "date": dt.date.today().isoformat()}
    (dest / "model.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
    split = json.loads((run_dir / "split.json").read_text(encoding="utf-8"))
    (dest / "validation_files.json").write_text(json.dumps(split, indent=1), encoding="utf-8")
    shutil.copy(run_dir / "training_curves.png", dest / "training_curves.png")
    wall = _wall_minutes(run_dir)
    (dest / f"{name}.md").write_text(_card(name, cfg, split, figures, settings, history, wall,
                                           (dest / "model.onnx").stat().st_size, int(data.broken.sum())),
                                     encoding="utf-8")
    return dest


def _wall_minutes(run_dir: Path) -> float:
    import torch

    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)["state"]
    return state["wall_seconds"] / 60


def _card(name, cfg, split, fig, settings, history, wall, size, n_broken) -> str:
    today = time.strftime("%Y-%m-%d")
    return f"""# {name} {VERSION}: vertebra corner landmarks on AP spine radiographs

**Decision support only.** The landmarks and the Cobb angles computed from them must be checked, and corrected, by a
clinician. The model has been validated only as stated below.

## What it does
Finds the four corners of each vertebra from T1 to L5 (68 points) on an anterior-posterior (or postero-anterior)
radiograph of the thoracic and lumbar spine. A small convolutional encoder-decoder ({cfg.input_height} x
{cfg.input_width} input, the whole image resized) gives one heatmap per corner; the soft-argmax of each heatmap is the
corner, its spread the model's uncertainty. Run with onnxruntime (`core/xray/landmarks.py`); {size / 1e6:.1f} MB.
The workstation reports "not confident" instead of landmarks when the heatmaps are flatter than on any validation
radiograph (median peak probability under {settings['confidence']['min_median_peak']}, 0.85 x the smallest seen there),
when the image has almost no detail (neighbour contrast under half the smallest of a validation radiograph), or the 17 vertebrae found are not a plausible column (out of order, corners crossed, spacing varying more than
{settings['confidence']['max_spacing_ratio']}-fold, zig-zag). The heatmaps of this small model are broad (about 4 %
of a heatmap's mass lies in the 5 x 5 cells around its peak): the corners come from their weighted means.

## Training data and terms
SpineWeb Dataset 16, the training split of the MICCAI 2019 AASCE challenge: 481 AP radiographs of adolescents with
idiopathic scoliosis, 8-bit JPEG, with manual landmarks (Wu et al., "Automatic landmark estimation for adolescent
idiopathic scoliosis assessment using BoostNet", MICCAI 2017; Wang et al., "Evaluation and comparison of accurate
automated spinal curvature estimation algorithms with spinal anterior-posterior X-ray images: the AASCE2019
challenge", Medical Image Analysis 2021). **Research use only, citing these papers.** No image of the dataset is
shipped with this model. Annotations with a broken vertebra (corners jumping back to the top: {n_broken} images)
had that vertebra masked out of the loss.

## Split
By patient (several images share a patient; a numbered series of unknown patients is kept together), seed
{cfg.seed}, {round(cfg.val_fraction * 100)} % of patients held out: {split['train_images']} training images
({split['train_patients']} patients), {split['validation_images']} validation images ({split['validation_patients']}
patients). The validation file names are in `validation_files.json`. The shipped weights are those of the last epoch
(no selection on the validation split).

## Training
`spinemed-train xray train --output RUN --epochs {cfg.epochs} --max-minutes {cfg.max_minutes:g}` then
`spinemed-train xray ship RUN`: AdamW (lr {cfg.learning_rate}, {cfg.warmup_epochs} warm-up epochs, then cosine over
whichever ran out first, the epochs or the time budget), batch {cfg.batch_size}, {history[-1]['epoch']} epochs done, loss =
corner L1 + {cfg.endplate_weight} x endplate-vector L1 + {cfg.heatmap_weight} x heatmap cross-entropy to a Gaussian;
augmentation: rotation +/-10 deg, scale 0.85-1.15, shift, horizontal flip (left/right corners swapped), gamma,
contrast, noise. CPU, 1 thread, on a 2-core machine shared with other jobs: {wall:.0f} min wall time.

![training curves](training_curves.png)

## Validation ({settings['validation']['date']}, onnxruntime, the shipped file)
On the {fig['images']} validation radiographs with an intact manual annotation ({fig['left_out_broken']} left out
for a broken reference), against the challenge's reference angles and the manual landmarks:

| figure | value |
|---|---|
| SMAPE (AASCE definition, 3 angles) | {fig['smape']:.1f} % |
| MAE proximal thoracic (challenge's 1st angle, the largest curve) | {fig['mae_pt']:.1f} deg |
| MAE main thoracic (2nd) | {fig['mae_mt']:.1f} deg |
| MAE thoracolumbar/lumbar (3rd) | {fig['mae_tl']:.1f} deg |
| mean corner error | {fig['landmark_px']:.1f} px (median {fig['landmark_px_median']:.1f} px), original resolution (about 1000 x 2500 px) |

Published on this kind of data: 21.7 % SMAPE (best of the AASCE 2019 challenge, on its test set); about 10.8 % and
8.3 % on the dataset's public test split (Yi et al., ISBI 2020; a 2024 vertebra landmark network, Bioengineering
11(1):101). These are not directly comparable: different test images, and this model is far smaller and trained on
a CPU in about an hour.

## Limits
Trained only on adolescent idiopathic scoliosis AP radiographs from one source: not validated on adults, other
scanners, lateral views, instrumented spines, or radiographs not covering T1 to L5. Always 17 vertebrae T1-L5 are
returned: a spine with 11 or 13 thoracic vertebrae, or one cut by the image, gets wrong names. Not measured on
DICOM DX images here (none with landmarks available).

Card written {today}.
"""
