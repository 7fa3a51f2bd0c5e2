"""Configuration of the radiograph landmark training runs (first stage and second stage): dataclasses with the help
text of every field; the fields both stages share are defined once, in :class:`LandmarkRunConfig`."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LandmarkRunConfig:
    """Settings every landmark training run has (defaults of the first stage)."""

    data_dir: str = field(default="../shared/data/xray-aasce-train", metadata={"help": (
        "Folder in the AASCE layout: images/ and labels/{filenames,landmarks,angles}.csv.")})
    output_dir: str = field(default="runs/xray-landmarks", metadata={"help": (
        "Run folder: cache, checkpoint, history, curves (the first stage also its validation ids and exported "
        "ONNX). Resumed when it holds a checkpoint.")})
    epochs: int = field(default=60, metadata={"help": "Passes over the training data (cosine schedule)."})
    batch_size: int = field(default=8, metadata={"help": "Samples (images or crops) per optimizer step."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak AdamW learning rate."})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay."})
    warmup_epochs: int = field(default=2, metadata={"help": "Linear warm-up before the cosine decay."})
    heatmap_weight: float = field(default=0.5, metadata={"help": (
        "Weight of the cross-entropy between each predicted heatmap and a Gaussian at the true corner; "
        "it keeps the heatmaps peaked, which the confidence check relies on.")})
    endplate_weight: float = field(default=1.0, metadata={"help": (
        "Weight of the error on each endplate's left-to-right vector (the Cobb angle depends on these).")})
    seed: int = field(default=16, metadata={"help": "Seed of the split, initialisation, data order, augmentation."})
    threads: int = field(default=1, metadata={"help": "torch CPU threads (the machine is shared)."})
    eval_every: int = field(default=3, metadata={"help": "Validate every N epochs (and after the last)."})
    max_minutes: float = field(default=0.0, metadata={"help": (
        "Wall-time budget in minutes (0 = none): the cosine schedule follows whichever runs out first, epochs or "
        "time, so the learning rate is annealed when the budget ends; the run stops after that epoch. Resuming "
        "counts the time already spent.")})

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path):
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown fields {sorted(unknown)}")
        return cls(**data)


def _default(name: str, value):
    """A shared field with another default (its help text kept)."""
    return field(default=value, metadata=LandmarkRunConfig.__dataclass_fields__[name].metadata)


@dataclass
class XrayTrainConfig(LandmarkRunConfig):
    """The first stage (``core/xray/landmarks.py``): the whole radiograph, one heatmap per corner."""

    input_height: int = field(default=512, metadata={"help": "Height of the network input in pixels."})
    input_width: int = field(default=256, metadata={"help": "Width of the network input in pixels."})
    val_fraction: float = field(default=0.2, metadata={"help": "Share of patients held out for validation."})
    augment: bool = field(default=True, metadata={"help": (
        "Random affine (rotation, scale, shift), horizontal flip with left/right corners swapped, "
        "gamma/contrast/noise.")})


@dataclass
class XrayRefineConfig(LandmarkRunConfig):
    """The second stage (``core/xray/refine.py``): one crop per vertebra, its four corners."""

    output_dir: str = _default("output_dir", "runs/xray-refine")
    epochs: int = _default("epochs", 40)
    batch_size: int = _default("batch_size", 32)
    warmup_epochs: int = _default("warmup_epochs", 1)
    heatmap_weight: float = _default("heatmap_weight", 0.2)
    eval_every: int = _default("eval_every", 2)
    first_stage: str = field(default="resources/models/spinemed-xray-landmarks", metadata={"help": (
        "Model folder of the first stage, run on the validation images to score the two stages together; its "
        "validation_files.json fixes the split (the same held-out images as the first stage).")})
    jitter: float = field(default=0.35, metadata={"help": (
        "Standard deviation of the crop centre's offset from a vertebra's centre, in vertebra spacings (the "
        "first stage is off by about half a spacing); a quarter of the crops get a tenth of it (the second pass).")})
    rotation_deg: float = field(default=12.0, metadata={"help": "Crops rotated uniformly within +/- this."})
    init_from: str = field(default="", metadata={"help": (
        "A finished second-stage run folder whose final weights this run starts from (more training with a new "
        "warm-up and cosine schedule); empty = random initialisation. Read only when the run has no checkpoint.")})


def describe(cls=XrayTrainConfig) -> str:
    return "\n".join(f"{f.name} (default {f.default!r}): {f.metadata['help']}" for f in dataclasses.fields(cls))
