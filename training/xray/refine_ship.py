"""Add a trained second stage (one crop per vertebra -> its corners) to the landmark model folder, only if the two
stages together beat the first stage alone on the same held-out validation radiographs.

Both are measured here the same way, with onnxruntime through :class:`core.xray.landmarks.LandmarkModel` on the
original validation JPEGs (``validation_files.json`` of the model folder, the first stage's patient-wise split), so
the comparison is like for like. When better: ``refine.onnx``, the ``refine`` settings and the new figures go into
``model.json`` (version bumped), the curves and the model card are rewritten. Otherwise nothing is changed.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path

from core.xray import refine as R
from core.xray.evaluate import EvalReport, evaluate_dataset, patient_halves
from core.xray.landmarks import LandmarkModel
from training.xray.config import XrayRefineConfig
from training.xray.train import load_trained


def export_refine_onnx(run_dir: Path, onnx_path: Path) -> None:
    import torch

    from training.xray.refine_model import RefineExport, RefineNet

    net = load_trained(RefineNet(crop=R.CROP), run_dir)
    x = torch.zeros(17, 1, R.CROP, R.CROP)
    torch.onnx.export(RefineExport(net), (x,), str(onnx_path), input_names=["crops"], output_names=["corners"],
                      dynamic_axes={"crops": {0: "batch"}}, opset_version=17, dynamo=False)


def _figures(rep: EvalReport) -> dict:
    return {"images": rep.scored, "left_out_broken": len(rep.broken_reference), "smape": rep.smape,
            "mae_pt": rep.mae[0], "mae_mt": rep.mae[1], "mae_tl": rep.mae[2], "landmark_px": rep.landmark_px,
            "landmark_px_median": rep.landmark_px_median, "not_confident": len(rep.not_confident),
            "seconds_per_image": rep.seconds_per_image}


def _evaluate(model_dir: Path, data_dir: Path, only: set[str]) -> EvalReport:
    labels = data_dir / "labels"
    return evaluate_dataset(data_dir / "images", labels / "filenames.csv", labels / "landmarks.csv",
                            labels / "angles.csv", LandmarkModel(model_dir, threads=1), only)


def ship_refine(run_dir: str | Path, model_dir: str | Path) -> str:
    run_dir, model_dir = Path(run_dir), Path(model_dir)
    cfg = XrayRefineConfig.load(run_dir / "config.json")
    history = json.loads((run_dir / "history.json").read_text(encoding="utf-8"))
    only = set(json.loads((model_dir / "validation_files.json").read_text(encoding="utf-8"))["validation_files"])
    settings = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    old_refine = settings.pop("refine", None) or {}
    # how the stage is run (passes, test-time flip, averaging) is chosen separately on half A of the split
    # (benchmarks/eval_xray_refine_variants.py) and kept when new weights are shipped
    pipeline = {k: old_refine[k] for k in ("passes", "flip", "average_passes") if k in old_refine}
    data_dir = Path(cfg.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        first_dir, both_dir = Path(tmp) / "first", Path(tmp) / "both"
        for d in (first_dir, both_dir):
            d.mkdir()
            shutil.copy(model_dir / "model.onnx", d / "model.onnx")
        (first_dir / "model.json").write_text(json.dumps(settings), encoding="utf-8")
        export_refine_onnx(run_dir, both_dir / "refine.onnx")
        refine = {"file": "refine.onnx", "crop": R.CROP, "side_pitches": R.SIDE_PITCHES,
                  "work_height": R.WORK_HEIGHT, "passes": 2, **pipeline,
                  "outputs": "corners (N,4,2) x,y in crop pixels of the vertebra nearest each crop's centre"}
        (both_dir / "model.json").write_text(json.dumps({**settings, "refine": refine}), encoding="utf-8")
        first = _figures(_evaluate(first_dir, data_dir, only))
        both = _figures(_evaluate(both_dir, data_dir, only))
        half_a, half_b = patient_halves(sorted(only))
        halves = {"half_a": _figures(_evaluate(both_dir, data_dir, half_a)),
                  "half_b": _figures(_evaluate(both_dir, data_dir, half_b))}
        verdict = (f"first stage alone: SMAPE {first['smape']:.2f} %, {first['landmark_px']:.1f} px; both stages: "
                   f"SMAPE {both['smape']:.2f} %, {both['landmark_px']:.1f} px")
        if not both["smape"] < first["smape"]:
            return f"not shipped (no better on the validation split): {verdict}"
        shutil.copy(both_dir / "refine.onnx", model_dir / "refine.onnx")
    today = dt.date.today().isoformat()
    old_version = settings.get("version", "1.0")
    old_validation = settings.get("validation", {})
    version = next_version(old_version)
    settings.update(version=version, refine=refine)
    # every figure is of the new files; the previous version's are kept apart, never mixed in with them
    settings["validation"] = {**both, **halves, "date": today, "first_stage": {**first, "date": today},
                              "previous": {"version": old_version,
                                           **{k: v for k, v in old_validation.items() if k != "previous"}}}
    (model_dir / "model.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
    shutil.copy(run_dir / "training_curves.png", model_dir / "refine_training_curves.png")
    wall = history and _wall_minutes(run_dir)
    card = model_dir / "spinemed-xray-landmarks.md"
    earlier = card.read_text(encoding="utf-8") if card.is_file() else ""
    text = _card(settings, cfg, history, wall, first, both, (model_dir / "model.onnx").stat().st_size,
                 (model_dir / "refine.onnx").stat().st_size)
    card.write_text(text + _earlier_card(old_version, earlier), encoding="utf-8")
    return f"shipped {settings['name']} {version} to {model_dir}: {verdict}"


def _earlier_card(version: str, text: str) -> str:
    """The previous card kept whole below the new one (its hand-written parts, e.g. how its run settings were
    chosen, would otherwise be lost), headings moved one level down."""
    if not text.strip():
        return ""
    lines = [("#" + line) if line.startswith("#") else line for line in text.strip().splitlines()]
    return f"\n\n## The card of version {version}, as it was shipped\n\n" + "\n".join(lines) + "\n"


def next_version(version: str) -> str:
    """The model folder's version with its minor number raised: "1.2" -> "1.3" (new second-stage weights)."""
    major, _, minor = str(version).partition(".")
    return f"{major}.{int(minor.split('.')[0] or 0) + 1}"


def _wall_minutes(run_dir: Path) -> float:
    import torch

    return torch.load(run_dir / "checkpoint.pt", weights_only=False)["state"]["wall_seconds"] / 60


def _pipeline_text(refine: dict) -> str:
    passes, average = int(refine.get("passes", 2)), int(refine.get("average_passes", 1))
    text = f"Run {passes} time(s), each pass centred on the previous one's vertebrae (the first on the first stage's)"
    if average > 1:
        text += f"; the corners are the mean of the last {average} passes"
    if refine.get("flip"):
        text += "; each crop is also run mirrored left-right (corners mirrored back and averaged)"
    return text + "."


def _card(settings, cfg: XrayRefineConfig, history, wall, first, both, size1, size2) -> str:
    v = settings["validation"]
    conf = settings["confidence"]
    return f"""# spinemed-xray-landmarks {settings['version']}: vertebra corner landmarks on AP spine radiographs

**Decision support only.** The landmarks and the Cobb angles computed from them must be checked, and corrected, by a
clinician. The model has been validated only as stated below.

## What it does
Finds the four corners of each vertebra from T1 to L5 (68 points) on an anterior-posterior (or postero-anterior)
radiograph of the thoracic and lumbar spine, in two stages, both run with onnxruntime (`core/xray/landmarks.py`,
`core/xray/refine.py`):

1. **Whole image** (`model.onnx`, {size1 / 1e6:.1f} MB, version 1.0 unchanged): a small convolutional
   encoder-decoder on the radiograph resized to {settings['input_height']} x {settings['input_width']} gives one
   heatmap per corner; the soft-argmax of each is the corner. It places each vertebra to within about half a
   vertebra.
2. **One close-up per vertebra** (`refine.onnx`, {size2 / 1e6:.1f} MB, new in 1.1): a {R.CROP} x {R.CROP} crop cut
   from a {R.WORK_HEIGHT}-pixel-high copy of the radiograph, centred on the first stage's vertebra and
   {R.SIDE_PITCHES} vertebra spacings wide, gives the four corners of the vertebra nearest its centre (four heatmaps,
   soft-argmax). {_pipeline_text(settings['refine'])} Where two neighbouring crops settle on the same vertebra, the
   one that moved further keeps its first-stage corners, so the column stays in order.

The workstation reports "not confident" instead of landmarks when the first stage's heatmaps are flatter than on any
validation radiograph (median peak probability under {conf['min_median_peak']}), when the image has almost no detail,
or the first stage's 17 vertebrae are not a plausible column (out of order, corners crossed, spacing varying more
than {conf['max_spacing_ratio']}-fold, zig-zag: limits measured on the first stage); the second stage's output is
checked for order and crossed corners. A DICOM whose header says lateral, oblique, CT localiser or CT slice is
refused before the model runs (`core/xray/views.py`).

## Training data and terms
SpineWeb Dataset 16, the training split of the MICCAI 2019 AASCE challenge: 481 AP radiographs of adolescents with
idiopathic scoliosis, 8-bit JPEG, with manual landmarks (Wu et al., "Automatic landmark estimation for adolescent
idiopathic scoliosis assessment using BoostNet", MICCAI 2017; Wang et al., "Evaluation and comparison of accurate
automated spinal curvature estimation algorithms with spinal anterior-posterior X-ray images: the AASCE2019
challenge", Medical Image Analysis 2021). **Research use only, citing these papers.** No image of the dataset is
shipped with this model.

## Split
By patient (several images share a patient), seed 16, 20 % of patients held out: 371 training images (188
patients), 110 validation images (47 patients), listed in `validation_files.json`. Both stages were trained on the
training images only (the second stage also leaves out the 21 images whose manual annotation has a broken
vertebra). The shipped weights of both are those of their last epoch (no selection on the validation split).

## Training
First stage: `spinemed-train xray train --output RUN --epochs 60 --max-minutes 58` then `spinemed-train xray ship
RUN` (30 epochs, 59 min on 1 CPU thread; see `training_curves.png`).

Second stage: `spinemed-train xray refine-train --output RUN2 --epochs {cfg.epochs} --max-minutes
{cfg.max_minutes:g}` then `spinemed-train xray refine-ship RUN2`: AdamW (lr {cfg.learning_rate}, cosine over
whichever ran out first, epochs or time), batch {cfg.batch_size} crops, {history[-1]['epoch']} epochs over every
vertebra of the training images; loss = corner L1 + {cfg.endplate_weight} x endplate-vector L1 +
{cfg.heatmap_weight} x heatmap cross-entropy to a Gaussian. Crops are centred on a vertebra moved by a random offset
(standard deviation {cfg.jitter} vertebra spacings, a tenth of it for a quarter of the crops), with a random spacing
estimate (x 0.75-1.33), rotation +/-{cfg.rotation_deg:g} deg, horizontal flip, gamma, contrast and noise; the target
is the vertebra nearest the crop's centre. CPU, 1 thread, on a 2-core machine shared with other jobs:
{wall:.0f} min wall time.

![second stage training curves](refine_training_curves.png)

## Validation ({v['date']}, onnxruntime, the shipped files)
On the {both['images']} validation radiographs with an intact manual annotation ({both['left_out_broken']} left out
for a broken reference), from the original JPEGs, against the challenge's reference angles and the manual
landmarks; both rows measured the same way on the same images:

| figure | first stage alone (1.0) | both stages ({settings['version']}) |
|---|---|---|
| SMAPE (AASCE definition, 3 angles) | {first['smape']:.1f} % | **{both['smape']:.1f} %** |
| MAE proximal thoracic (challenge's 1st angle, the largest curve) | {first['mae_pt']:.1f} deg | {both['mae_pt']:.1f} deg |
| MAE main thoracic (2nd) | {first['mae_mt']:.1f} deg | {both['mae_mt']:.1f} deg |
| MAE thoracolumbar/lumbar (3rd) | {first['mae_tl']:.1f} deg | {both['mae_tl']:.1f} deg |
| mean corner error, original px (about 1000 x 2500) | {first['landmark_px']:.1f} (median {first['landmark_px_median']:.1f}) | {both['landmark_px']:.1f} (median {both['landmark_px_median']:.1f}) |
| not confident (scored all the same) | {first['not_confident']} | {both['not_confident']} |
| seconds per image, 1 thread, shared CPU | {first['seconds_per_image']:.2f} | {both['seconds_per_image']:.2f} |

Both stages on the two patient-wise halves of the split (`core.xray.evaluate.patient_halves`, seed 16: run
settings are chosen on half A with `benchmarks/eval_xray_refine_variants.py`, so half B is the figure free of that
choice): half A SMAPE {v['half_a']['smape']:.1f} % ({v['half_a']['images']} images), **half B SMAPE
{v['half_b']['smape']:.1f} %** ({v['half_b']['images']} images; MAE {v['half_b']['mae_pt']:.1f} /
{v['half_b']['mae_mt']:.1f} / {v['half_b']['mae_tl']:.1f} deg).

The corner error counts a corner placed on the neighbouring vertebra as wrong by a whole vertebra: the second stage
snaps to the nearest vertebra, which makes the endplates (and the angles) exact more often than the names.
Published on this kind of data: 21.7 % SMAPE (best of the AASCE 2019 challenge, on its test set); about 10.8 % and
8.3 % on the dataset's public test split (Yi et al., ISBI 2020; a 2024 vertebra landmark network, Bioengineering
11(1):101). Not directly comparable: different test images.

## Limits
Trained only on adolescent idiopathic scoliosis AP radiographs from one source: not validated on adults, other
scanners, lateral views, instrumented spines, or radiographs not covering T1 to L5. Always 17 vertebrae T1-L5 are
returned: a spine with 11 or 13 thoracic vertebrae, or one cut by the image, gets wrong names; a level name can be
one vertebra off where the first stage was. A lateral PNG/JPEG (no header) is not reliably refused. Not measured on
DICOM DX images here (none with landmarks available).

Card written {dt.date.today().isoformat()}.
"""
