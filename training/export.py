"""Export a trained PEFT LoRA adapter for the workstation: llama.cpp LoRA GGUF, merged GGUF, HF merge, registration.

* :func:`adapter_to_gguf` writes the adapter with the ``gguf`` package following llama.cpp's
  ``convert_lora_to_gguf.py`` conventions: ``general.type = "adapter"``, ``adapter.type = "lora"``,
  ``adapter.lora.alpha``, one ``<llama.cpp tensor>.lora_a`` (rank x in) and ``.lora_b`` (out x rank) pair per adapted
  weight, F16. Names come from gguf's own tensor map for the base's architecture
  (``model.layers.3.self_attn.q_proj.weight`` -> ``blk.3.attn_q.weight``). For the ``llama`` architecture llama.cpp
  stores attn_q / attn_k rows permuted for its RoPE layout (transformers un-permutes them when it loads the GGUF), so
  the rows of those lora_b are permuted the same way. Scales peft applies per module (rsLoRA, rank/alpha patterns)
  are folded into lora_b so that llama.cpp's ``alpha / rank`` gives the same update.
* :func:`merge_to_gguf` adds ``scale * B @ A`` to the base GGUF's dequantised weights and writes a full model in Q8_0
  or F16, copying the base's metadata and tokenizer (never Q4: a small merged fine-tune re-quantised to Q4_K_M was
  seen to degrade into loops).
* :func:`merge_to_hf` merges with peft into a Hugging Face folder for the transformers backend (the GGUF quantizer
  of a model loaded from GGUF is cleared before save_pretrained).
* :func:`register_adapter` copies GGUF + JSON sidecar (naming its base) + model card into a models folder
  (``resources/models`` to ship it, ``<data>/models`` for one user), where ``core.inference.registry`` finds it.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.hashing import sha256_file

log = logging.getLogger("spinemed.export")

PERMUTE_QK_ARCHS = {"llama"}  # the archs whose GGUF q/k rows transformers' GGUF loader un-permutes
SIDECAR_FORMAT = "spinemed-adapter/1"


class ExportError(ValueError):
    """An adapter that cannot be exported as asked; the message says why."""


# --- reading --------------------------------------------------------------------------------------------------
@dataclass
class BaseInfo:
    path: Path
    arch: str
    n_head: int
    n_head_kv: int
    n_blocks: int
    name: str
    tensor_shapes: dict[str, tuple[int, ...]]  # gguf name -> (rows, cols) in numpy order


def _field(reader: Any, key: str) -> Any:
    f = reader.fields.get(key)
    return f.contents() if f is not None else None


def read_base(base_gguf: Path | str) -> BaseInfo:
    import gguf

    path = Path(base_gguf)
    if not path.is_file():
        raise ExportError(f"{path}: base GGUF not found")
    reader = gguf.GGUFReader(path)
    arch = _field(reader, "general.architecture")
    if not arch:
        raise ExportError(f"{path}: no general.architecture in the GGUF header")
    if (_field(reader, "general.type") or "model") != "model":
        raise ExportError(f"{path}: this GGUF is a {_field(reader, 'general.type')}, not a base model")
    n_head = _field(reader, f"{arch}.attention.head_count") or 0
    n_head_kv = _field(reader, f"{arch}.attention.head_count_kv") or n_head
    n_blocks = _field(reader, f"{arch}.block_count") or 0
    shapes = {t.name: tuple(int(x) for x in reversed(t.shape)) for t in reader.tensors}
    return BaseInfo(path, str(arch), int(n_head), int(n_head_kv), int(n_blocks),
                    str(_field(reader, "general.name") or path.stem), shapes)


def _adapter_config(adapter_dir: Path) -> dict[str, Any]:
    cfg_path = adapter_dir / "adapter_config.json"
    if not cfg_path.is_file():
        raise ExportError(f"{adapter_dir}: not a PEFT adapter folder (no adapter_config.json)")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if str(cfg.get("peft_type", "LORA")).upper() != "LORA":
        raise ExportError(f"{adapter_dir}: a {cfg.get('peft_type')} adapter; only LoRA exports to llama.cpp")
    if cfg.get("use_dora"):
        raise ExportError(f"{adapter_dir}: DoRA adapters have a magnitude vector llama.cpp cannot apply")
    return cfg


def _load_adapter_weights(adapter_dir: Path) -> dict[str, Any]:
    st = adapter_dir / "adapter_model.safetensors"
    if st.is_file():
        from safetensors.torch import load_file

        return load_file(str(st), device="cpu")
    binf = adapter_dir / "adapter_model.bin"
    if binf.is_file():
        import torch

        return torch.load(binf, map_location="cpu", weights_only=True)
    raise ExportError(f"{adapter_dir}: no adapter_model.safetensors or adapter_model.bin")


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    for pat, value in (patterns or {}).items():
        if module == pat or module.endswith("." + pat) or re.fullmatch(pat, module):
            return value
    return default


def hf_module_name(key: str) -> str:
    """``base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight`` ->
    ``model.layers.0.self_attn.q_proj.weight`` (the base model's weight name)."""
    name = key.replace("base_model.model.", "", 1)
    name = re.sub(r"\.lora_[AB](\.[^.]+)?\.weight$", ".weight", name)
    for prefix, repl in (("model.language_model.", "model."), ("language_model.model.", "model."),
                         ("language_model.", "")):
        if name.startswith(prefix):
            name = repl + name[len(prefix):]
            break
    return name


@dataclass
class LoraPair:
    hf_name: str
    gguf_name: str
    a: np.ndarray  # (rank, in) float32
    b: np.ndarray  # (out, rank) float32, llama.cpp row order, scale folded so that alpha / rank is right
    rank: int


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order (convert_hf_to_gguf.LlamaModel.permute) applied to the rows of ``w``."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def lora_pairs(adapter_dir: Path | str, base: BaseInfo) -> tuple[list[LoraPair], float]:
    """The adapter's A/B pairs under llama.cpp names, and the alpha to write in the GGUF."""
    import gguf

    adapter_dir = Path(adapter_dir)
    cfg = _adapter_config(adapter_dir)
    weights = _load_adapter_weights(adapter_dir)
    alpha = float(cfg.get("lora_alpha") or cfg.get("r") or 8)
    r_default = int(cfg.get("r") or 8)
    rslora = bool(cfg.get("use_rslora"))
    arch_ids = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    if base.arch not in arch_ids:
        raise ExportError(f"{base.path}: architecture {base.arch!r} is unknown to the gguf package")
    tmap = gguf.get_tensor_name_map(arch_ids[base.arch], base.n_blocks)
    pending: dict[str, dict[str, Any]] = {}
    for key, tensor in weights.items():
        if ".lora_A." in key or key.endswith(".lora_A.weight"):
            part = "a"
        elif ".lora_B." in key or key.endswith(".lora_B.weight"):
            part = "b"
        elif "lora_embedding" in key:
            raise ExportError(f"{adapter_dir}: {key}: embedding adapters are not exported (tied embeddings)")
        else:
            raise ExportError(f"{adapter_dir}: unexpected tensor {key} (only lora_A / lora_B are exported; train "
                              "without modules_to_save)")
        pending.setdefault(hf_module_name(key), {})[part] = tensor.float().numpy()
    pairs: list[LoraPair] = []
    for hf_name, ab in pending.items():
        if set(ab) != {"a", "b"}:
            raise ExportError(f"{adapter_dir}: {hf_name} has lora_{'A' if 'a' in ab else 'B'} but not its partner")
        gname = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gname is None:
            raise ExportError(f"{adapter_dir}: {hf_name} has no llama.cpp tensor name for architecture {base.arch}")
        if gname not in base.tensor_shapes:
            raise ExportError(f"{adapter_dir}: {hf_name} -> {gname}, which the base {base.path.name} does not have "
                              "(is this adapter for another base?)")
        a, b = ab["a"], ab["b"]
        rows, cols = base.tensor_shapes[gname]
        if b.shape[0] != rows or a.shape[1] != cols:
            raise ExportError(f"{adapter_dir}: {hf_name} is {b.shape[0]}x{a.shape[1]} but the base's {gname} is "
                              f"{rows}x{cols}: the adapter was trained on another base")
        module = hf_name[: -len(".weight")]
        rank = a.shape[0]
        m_alpha = float(_pattern_value(cfg.get("alpha_pattern") or {}, module, alpha))
        m_rank = int(_pattern_value(cfg.get("rank_pattern") or {}, module, r_default))
        peft_scale = m_alpha / (m_rank ** 0.5 if rslora else m_rank)
        fold = peft_scale / (alpha / rank)
        if fold != 1.0:
            b = b * fold
        if base.arch in PERMUTE_QK_ARCHS:
            if gname.endswith("attn_q.weight"):
                b = permute_rows(b, base.n_head)
            elif gname.endswith("attn_k.weight"):
                b = permute_rows(b, base.n_head_kv)
        pairs.append(LoraPair(hf_name, gname, a, b, rank))
    if not pairs:
        raise ExportError(f"{adapter_dir}: the adapter holds no LoRA tensors")
    pairs.sort(key=lambda p: (int(m.group(1)) if (m := re.search(r"blk\.(\d+)\.", p.gguf_name)) else -1,
                              p.gguf_name))
    return pairs, alpha


# --- adapter GGUF ---------------------------------------------------------------------------------------------
def adapter_to_gguf(adapter_dir: Path | str, base_gguf: Path | str, out: Path | str, *,
                    name: str | None = None) -> Path:
    """Write the PEFT adapter as a llama.cpp LoRA GGUF (F16) for ``Llama(model_path=base, lora_path=out)``."""
    import gguf

    base = read_base(base_gguf)
    pairs, alpha = lora_pairs(adapter_dir, base)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    writer = gguf.GGUFWriter(str(tmp), base.arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(name or Path(adapter_dir).name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_base_model_count(1)
    writer.add_base_model_name(0, base.name)
    for p in pairs:
        writer.add_tensor(p.gguf_name + ".lora_a", np.ascontiguousarray(p.a.astype(np.float16)))
        writer.add_tensor(p.gguf_name + ".lora_b", np.ascontiguousarray(p.b.astype(np.float16)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)
    log.info("wrote %s: %d LoRA pairs, alpha %g, base %s", out, len(pairs), alpha, base.path.name)
    return out


# --- merged GGUF ----------------------------------------------------------------------------------------------
def merge_to_gguf(adapter_dir: Path | str, base_gguf: Path | str, out: Path | str, *, qtype: str = "q8_0",
                  chat_template: str | None = None, name: str | None = None) -> Path:
    """Base GGUF + adapter -> one full model GGUF in Q8_0 or F16 (metadata and tokenizer copied from the base)."""
    import gguf
    from gguf.quants import dequantize, quantize

    qtype = qtype.lower()
    if qtype not in ("q8_0", "f16"):
        raise ExportError(f"merge type {qtype!r}: use q8_0 or f16 (Q4 re-quantisation of a merged fine-tune was seen "
                          "to degrade into loops)")
    target = gguf.GGMLQuantizationType.Q8_0 if qtype == "q8_0" else gguf.GGMLQuantizationType.F16
    base = read_base(base_gguf)
    pairs, alpha = lora_pairs(adapter_dir, base)
    deltas = {p.gguf_name: (p.b.astype(np.float32) @ p.a.astype(np.float32)) * (alpha / p.rank) for p in pairs}
    reader = gguf.GGUFReader(base.path)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    writer = gguf.GGUFWriter(str(tmp), base.arch)
    skip = {"general.architecture", "general.file_type", "general.alignment", "general.name"}
    has_template = False
    for f in reader.fields.values():
        if f.name.startswith("GGUF.") or f.name in skip:
            continue
        has_template |= f.name == "tokenizer.chat_template"
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(f.name, f.contents(), vtype, sub_type=sub)
    writer.add_name(name or f"{base.name} + {Path(adapter_dir).name}")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if qtype == "q8_0" else gguf.LlamaFileType.MOSTLY_F16)
    if chat_template and not has_template:
        writer.add_chat_template(chat_template)
    F32 = gguf.GGMLQuantizationType.F32
    for t in reader.tensors:
        if len(t.shape) < 2:  # norms and biases stay as they are (F32)
            writer.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type if t.tensor_type != F32 else None)
            continue
        w = dequantize(t.data, t.tensor_type).astype(np.float32)
        if t.name in deltas:
            w = w + deltas[t.name]
        tq = target if (target != gguf.GGMLQuantizationType.Q8_0 or w.shape[-1] % 32 == 0) \
            else gguf.GGMLQuantizationType.F16
        q = quantize(w, tq)
        writer.add_tensor(t.name, q, raw_dtype=tq)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)
    log.info("wrote merged %s (%s)", out, qtype.upper())
    return out


# --- merged Hugging Face folder -------------------------------------------------------------------------------
def merge_to_hf(adapter_dir: Path | str, base: Path | str, out_dir: Path | str, *, gguf_file: str | None = None) -> Path:
    """Merge with peft into a HF folder (safetensors + tokenizer) for the transformers backend."""
    import peft
    import transformers

    from training.train import clear_gguf_quantizer

    base = Path(base)
    if base.suffix.lower() == ".gguf":
        base, gguf_file = base.parent, base.name
    kw: dict[str, Any] = {"local_files_only": True}
    if gguf_file:
        kw["gguf_file"] = gguf_file
    model = transformers.AutoModelForCausalLM.from_pretrained(base, **kw)
    clear_gguf_quantizer(model)
    merged = peft.PeftModel.from_pretrained(model, Path(adapter_dir)).merge_and_unload()
    clear_gguf_quantizer(merged)  # save_pretrained refuses a model that still carries the GGUF quantizer
    out_dir = Path(out_dir)
    merged.save_pretrained(out_dir)
    tok_src = Path(adapter_dir) if (Path(adapter_dir) / "tokenizer_config.json").is_file() else base
    tok = transformers.AutoTokenizer.from_pretrained(tok_src, **({} if tok_src != base else kw))
    tok.save_pretrained(out_dir)
    return out_dir


# --- sidecar and registration ---------------------------------------------------------------------------------
def write_sidecar(gguf_path: Path, base_gguf: Path, run_info: dict[str, Any] | None = None) -> Path:
    """``<adapter>.json`` beside the GGUF: which base it applies to (file name, sha256) and how it was made."""
    base_gguf = Path(base_gguf)
    info = run_info or {}
    cfg = info.get("config", {})
    sidecar = {
        "format": SIDECAR_FORMAT,
        "kind": "lora-adapter",
        "file": gguf_path.name,
        "sha256": sha256_file(gguf_path),
        "base": {"file": base_gguf.name, "sha256": sha256_file(base_gguf), "size": base_gguf.stat().st_size,
                 "name": read_base(base_gguf).name},
        "lora": {k: cfg.get("lora", {}).get(k) for k in ("r", "alpha", "target_modules")} if cfg else None,
        "data_version": info.get("data_version"),
        "card": gguf_path.with_suffix(".md").name,
        "intended_use": "decision support for spine imaging; every output is reviewed by a clinician",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    path = gguf_path.with_suffix(".json")
    path.write_text(json.dumps(sidecar, indent=1), encoding="utf-8")
    return path


def read_sidecar(gguf_path: Path | str) -> dict[str, Any] | None:
    p = Path(gguf_path).with_suffix(".json")
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return data if data.get("format") == SIDECAR_FORMAT else None


def register_adapter(gguf_path: Path | str, models_dir: Path | str) -> list[Path]:
    """Copy the adapter GGUF, its sidecar, card and training curves into ``models_dir/<name>/``."""
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise ExportError(f"{gguf_path}: adapter GGUF not found")
    sidecar = read_sidecar(gguf_path)
    if sidecar is None:
        raise ExportError(f"{gguf_path}: no sidecar {gguf_path.with_suffix('.json').name} naming the base; "
                          "run `spinemed-train export-gguf` (it writes one)")
    dest = Path(models_dir) / gguf_path.stem
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    # the card shows the training curves saved beside it
    for src in (gguf_path, gguf_path.with_suffix(".json"), gguf_path.with_suffix(".md"),
                gguf_path.parent / "training_curves.png"):
        if src.is_file():
            if src.resolve() != (dest / src.name).resolve():
                shutil.copy2(src, dest / src.name)
            copied.append(dest / src.name)
    return copied
