"""Run a benchmark against a model: resumable, with progress, scoring each item as soon as it is answered.

    cfg = RunConfig(bench=..., out=Path("results/base"), candidate=ModelSpec("gguf", "models/x.gguf"),
                    judge=ModelSpec("gguf", "models/x.gguf"))
    results = run(cfg)          # writes out/responses.jsonl, run.json, results.json, results.md, results.png

- Resume: every answered item is appended to ``responses.jsonl`` (one JSON line, flushed); a rerun with the same
  configuration skips the items already there (items that failed with an error are retried). A different
  configuration (model, adapter, judge, benchmark, generation settings) in the same folder is refused unless
  ``restart`` is set, so one folder never mixes two runs.
- Images: when the candidate takes images (llama.cpp with an mmproj, or an endpoint declared ``vision``) the item's
  PNGs go with the first user turn; otherwise image items are answered from their text alone and flagged
  ``image_withheld`` (the results say how many).
- ``limit``: a stratified subset (same share of every axis x format x modality stratum, at least one item each,
  chosen by a seeded hash of the item id), so a short run covers every kind of item; a limit below the number of
  strata keeps the smallest strata (the largest give way first).
- Generation is greedy (temperature 0, seed 0) so reruns reproduce answers on the same runtime.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.inference.backend import BackendError, GenerationParams
from spinebench import judge as judge_mod
from spinebench import results as results_mod
from spinebench.clients import ModelSpec, make_backend
from spinebench.dialogue import score_dialogue
from spinebench.extract import extract_choice
from spinebench.metrics import dimension_0_100, report_judge_score
from spinebench.reports import check_report
from spinebench.schema import Benchmark, Item, load_benchmark, mcq_text


class RunError(RuntimeError):
    """A run that cannot start or continue; the message says why and what to do."""


@dataclass
class RunConfig:
    bench: Path
    out: Path
    candidate: ModelSpec
    judge: ModelSpec | None = None
    limit: int | None = None
    seed: int = 0
    max_tokens: dict[str, int] = field(default_factory=lambda: {"mcq": 128, "open": 256, "report": 512,
                                                                  "dialogue": 192, "judge": 256})
    restart: bool = False
    axes: tuple[str, ...] = ()  # only these axes (empty: all)
    judge_retry: bool = True  # ask one dimension at a time when the joint judge reply leaves some unscored

    def fingerprint(self, bench: Benchmark) -> dict[str, Any]:
        return {"bench": str(Path(self.bench).resolve()), "bench_version": bench.version,
                "bench_sha": bench.fingerprint(), "candidate": self.candidate.resolved().describe(),
                "judge": self.judge.resolved().describe() if self.judge else None, "seed": self.seed,
                "max_tokens": self.max_tokens, "axes": list(self.axes), "judge_retry": self.judge_retry}


def select_items(items: list[Item], limit: int | None, seed: int = 0) -> list[Item]:
    """A stratified, deterministic subset of ``limit`` items (all items when ``limit`` is None or larger)."""
    if limit is None or limit >= len(items):
        return list(items)
    strata: dict[tuple[str, str, str], list[Item]] = defaultdict(list)
    for it in items:
        strata[(it.axis, it.format, it.modality)].append(it)
    for group in strata.values():
        group.sort(key=lambda it: hashlib.sha256(f"{seed}:{it.id}".encode()).hexdigest())
    total = len(items)
    quota = {k: max(1, limit * len(v) // total) for k, v in strata.items()}
    while sum(quota.values()) > limit:  # more strata than the limit allows: drop the largest quotas first
        k = max(quota, key=lambda k: (quota[k], k))
        quota[k] -= 1
        if quota[k] == 0:
            del quota[k]
    rest = sorted(strata, key=lambda k: (-(limit * len(strata[k]) / total - quota.get(k, 0)), k))
    for k in rest:
        if sum(quota.values()) >= limit:
            break
        if quota.get(k, 0) < len(strata[k]):
            quota[k] = quota.get(k, 0) + 1
    chosen = {it.id for k, n in quota.items() for it in strata[k][:n]}
    return [it for it in items if it.id in chosen]


def _generate(backend: Any, messages: list[dict], max_tokens: int, seed: int) -> str:
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0, seed=seed)
    return "".join(backend.chat_stream(messages, params)).strip()


def _first_user(item: Item, text: str, images: list[bytes] | None) -> dict:
    msg: dict[str, Any] = {"role": "user", "content": text}
    if images:
        msg["images"] = images
    return msg


def evaluate_item(item: Item, bench: Benchmark, backend: Any, judge: Any | None, takes_images: bool,
                  cfg: RunConfig) -> dict[str, Any]:
    """Ask one item and score it; returns the record written to responses.jsonl."""
    images = bench.image_bytes(item) if (item.images and takes_images) else None
    rec: dict[str, Any] = {"id": item.id, "axis": item.axis, "format": item.format, "modality": item.modality,
                           "subtype": item.subtype, "case_id": item.case_id, "review_status": item.review_status,
                           "image_withheld": bool(item.images) and not takes_images}
    system = [{"role": "system", "content": item.system}] if item.system else []
    mt = cfg.max_tokens
    start = time.perf_counter()
    if item.format == "mcq":
        reply = _generate(backend, system + [_first_user(item, mcq_text(item), images)], mt["mcq"], cfg.seed)
        ex = extract_choice(reply, item.options)
        rec.update(responses=[reply], answer=item.answer, extracted=ex.letter, extraction=ex.status,
                   extraction_rule=ex.rule, correct=ex.letter == item.answer, score=float(ex.letter == item.answer),
                   score_source="mcq")
    elif item.format == "dialogue":
        history = list(system)
        answers = []
        for n, turn in enumerate(item.turns):
            history.append(_first_user(item, turn, images if n == 0 else None))
            answer = _generate(backend, history, mt["dialogue"], cfg.seed)
            answers.append(answer)
            history.append({"role": "assistant", "content": answer})
        result = score_dialogue(answers, item.checks["turns"])
        rec.update(responses=answers, dialogue=result, score=float(result["passed"]), score_source="dialogue")
    elif item.format in ("report", "open"):
        reply = _generate(backend, system + [_first_user(item, item.turns[0], images)], mt[item.format], cfg.seed)
        rec["responses"] = [reply]
        if item.format == "report":
            checks = check_report(reply, item.checks)
            rec.update(checks=checks, score=checks["score"], score_source="checks")
        else:
            rec.update(score=None, score_source="unscored (no judge)")
        if judge is not None:
            if item.format == "report":
                raw = _generate(judge, judge_mod.report_prompt(item.turns[0], reply), mt["judge"], cfg.seed)
                scores = judge_mod.parse_scores(raw)
                for dim in [d for d, v in scores.items() if v is None and cfg.judge_retry]:
                    one = _generate(judge, judge_mod.dimension_prompt(item.turns[0], reply, dim), 8, cfg.seed)
                    scores[dim] = judge_mod.parse_digit(one)
                    raw += f"\n[{dim}] {one}"
                overall = report_judge_score(scores)
            else:
                raw = _generate(judge, judge_mod.open_prompt(item.turns[0], item.reference or "", reply),
                                mt["judge"], cfg.seed)
                scores = judge_mod.parse_scores(raw, ("score",))
                overall = dimension_0_100(scores["score"]) if scores["score"] else None
            rec["judge"] = {"scores": scores, "overall_0_100": overall, "raw": raw,
                            "parsed": sum(v is not None for v in scores.values()), "expected": len(scores)}
            if overall is not None:
                rec.update(score=overall / 100.0, score_source="judge")
    else:
        raise RunError(f"item {item.id}: unknown format {item.format!r}")
    rec["elapsed_s"] = round(time.perf_counter() - start, 3)
    return rec


def _read_done(path: Path) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut by an interrupted write: that item is asked again
            if not rec.get("error"):
                done[rec["id"]] = rec
    return done


def _status(rec: dict) -> str:
    if rec.get("error"):
        return "ERROR"
    if rec["format"] == "mcq":
        return f"{'right' if rec['correct'] else 'wrong'} ({rec['extraction']}: {rec['extracted'] or '-'})"
    if rec.get("score") is None:
        return "unscored"
    return f"score {rec['score']:.2f} [{rec['score_source']}]"


def run(cfg: RunConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    bench = load_benchmark(cfg.bench)
    items = [i for i in bench.items if not cfg.axes or i.axis in cfg.axes]
    items = select_items(items, cfg.limit, cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = cfg.fingerprint(bench)
    run_file, responses = out / "run.json", out / "responses.jsonl"
    if run_file.is_file() and not cfg.restart:
        previous = json.loads(run_file.read_text(encoding="utf-8")).get("config")
        if previous != fingerprint:
            raise RunError(f"{out} holds results of a different run configuration; use another output folder or "
                           "--restart to discard them")
    if cfg.restart and responses.exists():
        responses.unlink()
    done = _read_done(responses)
    todo = [i for i in items if i.id not in done]
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    run_file.write_text(json.dumps({"config": fingerprint, "started": started}, indent=1), encoding="utf-8")
    log(f"spinebench {bench.version}: {len(items)} items selected, {len(items) - len(todo)} already answered, "
        f"{len(todo)} to run -> {out}")
    info = judge_info = None
    if todo:
        backend = make_backend(cfg.candidate)
        info = backend.load()
        takes_images = bool(info.multimodal)
        judge = None
        needs_judge = any(i.format in ("report", "open") for i in todo)
        if cfg.judge and needs_judge:
            same = cfg.judge.resolved() == cfg.candidate.resolved()
            judge = backend if same else make_backend(cfg.judge)
            judge_info = judge.load()
        if not takes_images and any(i.images for i in todo):
            log("note: the candidate takes no images: image items are answered from their text only (flagged)")
        t0 = time.perf_counter()
        with responses.open("a", encoding="utf-8") as fh:
            for n, item in enumerate(todo, 1):
                try:
                    rec = evaluate_item(item, bench, backend, judge, takes_images, cfg)
                except BackendError as exc:
                    rec = {"id": item.id, "axis": item.axis, "format": item.format, "modality": item.modality,
                           "subtype": item.subtype, "error": str(exc), "score": 0.0, "score_source": "error"}
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                fh.flush()
                done[item.id] = rec
                eta = (time.perf_counter() - t0) / n * (len(todo) - n)
                log(f"[{len(items) - len(todo) + n}/{len(items)}] {item.id}: {_status(rec)} "
                    f"({rec.get('elapsed_s', 0):.1f} s, ~{eta / 60:.1f} min left)")
        backend.unload()
        if judge is not None and judge is not backend:
            judge.unload()
    records = [done[i.id] for i in items if i.id in done]
    meta = {"bench": bench.version, "bench_folder": str(cfg.bench), "bench_sha": bench.fingerprint(),
            "n_bench_items": len(bench.items), "n_selected": len(items), "limit": cfg.limit,
            "candidate": asdict(cfg.candidate.resolved()), "judge": asdict(cfg.judge.resolved()) if cfg.judge else None,
            "candidate_info": _info(info), "judge_info": _info(judge_info), "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "max_tokens": cfg.max_tokens, "seed": cfg.seed}
    results = results_mod.summarise(records, meta)
    results_mod.write_all(results, out)
    log(f"results: {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")
    return results


def _info(info: Any) -> dict | None:
    if info is None:
        return None
    d = asdict(info)
    return {k: d[k] for k in ("backend", "model_name", "architecture", "n_ctx", "n_threads", "device", "multimodal",
                              "lora_path", "mmproj_path", "chat_template", "notes") if k in d}

