"""Benchmark: the memory estimate of core.inference.model_fit against what loading the model really takes.

Loads the GGUF with LlamaCppBackend (CPU) at each context length, fills the whole context once (prompt + generation),
and compares the growth of the process's resident set (VmRSS after - before, weights are mmapped and counted once
touched) with ``memory_fit(...).needed_bytes``. The estimate is meant to be an upper bound: ratio measured/estimated
<= 1.

    .venv/bin/python benchmarks/bench_model_fit.py [--model PATH] [--ctx 2048 4096]
"""
from __future__ import annotations

import argparse
import gc
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(model: Path, n_ctx: int) -> None:
    """One context length in this process (called in a fresh subprocess per length)."""
    from core.inference.backend import GenerationParams
    from core.inference.gguf_header import read_gguf
    from core.inference.llama_backend import LlamaCppBackend
    from core.inference.model_fit import memory_fit

    fit = memory_fit(read_gguf(model), n_ctx, vram_bytes=None)
    gc.collect()
    before = rss_mib()
    backend = LlamaCppBackend(model, n_ctx=n_ctx, n_threads=1)
    backend.load()
    words = max(16, int(n_ctx * 0.6))  # most of the context: the KV cache pages are touched
    prompt = [{"role": "user", "content": " ".join(["spine"] * words) + " Summarise."}]
    "".join(backend.chat_stream(prompt, GenerationParams(max_tokens=16, temperature=0.0)))
    after = rss_mib()
    used = after - before
    est = fit.needed_bytes / 2**20
    print(f"n_ctx {n_ctx:6d}: estimated {est:7.0f} MiB (weights {fit.weights_bytes / 2**20:.0f}, KV "
          f"{fit.kv_cache_bytes / 2**20:.0f}, margin 256), measured RSS growth {used:7.0f} MiB, "
          f"ratio measured/estimated {used / est:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--ctx", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from core.inference.default_model import find_default_model

    model = args.model or find_default_model()
    if model is None:
        print("no model: run scripts/setup.sh or pass --model", file=sys.stderr)
        return 2
    if args.one:
        measure(model, args.one)
        return 0
    print(f"model: {model.name}")
    for n in args.ctx:  # a fresh process per context, so one measurement does not inherit another's pages
        subprocess.run([sys.executable, __file__, "--model", str(model), "--one", str(n)], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
