"""Model card (Markdown) of a trained adapter: base, data version, config, results, SpineBench, intended use, limits.

Written at the end of every run from ``run_info.json``; ``spinemed-train card RUN_DIR --spinebench-base B.json
--spinebench-adapter A.json`` rewrites it once SpineBench scores exist (the scores section is a placeholder until
then). Result files are read generically: the ``summary`` of a SpineBench results.json (or a ``metrics`` object),
every estimate ``{"value", "lo", "hi"}`` or ``{"value", "ci95"}`` and every plain number, nested up to four levels,
becomes a row of the before/after table. Significance: ``spinebench compare BASE.json ADAPTER.json``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Any

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None

INTENDED_USE = """\
Decision support for clinicians reading spine imaging in SpineMed Workstation: explaining findings, levels,
classifications and options, and drafting report text **that a clinician reviews and signs**. It runs offline
on the workstation; no data leaves the machine."""

LIMITS = """\
- Not a medical device and not validated clinically: it must never be the sole basis of a diagnosis or treatment.
- A small model ({params}) adapted with LoRA: it can state wrong facts fluently, miscount vertebral levels and
  invent findings. Check every level and measurement against the images.
- Trained on the curated SpineMed instruction data named above (generated from the project's knowledge base and
  reviewed items); coverage of rare conditions, paediatrics and non-English text is limited.
- Text only unless the base is a vision-language model: it does not see the images; the workstation passes it the
  study context (levels, measurements) as text.
- The adapter only works with the exact base file named above (same architecture and weights)."""


def _flatten(obj: Any, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        if "value" in obj:
            ci = obj.get("ci95") or obj.get("ci")
            if ci is None and obj.get("lo") is not None and obj.get("hi") is not None:
                ci = [obj["lo"], obj["hi"]]
            if isinstance(obj["value"], (int, float)):
                out[prefix.rstrip(".")] = (obj["value"], ci)
            return out
        if depth >= 4:
            return out
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}.", depth + 1))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix.rstrip(".")] = (obj, None)
    return out


def _scores(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        return {}
    res = entry.get("result", entry)
    for key in ("summary", "metrics"):  # SpineBench results.json: {"meta", "summary", "items"}
        if isinstance(res, dict) and isinstance(res.get(key), dict):
            res = res[key]
            break
    return {k: v for k, v in _flatten(res).items() if not k.endswith(".n") and k != "n"}


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    value, ci = v
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def spinebench_section(evaluation: dict[str, Any]) -> str:
    base, adapter = evaluation.get("base"), evaluation.get("adapter")
    errors = [f"- {k}: evaluation failed: {v['error']}" for k, v in (("base", base), ("adapter", adapter))
              if isinstance(v, dict) and v.get("error")]
    sb, sa = _scores(base) if base and not base.get("error") else {}, \
        _scores(adapter) if adapter and not adapter.get("error") else {}
    if not sb and not sa:
        text = ("**Not evaluated yet.** Scores are filled in when SpineBench has run on the held-out split, before "
                "(base) and after (base + this adapter):\n\n"
                "```\nspinemed-train card RUN_DIR --spinebench-base base.json --spinebench-adapter adapter.json\n```\n"
                "or set `eval.spinebench_command` in the training config so both runs happen in the training run.")
        return text + ("\n\n" + "\n".join(errors) if errors else "")
    rows = ["| metric | base | base + adapter | change |", "| --- | --- | --- | --- |"]
    for key in sorted(set(sb) | set(sa), key=lambda k: (k != "total", k)):
        b, a = sb.get(key), sa.get(key)
        delta = f"{a[0] - b[0]:+.3f}" if a and b else "—"
        rows.append(f"| {key} | {_fmt(b)} | {_fmt(a)} | {delta} |")
    for k, v in (("base", base), ("adapter", adapter)):
        if isinstance(v, dict) and v.get("command"):
            rows.append("")
            rows.append(f"{k}: `{v['command']}`")
    return "\n".join(rows + ([""] + errors if errors else []))


def _param_label(info: dict[str, Any]) -> str:
    base = info.get("base") or {}
    text = f"{base.get('display_name', '')} {base.get('gguf_file') or ''}"
    m = re.search(r"(?<![\w.])(\d+(?:\.\d+)?[MB])(?![a-zA-Z])", text)
    return f"{m.group(1)} parameters" if m else "a small model"


def render_model_card(info: dict[str, Any], curves_png: Path | None = None, card_dir: Path | None = None) -> str:
    cfg = info.get("config", {})
    base = info.get("base", {})
    lora = cfg.get("lora", {})
    stages = info.get("stages", [])
    name = info.get("name") or cfg.get("name", "adapter")
    lines = [f"# {name}", "",
             "LoRA adapter for SpineMed Workstation (llama.cpp LoRA GGUF, F16).", "",
             "| | |", "| --- | --- |",
             f"| base model | {base.get('display_name', '?')} (`{Path(str(base.get('gguf_base') or base.get('folder', '?'))).name}`) |",
             (f"| adapter | LoRA r={lora.get('r')}, alpha={lora.get('alpha')}, dropout={lora.get('dropout')}, "
              f"modules: {', '.join(lora.get('target_modules') or [])} |"),
             f"| data version | `{info.get('data_version', '?')}` |",
             f"| stages | {' -> '.join(s['name'] for s in stages) or '?'} |",
             f"| optimizer steps | {sum(s.get('steps', 0) for s in stages)} |",
             f"| final train / val loss | {_loss(stages, 'train_loss')} / {_loss(stages, 'eval_loss')} |",
             (f"| trained on | {info.get('device', '?')} ({info.get('precision', '?')}), "
              f"{_tps(stages)} tokens/s, peak memory {info.get('peak_memory_mib', '?')} MiB |"),
             f"| software | torch {info.get('torch', '?')}, transformers {info.get('transformers', '?')} |",
             f"| written | {_dt.date.today().isoformat()} |", ""]
    lines += ["## Use", "",
              ("The workstation lists it in its model registry (a GGUF adapter beside a JSON sidecar naming its "
               "base). With llama-cpp-python directly:"), "",
              "```python", "from llama_cpp import Llama",
              (f"llm = Llama(model_path=\"{Path(str(base.get('gguf_base') or 'BASE.gguf')).name}\", "
               f"lora_path=\"{name}.gguf\")"), "```", ""]
    lines += ["## SpineBench (held-out split)", "", spinebench_section(info.get("evaluation") or {}), ""]
    lines += ["## Training", ""]
    if curves_png and Path(curves_png).is_file():
        rel = os.path.relpath(Path(curves_png), card_dir) if card_dir else Path(curves_png).name
        lines += [f"![training curves]({rel})", ""]
    lines += ["| stage | steps | train loss | val loss | samples used | trained tokens | tokens/s | early stop |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in stages:
        d = (s.get("data") or {}).get("train", {})
        lines.append(f"| {s['name']} | {s.get('steps')} | {_num(s.get('train_loss'))} | {_num(s.get('eval_loss'))} | "
                     f"{d.get('used', '?')}/{d.get('records', '?')} | {d.get('trained_tokens', '?')} | "
                     f"{s.get('tokens_per_second')} | {'yes' if s.get('stopped_early') else 'no'} |")
    files = sorted({f for s in stages for f in ((s.get("data") or {}).get("train", {}).get("files") or [])})
    if files:
        lines += ["", "Training files: " + ", ".join(f"`{f}`" for f in files)]
    lines += ["", "Loss is computed on assistant tokens only (system, user and template tokens are masked).", ""]
    lines += ["### Configuration", "", "```yaml",
              (yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True).rstrip() if yaml else
               json.dumps(cfg, indent=1)), "```", ""]
    lines += ["## Intended use", "", INTENDED_USE, "", "## Limits", "", LIMITS.format(params=_param_label(info)), ""]
    lines += ["## Licence", "",
              ("The adapter is a derivative of its base model and is distributed under the base model's licence "
               "(SmolLM2: Apache-2.0; Gemma 3: the Gemma terms of use)."), ""]
    return "\n".join(lines)


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "—"


def _loss(stages: list[dict[str, Any]], key: str) -> str:
    vals = [s.get(key) for s in stages if s.get(key) is not None]
    return _num(vals[-1]) if vals else "—"


def _tps(stages: list[dict[str, Any]]) -> str:
    vals = [s.get("tokens_per_second") for s in stages if s.get("tokens_per_second") and not s.get("skipped")]
    return f"{sum(vals) / len(vals):.0f}" if vals else "?"


def write_model_card(path: Path | str, info: dict[str, Any], curves_png: Path | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_model_card(info, curves_png, path.parent), encoding="utf-8")
    return path


def card_from_run(run_dir: Path | str, out: Path | str | None = None, spinebench_base: Path | str | None = None,
                  spinebench_adapter: Path | str | None = None) -> Path:
    """Re-render a run's card from its run_info.json, adding SpineBench result files when given."""
    run_dir = Path(run_dir)
    info_path = run_dir if run_dir.is_file() else run_dir / "run_info.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path}: no run_info.json (is {run_dir} a training output_dir?)")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    evaluation = dict(info.get("evaluation") or {})
    for key, f in (("base", spinebench_base), ("adapter", spinebench_adapter)):
        if f:
            evaluation[key] = {"result": json.loads(Path(f).read_text(encoding="utf-8")), "command": str(f)}
    info["evaluation"] = evaluation
    info_path.write_text(json.dumps(info, indent=1, default=str), encoding="utf-8")
    folder = info_path.parent
    target = Path(out) if out else folder / f"{info.get('name', 'adapter')}.md"
    curves = folder / "training_curves.png"
    return write_model_card(target, info, curves if curves.is_file() else None)
