"""``spinemed-curate``: build, review and export the SpineMed instruction data.

    spinemed-curate [--db DB] ingest knowledge [--only id,id]
    spinemed-curate [--db DB] ingest case FOLDER [--case-id ID]       # DICOM is de-identified first
    spinemed-curate [--db DB] ingest verse|spider|rsna ROOT  /  ingest totalseg PATH [--image IMG]
    spinemed-curate [--db DB] generate [--templates] [--labels] [--llm --model GGUF | --endpoint URL --endpoint-model M]
                                       [--tasks mcq,open_qa] [--limit N] [--workers N] [--max-tokens N] [--seed N]
    spinemed-curate [--db DB] review --reviewer ID [--second]          # interactive queue
    spinemed-curate [--db DB] review --reviewer ID --item ID --accept | --reject --reason R | --edit-file F.json
    spinemed-curate [--db DB] review --agreement | --show ID
    spinemed-curate [--db DB] export OUT [--include-auto-gated] [--include-unreviewed] [--no-hf]
    spinemed-curate [--db DB] stats

The store defaults to <SpineMed home>/curation/curation.db; key images go to ``images/`` beside it and the
de-identification salt to ``deid_salt`` beside it (keep that file private: it links pseudonyms to originals).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections import Counter
from pathlib import Path

from core import paths
from core.tasks import Cancelled, CancelToken
from curation.store import CurationStore


def default_db() -> Path:
    return paths.data_dir() / "curation" / "curation.db"


def salt_for(db: Path) -> bytes:
    """The project's de-identification salt (created once, private to the store's folder)."""
    path = db.parent / "deid_salt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


class Bar:
    """A one-line text progress bar on stderr (a ``core.tasks`` progress callback)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.last = ""

    def __call__(self, fraction: float, message: str = "") -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(fraction * width)
        line = f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}% {message[:60]:<60}"
        if line != self.last:
            sys.stderr.write(line)
            sys.stderr.flush()
            self.last = line
        if fraction >= 1.0:
            sys.stderr.write("\n")


# --- ingest ---------------------------------------------------------------------------------------------------------
def cmd_ingest(args, store: CurationStore) -> int:
    from curation.sources.cases import import_case_folder, store_case

    db = Path(args.db)
    if args.kind == "knowledge":
        from curation.sources.knowledge import ingest_knowledge

        only = [s for s in (args.only or "").split(",") if s] or None
        docs, chunks = ingest_knowledge(store, args.path, only=only)
        print(f"knowledge base: {docs} documents, {chunks} chunks")
        return 0
    if not args.path:
        print(f"ingest {args.kind}: a path is required", file=sys.stderr)
        return 2
    cases = []
    messages: list[str] = []
    if args.kind == "case":
        case, messages = import_case_folder(args.path, case_id=args.case_id, workdir=db.parent, salt=salt_for(db),
                                            dataset=args.dataset)
        cases = [case]
        hashes = case.extra.pop("name_hashes", {})
        store.add_phi_token_hashes(hashes)
    elif args.kind == "verse":
        from curation.sources.verse import import_verse

        cases = import_verse(args.path)
    elif args.kind == "totalseg":
        from curation.sources.totalseg import import_totalseg

        cases = [import_totalseg(args.path, image=args.image, case_id=args.case_id)]
    elif args.kind == "spider":
        from curation.sources.spider import import_spider

        cases = import_spider(args.path)
    elif args.kind == "rsna":
        from curation.sources.rsna import import_rsna

        cases = import_rsna(args.path, limit=args.limit)
    for case in cases:
        sid = store_case(store, case)
        print(f"{sid}: {len(case.vertebrae)} vertebrae, {len(case.discs)} discs, {len(case.findings)} findings"
              + (f", partial {case.partial}" if case.partial else ""))
    for m in messages:
        print(f"  note: {m}")
    return 0


# --- generate -------------------------------------------------------------------------------------------------------
def make_generator(args):
    if args.endpoint:
        from curation.generate.llm import GeneratorPool, OpenAIJsonGenerator

        urls = [u.strip() for u in args.endpoint.split(",") if u.strip()]
        gens = [OpenAIJsonGenerator(u, args.endpoint_model or "default", schema_mode=args.schema_mode,
                                    rate_per_s=args.rate) for u in urls]
        return gens[0] if len(gens) == 1 else GeneratorPool(gens)
    from curation.generate.llm import LlamaJsonGenerator

    model = args.model
    if not model:
        from core.inference.default_model import find_default_model

        model = find_default_model()
        if model is None:
            raise SystemExit("no model: give --model PATH.gguf or --endpoint URL (the embedded model is not set up)")
    return LlamaJsonGenerator(model, n_threads=args.threads, n_ctx=args.n_ctx)


def cmd_generate(args, store: CurationStore) -> int:
    from curation.generate.pipeline import Pipeline
    from curation.quality import run_gates

    db = Path(args.db)
    everything = not (args.templates or args.labels or args.llm)
    cancel = CancelToken()
    generator = make_generator(args) if args.llm else None
    pipe = Pipeline(store, db.parent / "images", generator=generator, max_tokens=args.max_tokens,
                    workers=args.workers, llm_revise=not args.no_llm_revise, retry_failed=args.retry_failed,
                    progress=Bar(), cancel=cancel)
    run_id = store.start_run("generate", vars(args))
    try:
        if args.templates or everything:
            pipe.run_templates()
        if args.labels or everything:
            pipe.run_grounded()
        if args.llm:
            tasks = tuple(t for t in args.tasks.split(",") if t)
            pipe.run_llm(tasks, seed=args.seed, limit=args.limit)
    except (KeyboardInterrupt, Cancelled):
        cancel.cancel()
        print("\ninterrupted: finished items are stored; run the same command again to resume", file=sys.stderr)
        store.finish_run(run_id, dict(pipe.counts))
        return 130
    gates = run_gates(store, salt=salt_for(db)) if not args.no_gates else {}
    store.finish_run(run_id, {**pipe.counts, "gates": gates})
    print("generated: " + ", ".join(f"{k} {v}" for k, v in sorted(pipe.counts.items())))
    if gates:
        print("gates: " + json.dumps(gates["counts"]) + f"; MCQ answer positions {gates['mcq_positions']}")
    return 0


# --- review ---------------------------------------------------------------------------------------------------------
def _interactive(store: CurationStore, reviewer: str, limit: int | None, task: str | None, second: bool) -> int:
    from curation.review import decide, queue, render_item

    items = queue(store, reviewer, task=task, limit=limit, second=second)
    if not items:
        print("nothing to review")
        return 0
    done = Counter()
    for n, item in enumerate(items, start=1):
        print("\n" + "=" * 100 + f"\n[{n}/{len(items)}]")
        print(render_item(item, store.source(item["source_id"]), store.chunk(item["chunk_id"])))
        while True:
            try:
                choice = input("[a]ccept  [e]dit  [r]eject  [s]kip  [q]uit > ").strip().lower()
            except EOFError:
                choice = "q"
            if choice in ("a", "accept"):
                decide(store, item["id"], reviewer, "accept")
                done["accept"] += 1
            elif choice in ("r", "reject"):
                reason = ""
                while not reason:
                    try:
                        reason = input("reason > ").strip()
                    except EOFError:
                        reason = "no reason given (input closed)"
                decide(store, item["id"], reviewer, "reject", reason=reason)
                done["reject"] += 1
            elif choice in ("e", "edit"):
                print("current content:\n" + json.dumps(item["content"], ensure_ascii=False))
                try:
                    edited = json.loads(input("edited JSON (one line) > "))
                    reason = input("what did you change > ").strip()
                    decide(store, item["id"], reviewer, "edit", reason=reason, edited=edited)
                except (ValueError, EOFError) as exc:
                    print(f"not saved: {exc}")
                    continue
                done["edit"] += 1
            elif choice in ("s", "skip"):
                done["skip"] += 1
            elif choice in ("q", "quit"):
                print("stopped: " + ", ".join(f"{k} {v}" for k, v in done.items()))
                return 0
            else:
                continue
            break
    print("reviewed: " + ", ".join(f"{k} {v}" for k, v in done.items()))
    return 0


def cmd_review(args, store: CurationStore) -> int:
    from curation.review import agreement, decide, render_item

    if args.agreement:
        results = agreement(store)
        if not results:
            print("no item has been reviewed by two reviewers yet")
        for a in results:
            print(a.text())
        return 0
    if args.show:
        item = store.item(args.show)
        if item is None:
            print(f"no item {args.show}", file=sys.stderr)
            return 1
        print(render_item(item, store.source(item["source_id"]), store.chunk(item["chunk_id"])))
        return 0
    if not args.reviewer:
        print("review: --reviewer ID is required (who decides is part of the record)", file=sys.stderr)
        return 2
    if args.item:
        try:
            if args.accept:
                decide(store, args.item, args.reviewer, "accept", reason=args.reason or "")
            elif args.reject:
                decide(store, args.item, args.reviewer, "reject", reason=args.reason or "")
            elif args.edit_file:
                edited = json.loads(Path(args.edit_file).read_text(encoding="utf-8"))
                decide(store, args.item, args.reviewer, "edit", reason=args.reason or "edited", edited=edited)
            else:
                print("review --item: give --accept, --reject --reason R or --edit-file F", file=sys.stderr)
                return 2
        except (ValueError, KeyError) as exc:
            print(f"review: {exc}", file=sys.stderr)
            return 1
        print(f"{args.item}: {store.item(args.item)['review_status']}")
        return 0
    return _interactive(store, args.reviewer, args.limit, args.task, args.second)


# --- export / stats -------------------------------------------------------------------------------------------------
def cmd_export(args, store: CurationStore) -> int:
    from curation.export import export
    from curation.quality import run_gates
    from spinebench.holdout import BENCHMARK_CASES

    db = Path(args.db)
    if not args.no_gates:
        run_gates(store, salt=salt_for(db))
    include = tuple(s for s, on in (("auto_gated", args.include_auto_gated), ("pending", args.include_unreviewed))
                    if on)
    try:
        held = BENCHMARK_CASES if args.hold_out_benchmark else frozenset()
        result = export(store, args.out, image_root=db.parent / "images", include=include, hf=not args.no_hf,
                        title=args.title, held_out_cases=held | frozenset(args.hold_out_case))
    except (ValueError, RuntimeError) as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 1
    print(f"exported {len(result.records)} items to {result.out}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
          + f"; leakage check {'passed' if result.leakage_ok else 'FAILED'}")
    return 0


def cmd_stats(args, store: CurationStore) -> int:
    items = store.items()
    print("store: " + ", ".join(f"{k} {v}" for k, v in store.counts().items()))
    for key in ("review_status", "task", "generator_kind", "modality"):
        c = Counter(i[key] for i in items)
        print(f"{key}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    rejected = Counter(k for i in items if i["review_status"] == "auto_rejected" for k in (i["gate_report"] or {}))
    if rejected:
        print("auto_rejected by: " + ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())))
    drafts = list(store.db["drafts"].rows_where("ok = 0"))
    if drafts:
        print(f"failed LLM drafts: {len(drafts)} (" + ", ".join(
            f"{k} {v}" for k, v in Counter(d['error'][:40] for d in drafts).most_common(3)) + ")")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spinemed-curate", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default=None, help="curation store (default: <SpineMed home>/curation/curation.db)")
    sub = p.add_subparsers(dest="command", required=True)

    ing = sub.add_parser("ingest", help="add sources: knowledge base, case folders, public datasets")
    ing.add_argument("kind", choices=["knowledge", "case", "verse", "totalseg", "spider", "rsna"])
    ing.add_argument("path", nargs="?", default=None)
    ing.add_argument("--only", help="knowledge: comma-separated document ids")
    ing.add_argument("--case-id")
    ing.add_argument("--dataset", default="local")
    ing.add_argument("--image", help="totalseg: the segmented image")
    ing.add_argument("--limit", type=int)

    gen = sub.add_parser("generate", help="draft + revise items (templates, labels, LLM), then the quality gates")
    gen.add_argument("--templates", action="store_true", help="LLM-free items from the knowledge base")
    gen.add_argument("--labels", action="store_true", help="label-grounded items from cases")
    gen.add_argument("--llm", action="store_true", help="LLM-drafted items from knowledge passages")
    gen.add_argument("--model", help="GGUF model (default: the embedded model)")
    gen.add_argument("--endpoint", help="OpenAI-compatible server(s), e.g. http://127.0.0.1:8000/v1; several "
                                        "comma-separated URLs are used round-robin (one server per GPU)")
    gen.add_argument("--endpoint-model", help="model name to send to the endpoint")
    gen.add_argument("--schema-mode", default="llama-cpp", choices=["llama-cpp", "openai", "none"])
    gen.add_argument("--rate", type=float, help="max requests per second to the endpoint")
    gen.add_argument("--tasks", default="mcq,open_qa", help="LLM tasks: mcq,open_qa,consultation,report")
    gen.add_argument("--limit", type=int, help="at most N LLM jobs")
    gen.add_argument("--workers", type=int, default=1)
    gen.add_argument("--threads", type=int, default=1, help="CPU threads of the local model")
    gen.add_argument("--n-ctx", type=int, default=2048)
    gen.add_argument("--max-tokens", type=int, default=320)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--no-llm-revise", action="store_true", help="revise LLM drafts with rules only")
    gen.add_argument("--retry-failed", action="store_true", help="retry LLM jobs whose draft did not parse")
    gen.add_argument("--no-gates", action="store_true")

    rev = sub.add_parser("review", help="clinician review: queue, decisions, agreement")
    rev.add_argument("--reviewer")
    rev.add_argument("--item")
    group = rev.add_mutually_exclusive_group()
    group.add_argument("--accept", action="store_true")
    group.add_argument("--reject", action="store_true")
    group.add_argument("--edit-file")
    rev.add_argument("--reason")
    rev.add_argument("--agreement", action="store_true", help="Cohen's kappa between reviewers")
    rev.add_argument("--show", help="print one item with its source")
    rev.add_argument("--limit", type=int)
    rev.add_argument("--task")
    rev.add_argument("--second", action="store_true",
                     help="queue the items other reviewers decided and you have not (for agreement)")

    exp = sub.add_parser("export", help="JSONL (chat messages) + HF dataset + datasheet")
    exp.add_argument("out")
    exp.add_argument("--include-auto-gated", action="store_true",
                     help="also export items that only passed the automatic gates (labelled auto_gated)")
    exp.add_argument("--include-unreviewed", action="store_true", help="also export pending items")
    exp.add_argument("--no-hf", action="store_true")
    exp.add_argument("--no-gates", action="store_true")
    exp.add_argument("--title", default="SpineMed curated dataset")
    exp.add_argument("--hold-out-case", action="append", default=[], metavar="CASE_ID",
                     help="put every item of this case in the bench split (repeatable)")
    exp.add_argument("--no-hold-out-benchmark", dest="hold_out_benchmark", action="store_false",
                     help="do not pin SpineBench's cases (spinebench.holdout) to the bench split")

    sub.add_parser("stats", help="counts in the store")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.db = args.db or str(default_db())
    commands = {"ingest": cmd_ingest, "generate": cmd_generate, "review": cmd_review, "export": cmd_export,
                "stats": cmd_stats}
    with CurationStore(args.db) as store:
        return commands[args.command](args, store)


if __name__ == "__main__":
    sys.exit(main())
