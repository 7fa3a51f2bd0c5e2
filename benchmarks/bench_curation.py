"""Curation throughput: items/minute for draft + revise with the embedded model, and scaling with concurrency against
an OpenAI-compatible endpoint (llama-cpp-python's server, started here on 127.0.0.1; requests go to loopback only).

    .venv/bin/python benchmarks/bench_curation.py [--items 6] [--server-items 8] [--concurrency 1,2,4]
                                                  [--replicas 2] [--threads 1] [--json out.json]

1. In-process: LlamaJsonGenerator (llama-cpp-python, schema-constrained JSON), ``--items`` jobs (alternating MCQ and
   open question) over knowledge passages, each a draft and a model revision.
2. Endpoint: one ``python -m llama_cpp.server`` process, the same jobs through OpenAIJsonGenerator with 1, 2, 4
   concurrent workers; then ``--replicas`` server processes used round-robin (how curation scales over several GPUs),
   with as many workers. llama-cpp-python's server handles one request at a time per process, so concurrency against
   one server only hides HTTP latency; replicas add compute (on a CPU they compete for the same cores).

Items/minute counts finished jobs (drafted + revised, whatever the gates later decide) per wall-clock minute.
Needs the server extra: pip install "llama-cpp-python[server]==<installed version>".
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.inference.default_model import find_default_model
from curation.generate.llm import GeneratorPool, LlamaJsonGenerator, OpenAIJsonGenerator
from curation.generate.pipeline import Pipeline
from curation.sources.knowledge import ingest_knowledge
from curation.store import CurationStore

DOCS = ["disc-degeneration-pfirrmann", "spondylolisthesis-grading", "modic-endplate-changes",
        "lumbar-central-canal-stenosis-grading", "odontoid-fractures", "cauda-equina-syndrome"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, threads: int, n_ctx: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
           "--n_threads", str(threads), "--n_threads_batch", str(threads), "--n_ctx", str(n_ctx), "--verbose", "False"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited: {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                if r.status == 200:
                    return proc, url + "/v1"
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start within 120 s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_jobs(generator, n_items: int, workers: int, max_tokens: int, seed: int) -> dict:
    """A fresh store with the benchmark documents; n_items LLM jobs (draft + model revision); wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        store = CurationStore(Path(tmp) / "bench.db")
        ingest_knowledge(store, only=DOCS)
        pipe = Pipeline(store, Path(tmp) / "images", generator=generator, max_tokens=max_tokens, workers=workers)
        jobs = pipe.llm_jobs(("mcq", "open_qa"), seed)
        # alternate the tasks and spread over documents: the first n of a stable interleaving
        mcq = [j for j in jobs if j[2] == "mcq"]
        opn = [j for j in jobs if j[2] == "open_qa"]
        chosen = [j for pair in zip(mcq, opn) for j in pair][:n_items]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:  # exactly the chosen jobs, ``workers`` at a time
            list(pool.map(lambda j: pipe._llm_one(j[0], j[1], j[2], seed), chosen))
        wall = time.perf_counter() - start
        drafts = list(store.db["drafts"].rows)
        revisions = [r for r in store.db["revisions"].rows if r["generator"] != "rules"]
        items = store.items()
        gated = sum(1 for i in items if i["review_status"] == "pending")
        store.close()
    done = len(chosen)
    return {"jobs": done, "workers": workers, "wall_s": round(wall, 1), "items_per_min": round(60 * done / wall, 2),
            "s_per_item": round(wall / done, 2), "drafts": len(drafts), "model_revisions": len(revisions),
            "parsed": sum(1 for d in drafts if d["ok"]), "passed_revise_checks": gated}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--items", type=int, default=6, help="jobs for the in-process measurement")
    p.add_argument("--server-items", type=int, default=8, help="jobs per endpoint configuration")
    p.add_argument("--concurrency", default="1,2,4")
    p.add_argument("--replicas", type=int, default=2, help="server processes for the round-robin run (0: skip)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per model instance")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--skip-server", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    model = args.model or find_default_model()
    if model is None:
        print("no model: run scripts/setup.sh or pass --model", file=sys.stderr)
        return 1
    results: dict = {"model": model.name, "threads_per_instance": args.threads, "max_tokens": args.max_tokens,
                     "cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()[0]}
    print(f"model {model.name}, {args.threads} thread(s) per instance, max_tokens {args.max_tokens}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")

    gen = LlamaJsonGenerator(model, n_threads=args.threads, n_ctx=args.n_ctx)
    gen.generate([{"role": "user", "content": "warm up"}], {"type": "object"}, max_tokens=4)
    r = run_jobs(gen, args.items, 1, args.max_tokens, seed=0)
    gen.close()
    results["in_process"] = r
    print(f"in-process draft+revise: {r['items_per_min']} items/min ({r['s_per_item']} s/item, {r['jobs']} jobs; "
          f"{r['parsed']}/{r['drafts']} drafts parsed, {r['passed_revise_checks']} passed the revise checks)")

    if not args.skip_server:
        proc, url = start_server(model, args.threads, args.n_ctx)
        procs = [proc]
        try:
            endpoint = OpenAIJsonGenerator(url, "local")
            endpoint.generate([{"role": "user", "content": "warm up"}], {"type": "object"}, max_tokens=4)
            results["endpoint"] = []
            for c in [int(x) for x in args.concurrency.split(",") if x]:
                r = run_jobs(endpoint, args.server_items, c, args.max_tokens, seed=1)
                results["endpoint"].append(r)
                print(f"1 server, {c} concurrent: {r['items_per_min']} items/min ({r['s_per_item']} s/item)")
            if args.replicas > 1:
                urls = [url]
                for _ in range(args.replicas - 1):
                    extra, extra_url = start_server(model, args.threads, args.n_ctx)
                    procs.append(extra)
                    urls.append(extra_url)
                pool = GeneratorPool([OpenAIJsonGenerator(u, "local") for u in urls])
                for g in pool.generators:
                    g.generate([{"role": "user", "content": "warm up"}], {"type": "object"}, max_tokens=4)
                r = run_jobs(pool, args.server_items, args.replicas, args.max_tokens, seed=1)
                results["replicas"] = {"servers": args.replicas, **r}
                print(f"{args.replicas} servers round-robin, {args.replicas} concurrent: {r['items_per_min']} "
                      f"items/min ({r['s_per_item']} s/item)")
        finally:
            for pr in procs:
                stop(pr)
    results["load_avg_end"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
