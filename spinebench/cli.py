"""``spinebench``: run the benchmark on a model, compare two runs, rebuild the benchmark, import external files.

    spinebench run --model models/x.gguf [--adapter lora.gguf] [--mmproj proj.gguf] -o results/x
    spinebench run --backend hf --model path/to/hf-folder --adapter path/to/peft -o results/ft
    spinebench run --backend openai --url http://127.0.0.1:8000/v1 --model NAME [--vision] -o results/api
    spinebench run ... --judge models/judge.gguf | --judge NAME --judge-url http://127.0.0.1:8001/v1
    spinebench run ... --limit 40                  # stratified subset; rerun the same command to resume
    spinebench compare results/a/results.json results/b/results.json [-o cmp.md]
    spinebench build [--out resources/spinebench/v2]
    spinebench import public_spinebench.parquet -o benchmarks/external [--image-root DIR]
    spinebench grounding [--model x.gguf] -o results/grounding     # unsupported findings: raw vs findings layer
    spinebench run --bench benchmarks/external --model ...

Exit status: 0 done, 2 usage or input error.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import paths
from core.inference.backend import BackendError
from spinebench.schema import AXES, BenchmarkError

DEFAULT_BENCH = paths.RESOURCES / "spinebench" / "v2"


def _add_model(p: argparse.ArgumentParser, prefix: str = "") -> None:
    dash = f"--{prefix}-" if prefix else "--"
    who = "judge" if prefix else "candidate"
    from spinebench.clients import KINDS

    p.add_argument(f"{dash}backend", choices=KINDS, default="auto",
                   help=f"{who} runtime (auto: .gguf -> gguf, folder -> hf, --{prefix + '-' if prefix else ''}url -> "
                        "openai)")
    p.add_argument(f"{dash}adapter", help=f"{who} LoRA: GGUF adapter (gguf) or PEFT folder (hf)")
    p.add_argument(f"{dash}mmproj", help=f"{who} vision projector GGUF (gguf only): image items get their images")
    p.add_argument(f"{dash}url", help=f"{who} OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (requests go "
                                      "to this URL only)")
    p.add_argument(f"{dash}api-key-env", help="name of the environment variable holding the endpoint's API key")
    p.add_argument(f"{dash}vision", action="store_true", help="the endpoint accepts images")


def _spec(args: argparse.Namespace, prefix: str = ""):
    from spinebench.clients import ModelSpec

    g = (lambda k: getattr(args, f"{prefix}_{k}" if prefix else k))
    model = args.judge if prefix else args.model
    if model is None:
        return None
    return ModelSpec(g("backend"), model, adapter=g("adapter"), mmproj=g("mmproj"), url=g("url"),
                     api_key_env=g("api_key_env"), vision=g("vision"), n_ctx=args.n_ctx,
                     n_threads=args.threads).resolved()


def cmd_run(args: argparse.Namespace) -> int:
    from spinebench.runner import RunConfig, run

    cfg = RunConfig(bench=Path(args.bench), out=Path(args.out), candidate=_spec(args), judge=_spec(args, "judge"),
                    limit=args.limit, restart=args.restart, axes=tuple(args.axis or ()),
                    judge_retry=not args.no_judge_retry)
    cfg.max_tokens.update({k: v for k, v in (("mcq", args.max_tokens_mcq), ("report", args.max_tokens_report))
                           if v})
    results = run(cfg)
    s = results["summary"]["total"]
    if s["value"] is not None:
        print(f"total {s['value'] * 100:.1f} [{s['lo'] * 100:.1f}, {s['hi'] * 100:.1f}] over {s['n']} items; "
              f"table: {Path(args.out) / 'results.md'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from spinebench.results import compare, compare_markdown

    a = json.loads(Path(args.a).read_text(encoding="utf-8"))
    b = json.loads(Path(args.b).read_text(encoding="utf-8"))
    cmp = compare(a, b)
    text = compare_markdown(cmp, args.name_a or Path(args.a).parent.name, args.name_b or Path(args.b).parent.name)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        Path(args.out).with_suffix(".json").write_text(json.dumps(cmp, indent=1), encoding="utf-8")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from spinebench.build import build

    build(args.out, args.samples, args.curated)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from spinebench.importers import import_external

    manifest = import_external(Path(args.file), Path(args.out), Path(args.image_root) if args.image_root else None,
                               args.name)
    print(f"{manifest['items']} items written to {args.out} (skipped: {manifest['skipped'] or 'none'})")
    return 0


def cmd_grounding(args: argparse.Namespace) -> int:
    from core.inference.default_model import find_default_model
    from spinebench.grounding import markdown, run_to_files

    model = args.model or find_default_model()
    if model is None:
        raise ValueError("no model: pass --model or run scripts/setup.sh (embedded model)")
    doc = run_to_files(model, args.out, args.limit, args.threads, log=lambda m: print(m, file=sys.stderr))
    print(markdown(doc, doc["date"]))
    return 0


def parser() -> argparse.ArgumentParser:
    from spinebench.build import DEFAULT_CURATED, DEFAULT_OUT, DEFAULT_SAMPLES

    p = argparse.ArgumentParser(prog="spinebench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="score a model on a benchmark folder (resumable)")
    r.add_argument("--model", required=True, help="GGUF file, HF folder, or the model name on an endpoint")
    _add_model(r)
    r.add_argument("--judge", help="judge model (GGUF / HF folder / endpoint model name); default: no judge "
                                   "(reports scored by the deterministic checks only)")
    _add_model(r, "judge")
    r.add_argument("--no-judge-retry", action="store_true",
                   help="do not ask unscored report dimensions one at a time after the joint judge reply")
    r.add_argument("--bench", default=str(DEFAULT_BENCH), help="benchmark folder (default: %(default)s)")
    r.add_argument("-o", "--out", required=True, help="results folder (reuse it to resume)")
    r.add_argument("--limit", type=int, help="stratified subset of N items")
    r.add_argument("--axis", action="append", choices=AXES, help="only this axis (repeatable)")
    r.add_argument("--threads", type=int, default=1, help="CPU threads for local models (default 1)")
    r.add_argument("--n-ctx", type=int, default=4096)
    r.add_argument("--max-tokens-mcq", type=int)
    r.add_argument("--max-tokens-report", type=int)
    r.add_argument("--restart", action="store_true", help="discard the answers already in the results folder")
    r.set_defaults(fn=cmd_run)
    c = sub.add_parser("compare", help="paired comparison of two results.json (B vs A)")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--name-a")
    c.add_argument("--name-b")
    c.add_argument("-o", "--out", help="also write the table (Markdown) and the numbers (.json)")
    c.set_defaults(fn=cmd_compare)
    b = sub.add_parser("build", help="rebuild the benchmark content deterministically")
    b.add_argument("--out", type=Path, default=DEFAULT_OUT)
    b.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES)
    b.add_argument("--curated", type=Path, default=DEFAULT_CURATED)
    b.set_defaults(fn=cmd_build)
    g = sub.add_parser("grounding", help="grounding axis: unsupported findings shown, raw model vs findings layer")
    g.add_argument("--model", type=Path, help="GGUF file or HF folder (default: the embedded model)")
    g.add_argument("-o", "--out", type=Path, default=Path("grounding_results"),
                   help="results path without extension (.json and .md are written)")
    g.add_argument("--limit", type=int, help="first N items only")
    g.add_argument("--threads", type=int, default=1)
    g.set_defaults(fn=cmd_grounding)
    i = sub.add_parser("import", help="convert an external MCQ benchmark file (parquet / json / jsonl)")
    i.add_argument("file")
    i.add_argument("-o", "--out", required=True)
    i.add_argument("--image-root", help="folder that relative image paths refer to (default: the file's folder)")
    i.add_argument("--name")
    i.set_defaults(fn=cmd_import)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except (BenchmarkError, BackendError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"spinebench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
