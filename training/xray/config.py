"""Configuration of a radiograph landmark training run: a dataclass with the help text of every field."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class XrayTrainConfig:
    data_dir: str = field(default="../shared/data/xray-aasce-train", metadata={"help": (
        "Folder in the AASCE layout: images/ and labels/{filenames,landmarks,angles}.csv.")})
    output_dir: str = field(default="runs/xray-landmarks", metadata={"help": (
        "Run folder: checkpoint, history, curves, validation ids, exported ONNX. Resumed when it holds a "
        "checkpoint.")})
    input_height: int = field(default=512, metadata={"help": "Height of the network input in pixels."})
    input_width: int = field(default=256, metadata={"help": "Width of the network input in pixels."})
    epochs: int = field(default=60, metadata={"help": "Passes over the training images (cosine schedule)."})
    batch_size: int = field(default=8, metadata={"help": "Images per optimizer step."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak AdamW learning rate."})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay."})
    warmup_epochs: int = field(default=2, metadata={"help": "Linear warm-up before the cosine decay."})
    heatmap_weight: float = field(default=0.5, metadata={"help": (
        "Weight of the cross-entropy between each predicted heatmap and a Gaussian at the true corner; "
        "it keeps the heatmaps peaked, which the confidence check relies on.")})
    endplate_weight: float = field(default=1.0, metadata={"help": (
        "Weight of the error on each endplate's left-to-right vector (the Cobb angle depends on these).")})
    val_fraction: float = field(default=0.2, metadata={"help": "Share of patients held out for validation."})
    seed: int = field(default=16, metadata={"help": "Seed of the split, initialisation, data order, augmentation."})
    threads: int = field(default=1, metadata={"help": "torch CPU threads (the machine is shared)."})
    eval_every: int = field(default=3, metadata={"help": "Validate every N epochs (and after the last)."})
    max_minutes: float = field(default=0.0, metadata={"help": (
        "Wall-time budget in minutes (0 = none): the cosine schedule follows whichever runs out first, epochs or "
        "time, so the learning rate is annealed when the budget ends; the run stops after that epoch. Resuming "
        "counts the time already spent.")})
    augment: bool = field(default=True, metadata={"help": (
        "Random affine (rotation, scale, shift), horizontal flip with left/right corners swapped, "
        "gamma/contrast/noise.")})

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> XrayTrainConfig:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown fields {sorted(unknown)}")
        return cls(**data)


def describe() -> str:
    return "\n".join(f"{f.name} (default {f.default!r}): {f.metadata['help']}"
                     for f in dataclasses.fields(XrayTrainConfig))


@dataclass
class XrayRefineConfig:
    """The second stage (``core/xray/refine.py``): one crop per vertebra, its four corners."""

    data_dir: str = field(default="../shared/data/xray-aasce-train", metadata={"help": (
        "Folder in the AASCE layout: images/ and labels/{filenames,landmarks,angles}.csv.")})
    output_dir: str = field(default="runs/xray-refine", metadata={"help": (
        "Run folder: cache, checkpoint, history, curves. Resumed when it holds a checkpoint.")})
    first_stage: str = field(default="resources/models/spinemed-xray-landmarks", metadata={"help": (
        "Model folder of the first stage, run on the validation images to score the two stages together; its "
        "validation_files.json fixes the split (the same held-out images as the first stage).")})
    epochs: int = field(default=40, metadata={"help": "Passes over every vertebra of the training images."})
    batch_size: int = field(default=32, metadata={"help": "Crops per optimizer step."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak AdamW learning rate."})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay."})
    warmup_epochs: int = field(default=1, metadata={"help": "Linear warm-up before the cosine decay."})
    heatmap_weight: float = field(default=0.2, metadata={"help": (
        "Weight of the cross-entropy between each heatmap and a Gaussian at the true corner (keeps them peaked).")})
    endplate_weight: float = field(default=1.0, metadata={"help": (
        "Weight of the error on each endplate's left-to-right vector (the Cobb angle depends on these).")})
    jitter: float = field(default=0.35, metadata={"help": (
        "Standard deviation of the crop centre's offset from a vertebra's centre, in vertebra spacings (the "
        "first stage is off by about half a spacing); a quarter of the crops get a tenth of it (the second pass).")})
    rotation_deg: float = field(default=12.0, metadata={"help": "Crops rotated uniformly within +/- this."})
    seed: int = field(default=16, metadata={"help": "Seed of initialisation, data order, augmentation."})
    threads: int = field(default=1, metadata={"help": "torch CPU threads (the machine is shared)."})
    eval_every: int = field(default=2, metadata={"help": "Validate every N epochs (and after the last)."})
    max_minutes: float = field(default=0.0, metadata={"help": (
        "Wall-time budget in minutes (0 = none); the cosine schedule follows whichever runs out first.")})

    save = XrayTrainConfig.save

    @classmethod
    def load(cls, path: Path) -> XrayRefineConfig:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown fields {sorted(unknown)}")
        return cls(**data)
