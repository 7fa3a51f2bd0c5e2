"""SpineBench grounding axis: the rate of unsupported image findings shown, with and without the findings layer,
for one model in the same run (spinebench/grounding.py says how items are built and scored).

    .venv/bin/python benchmarks/bench_grounding.py [--model PATH.gguf] [--threads 1] [--limit N]
        [-o docs/spinebench/grounding_results]       # writes .json and .md
    (the same as: spinebench grounding --model PATH.gguf -o OUT)

The model's answers are kept in a temporary library; nothing leaves the machine.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.inference.default_model import find_default_model
from spinebench.grounding import markdown, run_to_files


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
    doc = run_to_files(model, args.out, args.limit, args.threads, log=lambda m: print(m, file=sys.stderr))
    print(markdown(doc, doc["date"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
