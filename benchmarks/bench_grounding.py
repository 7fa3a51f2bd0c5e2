"""SpineBench grounding axis: the rate of unsupported image findings shown, with and without the findings layer,
for one model in the same run (core/spinebench/grounding.py says how items are built and scored).

    .venv/bin/python benchmarks/bench_grounding.py [--model PATH.gguf] [--threads 1] [--limit N]
        [-o docs/spinebench/grounding_results]       # writes .json and .md

The model's answers are kept in a temporary library; nothing leaves the machine.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.consult import ConversationStore
from core.inference.backend import backend_for_model
from core.inference.default_model import find_default_model
from core.spinebench.grounding import grounding_items, markdown, run_grounding


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="GGUF model (default: the embedded model)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="first N items only")
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/spinebench/grounding_results"))
    args = ap.parse_args()
    model = args.model or find_default_model()
    if model is None:
        print("no model: pass --model or run scripts/setup.sh", file=sys.stderr)
        return 2
    items = grounding_items()[: args.limit] if args.limit else grounding_items()
    backend = backend_for_model(model, n_threads=args.threads)
    backend.load()
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        doc = run_grounding(backend, items, ConversationStore(Path(tmp) / "library.db"),
                            progress=lambda n, total, what: print(f"[{n + 1}/{total}] {what}", file=sys.stderr))
    doc["seconds"] = round(time.monotonic() - start)
    when = dt.date.today().isoformat()
    doc["date"] = when
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    args.out.with_suffix(".md").write_text(markdown(doc, when), encoding="utf-8")
    print(markdown(doc, when))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
