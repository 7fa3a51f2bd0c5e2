"""Benchmark: the inference layer vs raw llama_cpp.Llama, multi-turn time to first token, peak memory.

1. Decode speed: the same GGUF, the same chat template (the GGUF's, "chat_template.default" for the raw Llama), the
   same greedy sampling and prompt, streamed through ``LlamaCppBackend.chat_stream`` and through
   ``Llama.create_chat_completion(stream=True)`` in the same process, alternating, after one warm-up each. Decode
   tokens/s counts from the first streamed piece to the last, so prompt evaluation is excluded.
   Prints ``ratio (ours / raw): X.XX`` (goal >= 0.95).
2. TTFT of a real consultation (system prompt + study context, then a follow-up question): turn 1, turn 2 with the
   KV cache of turn 1 (prefix reuse), and turn 2 again with the cache cleared.
3. Peak resident memory of the process (VmHWM) after each phase (the consultation phase runs first, with one model).

    .venv/bin/python benchmarks/bench_inference.py [--model PATH] [--repeats 7] [--tokens 128] [--threads 1]
                                                   [--gpu-layers -1] [--json FIGURES.json]

``--gpu-layers -1`` offloads every layer (a CUDA build of llama-cpp-python: scripts/gpu_check.sh); ``--json`` writes
the figures for scripts to read.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llama_cpp

from core.consult import Consultation, ConversationStore, Measurement, StudyContext
from core.inference.backend import GenerationParams
from core.inference.default_model import find_default_model
from core.inference.llama_backend import LlamaCppBackend

MESSAGES = [
    {"role": "system", "content": "You are a spine imaging assistant. Answer in numbered points."},
    {"role": "user", "content": "List, one per line, the structures to review at each lumbar level from L1-L2 "
                                "to L5-S1, with what is normal for each."},
]


def rss_mib(field: str = "VmHWM") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _decode_rate(stamps: list[float]) -> float:
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0


def run_raw(llm: llama_cpp.Llama, tokens: int) -> tuple[float, int, str]:
    stamps, text = [], []
    for chunk in llm.create_chat_completion(MESSAGES, stream=True, max_tokens=tokens, temperature=0.0,
                                            repeat_penalty=1.1, top_p=0.95, top_k=40):
        piece = chunk["choices"][0]["delta"].get("content")
        if piece:
            stamps.append(time.perf_counter())
            text.append(piece)
    return _decode_rate(stamps), len(stamps), "".join(text)


def run_ours(backend: LlamaCppBackend, tokens: int) -> tuple[float, int, str]:
    stamps, text = [], []
    params = GenerationParams(max_tokens=tokens, temperature=0.0, repeat_penalty=1.1, top_p=0.95, top_k=40)
    for piece in backend.chat_stream(MESSAGES, params):
        stamps.append(time.perf_counter())
        text.append(piece)
    return _decode_rate(stamps), len(stamps), "".join(text)


def bench_decode(model: Path, repeats: int, tokens: int, threads: int, gpu_layers: int = 0) -> dict[str, float]:
    raw = llama_cpp.Llama(str(model), n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False,
                          chat_format="chat_template.default", n_gpu_layers=gpu_layers)
    ours = LlamaCppBackend(model, n_ctx=2048, n_threads=threads, n_gpu_layers=gpu_layers)
    info = ours.load()
    run_raw(raw, tokens)  # warm-up: page cache, prompt in each KV cache
    run_ours(ours, tokens)
    raw_rates, our_rates = [], []
    for _ in range(repeats):
        r, n_raw, text_raw = run_raw(raw, tokens)
        o, n_ours, text_ours = run_ours(ours, tokens)
        if text_raw != text_ours or n_raw != n_ours:
            print("warning: outputs differ between raw and ours", file=sys.stderr)
        raw_rates.append(r)
        our_rates.append(o)
    raw.close()
    ours.unload()
    raw_med, our_med = statistics.median(raw_rates), statistics.median(our_rates)
    print(f"decode, {n_ours} streamed pieces per run, {repeats} alternating runs, n_threads={threads}")
    print(f"  raw llama_cpp.Llama : {raw_med:7.1f} tokens/s  (runs: {', '.join(f'{x:.0f}' for x in raw_rates)})")
    print(f"  LlamaCppBackend     : {our_med:7.1f} tokens/s  (runs: {', '.join(f'{x:.0f}' for x in our_rates)})")
    print(f"  ratio (ours / raw): {our_med / raw_med:.3f}   (goal >= 0.95)")
    return {"raw": raw_med, "ours": our_med, "ratio": our_med / raw_med, "device": info.device,
            "gpu_layers_offloaded": info.gpu_layers_offloaded}


def bench_ttft(model: Path, repeats: int, threads: int, gpu_layers: int = 0) -> dict[str, float]:
    backend = LlamaCppBackend(model, n_ctx=4096, n_threads=threads, n_gpu_layers=gpu_layers)
    backend.load()
    ctx = StudyContext(modality="MR", study_description="Lumbar spine", series=['MR "Sag T2 TSE" (15 images)'],
                       levels_in_view=["L3-L4", "L4", "L4-L5", "L5", "L5-S1"],
                       measurements=[Measurement("disc height", "L4-L5", 6.1, "mm"),
                                     Measurement("canal AP diameter", "L4-L5", 9.5, "mm")],
                       prior_findings=["2021 MR: broad-based disc bulge at L4-L5"], patient_age="061Y",
                       patient_sex="F")
    first, second, cold, prompts = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = ConversationStore(Path(tmp) / "bench.db")
        params = GenerationParams(max_tokens=32, temperature=0.0)
        for n in range(repeats):
            backend.reset_cache()
            consult = Consultation(backend, store, ctx, params=params)
            consult.ask(f"Case {n}: is the disc height at L4-L5 reduced compared with L3-L4?", "L4-L5").consume()
            first.append(backend.last_stats.ttft_s)
            prompts.append(backend.last_stats.prompt_tokens)
            follow = consult.ask("What should I check next at this level?", "L4-L5")
            follow.consume()
            second.append(backend.last_stats.ttft_s)
            reused = backend.last_stats.reused_prompt_tokens
            total = backend.last_stats.prompt_tokens
            backend.reset_cache()
            "".join(backend.chat_stream(follow.prompt, params))
            cold.append(backend.last_stats.ttft_s)
        store.close()
    backend.unload()
    t1, t2, tc = statistics.median(first), statistics.median(second), statistics.median(cold)
    print(f"time to first token, consultation prompt ({statistics.median(prompts):.0f} tokens in turn 1), "
          f"median of {repeats}")
    print(f"  turn 1                       : {t1 * 1000:7.0f} ms")
    print(f"  turn 2, KV cache reused      : {t2 * 1000:7.0f} ms  ({reused} of {total} prompt tokens cached)")
    print(f"  turn 2, cache cleared        : {tc * 1000:7.0f} ms")
    print(f"  speed-up turn 2 vs turn 1: {t1 / t2:.1f}x, vs cold turn 2: {tc / t2:.1f}x")
    return {"ttft_turn1": t1, "ttft_turn2": t2, "ttft_turn2_cold": tc}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gpu-layers", type=int, default=0, help="layers to offload to the GPU (-1: all)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    model = args.model or find_default_model()
    if model is None:
        print("no model: run scripts/setup.sh or pass --model", file=sys.stderr)
        return 2
    print(f"model: {model.name}, llama-cpp-python {llama_cpp.__version__}, "
          f"GPU offload {'available' if llama_cpp.llama_supports_gpu_offload() else 'not built'}")
    print(f"peak RSS at start: {rss_mib():.0f} MiB")
    figures = bench_ttft(model, args.repeats, args.threads, args.gpu_layers)
    print(f"peak RSS after the consultation benchmark (one model, n_ctx 4096): {rss_mib():.0f} MiB")
    figures |= bench_decode(model, args.repeats, args.tokens, args.threads, args.gpu_layers)
    print(f"peak RSS after the decode benchmark (two model instances, n_ctx 2048): {rss_mib():.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps({**figures, "peak_rss_mib": rss_mib(), "model": str(model)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
