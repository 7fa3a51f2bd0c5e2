"""Model card of a learned level labeller: data, synthesis, training, figures, version (written by
``spinemed-train levels --ship``; the real-image table is added from ``benchmarks/eval_levels.py``)."""
from __future__ import annotations

import json
from pathlib import Path

CARD = """# {name} {version}

Learned, contrast-agnostic vertebral-level labeller of SpineMed Workstation. **Decision support only**: every level
it names must be confirmed by a clinician.

- Weights: `{file}` (ONNX, {size_kb:.0f} kB), sha256 `{sha256}`; run by onnxruntime on the CPU
  (`core/spine/autolabel/learned.py`); every labelling records the name, version and this sha256.
- Input: sagittal slab stacks on a {step_mm} mm grid: the mean of a {slab_mm} mm slab through the column and of two
  slabs {lateral_mm} mm to either side, each mapped to 0..1 by its own percentiles (`core/spine/autolabel/slabs.py`).
- Output per pixel: heatmaps of vertebral-body and disc centres, and the anchor class of a body pixel
  ({regions}). Levels are named by scoring every placement of the level names (standard spine, 11/13 thoracic,
  4/6 lumbar) over the detections in order against those classes; below a posterior of 0.6 nothing is named and
  the user names one vertebra (the others follow).

## Data and synthesis
No real image was used for training. Images were synthesised (the SynthSeg approach: Billot et al., "SynthSeg:
segmentation of brain MRI scans of any contrast and resolution without retraining", Medical Image Analysis 2023)
from label maps:
- random whole spines (`training/levels/spine_model.py`): C1 with the skull base to the sacrum, random size (x0.8-1.2)
  and pitch, cervical lordosis / thoracic kyphosis / lumbar lordosis / sacral tilt of random amplitude, scoliosis
  (25%), 11 or 13 thoracic (8% each), sacralised L5 (6%), L6 (8%), degenerated (15% per disc) and collapsed (3%)
  discs, wedge fractures (4% per vertebra), posterior elements, canal and cord (conus at L1), ribs, iliac bones,
  lungs, trachea, aorta, organs, bowel gas with its wall and other round distractors, muscle, fat, air;
- real label maps: {real_maps}.
Per sample (`training/levels/synth.py`): a random intensity per tissue (Gaussian mixture: fully random in 50%, CT-,
T1- or T2-like with jitter otherwise), blur for partial volume and a thick-slice axis (2.5-6 mm, sagittal or axial),
bias field, noise, gamma, rotation (±12°), scaling (0.88-1.12), random field of view (35% small crops){extras}.

## Training
`spinemed-train levels {config_hint}`: {steps} steps of {batch} samples, {minutes:.0f} min on {device}
(torch.set_num_threads({threads})), seed {seed}; final validation loss (fixed synthetic samples) {val_loss}.

![curves](curves.png)

## Figures on real images
See `benchmarks/eval_levels.py` and the README's table (identification rate, localisation error, semi-automatic
figures per study, side by side with the classical labeller). None of those images, and none of their label maps,
was used for training.

## Limits
- Trained on synthetic images only; its anchors (C2, sacrum, thoracolumbar junction from the vertebra types) are
  learned from simplified anatomy. Not validated on whole-spine MR, radiographs (not supported) or paediatric spines.
- Counting between an anchor and a level assumes every vertebra between them was detected.
"""


def write_card(run_dir: Path, dest: Path) -> Path:
    meta = json.loads((run_dir / "labeller.json").read_text())
    info = json.loads((run_dir / "run_info.json").read_text())
    cfg = info["config"]
    real = cfg.get("real_maps") or []
    extras = []
    if cfg.get("p_lateral"):
        extras.append(f"stacks beside the body with empty targets ({cfg['p_lateral']:.0%}, up to "
                      f"{cfg['lateral_max_mm']:.0f} mm from its centre)")
    if cfg.get("midline_sigma_mm"):
        extras.append(f"centre targets fading with the stack's distance from the body's midline (Gaussian, sigma "
                      f"{cfg['midline_sigma_mm']:g} mm)")
    if cfg.get("max_texture"):
        extras.append(f"correlated texture per tissue (amplitude up to {cfg['max_texture']:g})")
    if cfg.get("p_flat"):
        extras.append(f"a flat contrast in {cfg['p_flat']:.0%} (marrow, discs and soft tissue within a narrow band, "
                      "bone rims brighter or darker)")
    if cfg.get("p_side_empty"):
        extras.append(f"empty side slabs in {cfg['p_side_empty']:.0%} (tight left-right crops)")
    if cfg.get("min_fov_rows", 0.3) < 0.3 or cfg.get("min_fov_cols", 0.45) < 0.45:
        extras.append(f"small fields of view ({cfg.get('p_small_fov', 0.35):.0%}) down to "
                      f"{cfg['min_fov_rows'] * cfg['rows'] * 2:.0f} mm tall and "
                      f"{cfg['min_fov_cols'] * cfg['cols'] * 2:.0f} mm front to back")
    if cfg.get("disc_penalty"):
        extras.append(f"loss weight {cfg['disc_penalty']:g} on the body channel at disc centres and on the disc "
                      "channel at body centres")
    text = CARD.format(extras="".join(f"; {e}" for e in extras),
        name=meta["name"], version=meta["version"], file=meta["file"],
        size_kb=(run_dir / meta["file"]).stat().st_size / 1024, sha256=meta["sha256"], step_mm=meta["step_mm"],
        slab_mm=meta["slab_mm"], lateral_mm=meta["lateral_mm"], regions=", ".join(meta["regions"][1:]),
        real_maps=", ".join(f"`{r}`" for r in real) if real else "none",
        config_hint=" ".join(f"--set {k}={cfg[k]}" for k in ("steps", "batch_size", "seed")),
        steps=info["steps"], batch=cfg["batch_size"], minutes=info["minutes"], device=info["device"],
        threads=cfg["threads"], seed=cfg["seed"], val_loss=f"{info['final'].get('val_loss', float('nan')):.4f}")
    path = dest / "MODEL_CARD.md"
    path.write_text(text)
    return path
