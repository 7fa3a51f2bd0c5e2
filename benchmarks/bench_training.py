"""Benchmark: LoRA training throughput (tokens/s) and peak memory, on the CPU and, when torch sees one, on a GPU.

The same entry point as `spinemed-train train` (training.train.run_training) on the embedded base, with chat samples
built from the project's knowledge base (resources/knowledge/*.md: a question per section, the section as the reply),
packed to --max-length tokens. Tokens/s counts real (unpadded) input tokens per second of optimizer steps; the first
--warmup steps are left out (allocation, first-call overheads). Peak memory: the process's resident high-water mark
(VmHWM) on the CPU, torch.cuda.max_memory_allocated on a GPU.

    .venv/bin/python benchmarks/bench_training.py [--device auto|cpu|cuda|all] [--steps 12] [--max-length 512]
        [--batch 2] [--grad-accum 1] [--batching pack|bucket] [--r 16] [--threads N] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.inference.default_model import find_default_model
from training.config import config_from_dict
from training.train import run_training

KNOWLEDGE = Path(__file__).resolve().parents[1] / "resources" / "knowledge"


def knowledge_samples(limit: int = 400) -> list[dict]:
    rows = []
    for doc in sorted(KNOWLEDGE.glob("*.md")):
        text = re.sub(r"^---.*?---\s*", "", doc.read_text(encoding="utf-8"), flags=re.DOTALL)
        for section in re.split(r"\n(?=## )", text):
            lines = section.strip().splitlines()
            if len(lines) < 3:
                continue
            title = lines[0].lstrip("# ").strip()
            rows.append({"messages": [
                {"role": "system", "content": "You are SpineMed, a decision-support assistant for spine imaging."},
                {"role": "user", "content": f"Explain {title} ({doc.stem.replace('-', ' ')})."},
                {"role": "assistant", "content": "\n".join(lines[1:]).strip()}]})
            if len(rows) >= limit:
                return rows
    return rows


def run(device: str, args: argparse.Namespace, base: Path, data: Path, out: Path) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config_from_dict({
        "name": f"bench-{device}", "output_dir": str(out / device), "base": {"path": str(base)},
        "data": {"train_files": [str(data)], "max_length": args.max_length, "batching": args.batching},
        "lora": {"r": args.r, "alpha": 2 * args.r},
        "optim": {"max_steps": args.steps, "batch_size": args.batch, "grad_accumulation": args.grad_accum,
                  "warmup": 0, "logging_steps": 1, "learning_rate": 1e-4},
        "checkpoints": {"every_steps": 10_000, "resume": "never"},
        "eval": {"early_stopping_patience": 0},
        "export": {"gguf": False}, "device": device,
    }, "bench")
    t0 = time.perf_counter()
    result = run_training(cfg)
    wall = time.perf_counter() - t0
    rates = [h["tokens_per_second"] for h in result.history if "tokens_per_second" in h][args.warmup:]
    stage = result.stages[0]
    return {
        "device": device, "torch_threads": torch.get_num_threads(), "steps": stage.steps,
        "tokens": stage.tokens, "tokens_per_second_median": round(statistics.median(rates), 1) if rates else None,
        "tokens_per_second_mean_all_steps": stage.tokens_per_second,
        "seconds_training": stage.seconds, "seconds_total_incl_load": round(wall, 1),
        "peak_memory_mib": result.peak_memory_mib, "max_length": args.max_length, "batch": args.batch,
        "grad_accum": args.grad_accum, "batching": args.batching, "lora_r": args.r,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "all"))
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--batching", default="pack", choices=("pack", "bucket", "none"))
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--base", help="base GGUF (default: the embedded SmolLM2-135M-Instruct Q4_1)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()

    import torch

    base = Path(args.base) if args.base else find_default_model()
    if base is None:
        print("embedded base not found: run scripts/setup.sh", file=sys.stderr)
        return 2
    devices = {"auto": ["cuda" if torch.cuda.is_available() else "cpu"], "cpu": ["cpu"], "cuda": ["cuda"],
               "all": ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])}[args.device]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        data = Path(tmp) / "train.jsonl"
        rows = knowledge_samples()
        data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
        for dev in devices:
            results.append(run(dev, args, base, data, Path(tmp)))
    print(f"\nLoRA training on {base.name}: {len(rows)} knowledge-base samples, {args.batching} to {args.max_length} "
          f"tokens, batch {args.batch} x accum {args.grad_accum}, r={args.r}")
    print("| device | threads | steps | tokens/s (median, after warm-up) | tokens/s (all steps) | peak memory MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['device']}{' ' + r['gpu'] if r['gpu'] else ''} | {r['torch_threads']} | {r['steps']} | "
              f"{r['tokens_per_second_median']} | {r['tokens_per_second_mean_all_steps']} | {r['peak_memory_mib']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
