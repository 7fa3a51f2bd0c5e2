"""Configuration of a learned-labeller training run (``spinemed-train levels``): one dataclass with help text.

Read from YAML/TOML (optional) with ``--set key=value`` overrides, validated with the same reader as the LoRA
configs (:mod:`training.config`), so errors name the file and the field.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.config import ConfigError, _build, _check_choices, _read_file, apply_overrides


@dataclass
class LevelsTrainConfig:
    name: str = field(default="spinemed-levels-synth", metadata={"help": (
        "Model name: the folder under resources/models/ it ships in and the labeller name recorded on labellings.")})
    version: str = field(default="0.1.0", metadata={"help": "Model version recorded on every labelling."})
    output_dir: str = field(default="runs/levels", metadata={"help": (
        "Run folder: checkpoint.pt (resume), val.npz (fixed validation samples), history.json, curves.png, "
        "model.onnx and the model card.")})
    seed: int = field(default=15, metadata={"help": "Seed of the spines, the synthesis and the initialisation."})
    steps: int = field(default=3000, metadata={"help": "Optimizer steps."})
    time_limit_min: float = field(default=0.0, metadata={"help": (
        "Stop after this many minutes of training in this process (0 = no limit); the model is still exported, "
        "and a later run with more steps resumes.")})
    batch_size: int = field(default=8, metadata={"help": "Samples per step."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak Adam learning rate (cosine decay)."})
    width: int = field(default=16, metadata={"help": "Channels of the U-Net's first level (x1, 2, 3, 4, 6 down)."})
    rows: int = field(default=128, metadata={"help": "Training patch rows (superior-inferior), 2 mm pixels."})
    cols: int = field(default=96, metadata={"help": "Training patch columns (anterior-posterior), 2 mm pixels."})
    pool_size: int = field(default=24, metadata={"help": "Random spines kept in memory to draw samples from."})
    new_spine_every: int = field(default=24, metadata={"help": "Replace one spine of the pool every N samples."})
    real_maps: list[str] = field(default_factory=list, metadata={"help": (
        "Real label maps to synthesise from as well, each `PATH:NUMBERING` (verse, totalseg); they are "
        "recorded in the model card as seen by the weights.")})
    real_fraction: float = field(default=0.1, metadata={"help": "Share of samples drawn from the real maps."})
    p_lateral: float = field(default=0.0, metadata={"help": (
        "Share of samples whose stack lies beside the body (up to lateral_max_mm from its centre) with empty "
        "targets, so the network does not fire off the midline (0 in 0.1.0).")})
    lateral_max_mm: float = field(default=70.0, metadata={"help": "How far beside the body such a stack may lie."})
    midline_sigma_mm: float = field(default=0.0, metadata={"help": (
        "Centre targets fade with the stack's left-right distance from the body centre (Gaussian of this sigma; "
        "0 = flat across the body, as in 0.1.0), so the strongest peak marks the midline.")})
    max_texture: float = field(default=0.0, metadata={"help": (
        "Largest amplitude (0..1 intensity scale) of spatially correlated texture added per tissue before blur "
        "(trabecular bone, muscle; 0 in 0.1.0).")})
    p_flat: float = field(default=0.0, metadata={"help": (
        "Share of samples with a flat contrast: marrow, discs and soft tissue within a narrow band, bone rims "
        "brighter (CT) or darker (MR), as real CT stacks look when air sets the intensity range (0 in 0.1.0).")})
    p_side_empty: float = field(default=0.0, metadata={"help": (
        "Share of stacks whose side slabs are empty, as in an image cropped tightly left to right (0 in 0.1.0).")})
    min_fov_rows: float = field(default=0.3, metadata={"help": (
        "Smallest height of a small field of view, share of the patch rows (0.3 in 0.1.0: 77 mm at 128 rows of "
        "2 mm; real crops may be 40 mm).")})
    min_fov_cols: float = field(default=0.45, metadata={"help": (
        "Smallest front-to-back width of a small field of view, share of the patch columns (0.45 in 0.1.0: 86 mm "
        "at 96 columns of 2 mm; a crop around the cord may be 60 mm).")})
    p_small_fov: float = field(default=0.35, metadata={"help": "Share of samples cropped to a small field of view."})
    disc_penalty: float = field(default=0.0, metadata={"help": (
        "Extra loss weight of the body channel at disc centres and of the disc channel at body centres (0 in 0.1.0; "
        "the centres' own weight is 20).")})
    learning_rate_resume: float = field(default=0.0, metadata={"help": (
        "Peak learning rate of the new warm-up and decay when a finished run is continued to more steps "
        "(0 = learning_rate).")})
    val_samples: int = field(default=48, metadata={"help": "Fixed validation samples (own spines, own seed)."})
    eval_every: int = field(default=100, metadata={"help": "Validation loss every N steps."})
    checkpoint_every: int = field(default=50, metadata={"help": "Save a resumable checkpoint every N steps."})
    threads: int = field(default=1, metadata={"help": (
        "torch CPU threads (1 on a shared 2-core machine; a GPU run ignores it).")})
    device: str = field(default="auto", metadata={"choices": ("auto", "cpu", "cuda"), "help": (
        "`auto`: CUDA when available, else CPU.")})


def load_levels_config(path: str | Path | None, overrides: list[str] | None = None) -> LevelsTrainConfig:
    data: dict[str, Any] = _read_file(Path(path)) if path else {}
    source = str(path or "<defaults>")
    if overrides:
        data = apply_overrides(data, overrides)
    errors: list[str] = []
    cfg = _build(LevelsTrainConfig, data, "", errors)
    if cfg is not None:
        _check_choices(cfg, "", errors)
        if cfg.steps < 1 or cfg.batch_size < 1:
            errors.append("steps and batch_size must be at least 1")
        if not (0.05 <= cfg.min_fov_rows <= 0.7 and 0.05 <= cfg.min_fov_cols <= 0.9):
            errors.append(f"min_fov_rows must be within 0.05..0.7 and min_fov_cols within 0.05..0.9 (got "
                          f"{cfg.min_fov_rows}, {cfg.min_fov_cols})")
        if cfg.rows % 16 or cfg.cols % 16:
            errors.append(f"rows and cols must be multiples of 16 (got {cfg.rows} x {cfg.cols})")
    if errors:
        raise ConfigError(f"{source}: invalid levels training config:\n" + "\n".join(f"  - {e}" for e in errors))
    return cfg


def config_dict(cfg: LevelsTrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
