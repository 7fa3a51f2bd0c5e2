"""Decide whether a trained adapter becomes the workstation's default, from SpineBench before and after training.

    spinemed-train ship build/training/<run> [--models-dir resources/models] [--alpha 0.05]

Reads the run's ``eval/spinebench-base/results.json`` and ``eval/spinebench-adapter/results.json`` (both written by
the training run's evaluation hook, on the same benchmark), compares them item by item (paired bootstrap over all
scored items; McNemar on multiple choice), writes the before/after table beside the registered adapter, and writes
``default_adapter.json`` (read by ``core.inference.default_adapter``) only when the adapter's total score is higher
with p < alpha and a 95 % interval above zero. Otherwise the pointer is removed and the base stays the default.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.inference.default_adapter import POINTER
from spinebench.results import compare, compare_markdown


class ShipError(Exception):
    pass


@dataclass
class ShipDecision:
    ship: bool
    reason: str
    comparison: dict[str, Any]
    table_path: Path
    pointer_path: Path


def _results(run_dir: Path, which: str) -> dict[str, Any]:
    path = run_dir / "eval" / f"spinebench-{which}" / "results.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ShipError(f"{path}: {exc.strerror or exc} (the training run writes it when eval.spinebench_command "
                        "is set)") from exc
    except ValueError as exc:
        raise ShipError(f"{path}: not a SpineBench results JSON ({exc})") from exc


def decide(cmp: dict[str, Any], alpha: float = 0.05) -> tuple[bool, str]:
    total = cmp["rows"].get("total") or {}
    if total.get("diff") is None:
        return False, "no scored item in common: nothing to compare"
    diff, lo, hi, p = total["diff"] * 100, total["lo"] * 100, total["hi"] * 100, total["p"]
    summary = f"total score {diff:+.1f} points (95 % CI {lo:+.1f} .. {hi:+.1f}, p = {p:.3g}, n = {total['n_pairs']})"
    if diff > 0 and lo > 0 and p < alpha:
        return True, f"the adapter beats the base: {summary}"
    return False, f"no significant improvement over the base ({summary}): the base model stays the default"


_CARD_SECTION = "## SpineBench before/after and the shipping decision"


def _add_to_card(card: Path, table: str) -> None:
    """Put the paired comparison (with its p-values) and the decision in the registered model card."""
    if not card.is_file():
        return
    text = card.read_text(encoding="utf-8").split(_CARD_SECTION)[0].rstrip()
    body = table.split("\n", 1)[1].strip()  # drop the comparison's own title
    card.write_text(f"{text}\n\n{_CARD_SECTION}\n\n{body}\n", encoding="utf-8")


def ship(run_dir: Path | str, models_dir: Path | str, alpha: float = 0.05) -> ShipDecision:
    run_dir, models_dir = Path(run_dir), Path(models_dir)
    if not run_dir.is_dir():
        raise ShipError(f"{run_dir}: no such training output folder")
    info = json.loads((run_dir / "run_info.json").read_text(encoding="utf-8")) \
        if (run_dir / "run_info.json").is_file() else {}
    name = info.get("name") or (info.get("config") or {}).get("name")
    ggufs = sorted(run_dir.glob("*.gguf"))
    adapters = [g for g in ggufs if ".merged." not in g.name and (not name or g.stem == name)]
    if not adapters:
        raise ShipError(f"{run_dir}: no adapter GGUF (export.gguf must be on)")
    adapter = adapters[0]
    registered = models_dir / adapter.stem / adapter.name
    if not registered.is_file():
        raise ShipError(f"{registered}: not registered; run `spinemed-train register {adapter} --dest {models_dir}`")
    base, tuned = _results(run_dir, "base"), _results(run_dir, "adapter")
    cmp = compare(base, tuned)
    ok, reason = decide(cmp, alpha)
    table = models_dir / adapter.stem / "spinebench_before_after.md"
    text = compare_markdown(cmp, "base", f"base + {adapter.stem}")
    text += f"\nDecision (alpha {alpha}): {reason}.\n"
    table.write_text(text, encoding="utf-8")
    _add_to_card(registered.with_suffix(".md"), text)
    pointer = models_dir / POINTER
    if ok:
        pointer.write_text(json.dumps({"adapter": f"{adapter.stem}/{adapter.name}", "decision": reason,
                                       "comparison": f"{adapter.stem}/{table.name}"}, indent=1) + "\n",
                           encoding="utf-8")
    elif pointer.is_file():
        try:
            named = json.loads(pointer.read_text(encoding="utf-8")).get("adapter")
        except ValueError:
            named = None
        if named in (None, f"{adapter.stem}/{adapter.name}"):
            pointer.unlink()
    return ShipDecision(ok, reason, cmp, table, pointer)
