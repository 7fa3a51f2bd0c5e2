"""Export: JSONL in the chat "messages" format (with image paths), a Hugging Face ``datasets`` dataset on disk, and a
datasheet (Markdown + PNG plot).

Output folder::

    train.jsonl, val.jsonl, bench.jsonl     one item per line (see :func:`record`)
    images/...                              the key images the items refer to (paths in the JSONL are relative)
    hf/                                     datasets.DatasetDict saved with save_to_disk (same records; the nested
                                            ``reference`` and ``provenance`` are JSON strings there)
    datasheet.md, datasheet.png             counts per task, modality, region, level, source, review status, split
    manifest.json                           what was exported, with which options, and the leakage check

Messages follow the project's convention (core.inference): ``{"role", "content": str}`` and, on the user turn that
shows key images, ``"images": [path, ...]``. Only human-accepted/edited items are exported by default;
``include=("auto_gated",)`` adds items that passed the automatic gates, and every record says which it is.
"""
from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.spine.anatomy import regions_of
from curation.quality import assign_splits, dedup_text, leakage, near_duplicate_pairs
from curation.store import CurationStore

SYSTEM_PROMPT = ("You are SpineMed, a decision-support assistant for spine imaging. You support clinicians and do not "
                 "make diagnoses. Name vertebral levels explicitly and use only what the images and context show.")
LETTERS = "ABCDE"


_SURGICAL = ("surgery-", "complications-", "postoperative-", "deformity-correction", "wrong-level",
             "vertebral-augmentation", "spinal-injections", "conservative-care")
_ANATOMY = ("anatomy-", "imaging-", "vertebral-counting", "neurological-levels", "workstation-measurement",
            "rib-and-segmentation", "lumbosacral-transitional", "structured-spine-reporting")


def region_for(item: dict[str, Any]) -> str:
    """The region of the levels the item names (cervical, thoracic, lumbar, sacral, or e.g. 'cervical-thoracic'
    across a junction); items naming no level keep their source's region ('general' when none)."""
    regions: set[str] = set()
    for lv in item["levels"] or []:
        regions |= set(regions_of(lv))
    if regions:
        return "-".join(r for r in ("cervical", "thoracic", "lumbar", "sacral") if r in regions)
    return item["region"] if item["region"] not in ("", "all", "multiple") else "general"


def axis_for(item: dict[str, Any]) -> str:
    """Benchmark axis of an item: level_identification (label-grounded), surgical_planning (surgery, complications,
    treatment documents), anatomy_imaging (anatomy, imaging, counting) or pathology_assessment (the rest)."""
    if item["generator_kind"] == "labels":
        return "pathology_assessment" if item["subtask"] in ("finding_at_level", "which_disc_narrowed") \
            else "level_identification"
    doc = item["source_id"].removeprefix("kb:")
    if doc.startswith(_SURGICAL):
        return "surgical_planning"
    if doc.startswith(_ANATOMY):
        return "anatomy_imaging"
    return "pathology_assessment"


STAGES = {"mcq": "spine", "open_qa": "spine", "consultation": "consultations-reports",
          "report": "consultations-reports"}


def messages_for(item: dict[str, Any]) -> list[dict[str, Any]]:
    """Chat messages of an item. A user turn showing key images has list content: one ``{"type": "image"}`` part per
    image (in the order of the record's ``images``) followed by the text part; every other turn is a string."""
    c = item["content"]
    n_images = len(item["images"] or [])
    task = item["task"]

    def user(text: str, with_images: bool = True) -> dict[str, Any]:
        if n_images and with_images:
            parts: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
            parts.append({"type": "text", "text": text})
            return {"role": "user", "content": parts}
        return {"role": "user", "content": text}

    msgs: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
    if task == "mcq":
        options = "\n".join(f"{LETTERS[n]}. {o}" for n, o in enumerate(c["options"]))
        msgs.append(user(f"{c['question']}\n\n{options}\n\nAnswer with the letter of the correct option and a short "
                         "reason."))
        k = c["answer_index"]
        msgs.append({"role": "assistant", "content": f"{LETTERS[k]}. {c['options'][k]}\n\n{c['rationale']}"})
    elif task == "open_qa":
        msgs += [user(c["question"]), {"role": "assistant", "content": c["answer"]}]
    elif task == "consultation":
        first = True
        for t in c["turns"]:
            if t["role"] == "patient":
                msgs.append(user(t["text"], with_images=first))
                first = False
            else:
                msgs.append({"role": "assistant", "content": t["text"]})
    elif task == "report":
        levels = ", ".join(item["levels"]) if item["levels"] else "the levels in view"
        prompt = (f"Draft a structured spine report as JSON (technique, findings per level, impression, advice for "
                  f"the patient, treatment options, risk, basis). Levels in view: {levels}. Report only levels in "
                  "view and only findings that are given; do not invent findings.")
        msgs += [user(prompt), {"role": "assistant", "content": json.dumps(c, ensure_ascii=False)}]
    else:
        raise ValueError(f"unknown task {task!r}")
    return msgs


def record(item: dict[str, Any], store: CurationStore, split: str) -> dict[str, Any]:
    """One JSONL record: ``messages`` and ``images`` (paths relative to the export folder) for training, ``meta``
    for filtering (stage, task, split, review status, case; options and answer letter for multiple choice),
    ``reference`` (the structured item) and ``provenance`` (where it came from and who decided)."""
    source = store.source(item["source_id"]) or {}
    reviews = store.reviews(item["id"])
    meta: dict[str, Any] = {
        "id": item["id"], "split": split, "stage": STAGES[item["task"]], "task": item["task"],
        "subtask": item["subtask"], "axis": axis_for(item), "modality": item["modality"],
        "region": region_for(item),
        "levels": item["levels"] or [], "review_status": item["review_status"], "case_id": item["case_id"] or None,
        "source_id": item["source_id"], "location": item["location"],
    }
    if item["task"] == "mcq":
        meta["options"] = item["content"]["options"]
        meta["answer"] = LETTERS[item["content"]["answer_index"]]
    return {
        "messages": messages_for(item),
        "images": ["images/" + p for p in item["images"] or []],
        "meta": meta,
        "reference": item["content"],
        "provenance": {
            "source_id": item["source_id"], "source_kind": source.get("kind", ""),
            "source_path": source.get("path", ""), "source_sha256": source.get("sha256", ""),
            "chunk_id": item["chunk_id"], "location": item["location"], "case_id": item["case_id"] or "",
            "generator": item["generator"], "generator_kind": item["generator_kind"],
            "prompt_template": item["prompt_template"], "prompt_version": item["prompt_version"],
            "seed": item["seed"], "draft_id": item["draft_id"], "revision_id": item["revision_id"],
            "created_at": item["created_at"], "updated_at": item["updated_at"],
            "reviews": [{"reviewer": r["reviewer"], "decision": r["decision"], "reason": r["reason"],
                         "at": r["created_at"]} for r in reviews],
        },
    }


@dataclass
class ExportResult:
    out: Path
    counts: dict[str, int]
    leakage_ok: bool
    records: list[dict[str, Any]]


def select(store: CurationStore, include: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    statuses = ("accepted", "edited") + tuple(s for s in include if s not in ("accepted", "edited"))
    items = list(store.iter_items(statuses))
    return [i for i in items if not (i.get("gate_report") or {}).get("duplicate_of")]


def export(store: CurationStore, out: Path | str, *, image_root: Path | str, include: tuple[str, ...] = (),
           hf: bool = True, datasheet: bool = True, title: str = "SpineMed curated dataset",
           ratios: dict[str, float] | None = None, seed: str = "spinemed-v1",
           held_out_cases: frozenset[str] | set[str] = frozenset()) -> ExportResult:
    out = Path(out)
    image_root = Path(image_root)
    items = select(store, include)
    if not items:
        raise ValueError("nothing to export: no item has an exportable review status "
                         f"(accepted/edited{', ' + ', '.join(include) if include else ''})")
    texts = {i["id"]: dedup_text(i) for i in items}
    blocks = {i["id"]: "|".join(i["images"] or []) for i in items}
    pairs = near_duplicate_pairs(texts, 0.8, blocks=blocks)
    splits = assign_splits(items, pairs, ratios=ratios, seed=seed, held_out_cases=held_out_cases)
    leak = leakage(items, splits)
    if not leak.ok:
        raise RuntimeError(f"leakage between train and bench: cases {leak.shared_cases}, groups "
                           f"{leak.shared_groups[:5]}, near duplicates {leak.near_duplicates[:5]}")
    if out.exists():
        for name in ("train.jsonl", "val.jsonl", "bench.jsonl", "datasheet.md", "datasheet.png", "manifest.json"):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "images", ignore_errors=True)
        shutil.rmtree(out / "hf", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    records = [record(i, store, splits[i["id"]]) for i in sorted(items, key=lambda i: i["id"])]
    split_of = {r["meta"]["id"]: r["meta"]["split"] for r in records}
    for rec in records:
        for rel in rec["images"]:
            src = image_root / rel.removeprefix("images/")
            if not src.is_file():
                raise FileNotFoundError(f"item {rec['meta']['id']}: image {src} is missing")
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                shutil.copyfile(src, dst)
    for split in ("train", "val", "bench"):
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for rec in records:
                if split_of[rec["meta"]["id"]] == split:
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    if hf:
        save_hf(records, out / "hf")
    counts = dict(Counter(r["meta"]["split"] for r in records))
    manifest = {"title": title, "include": ["accepted", "edited", *include], "counts": counts,
                "review_status": dict(Counter(r["meta"]["review_status"] for r in records)),
                "leakage": {"ok": leak.ok, "checked": "cases, groups and near duplicates (jaccard >= 0.8) between "
                                                      "train and bench"},
                "held_out_cases": sorted(held_out_cases),
                "near_duplicate_pairs_merged_into_groups": len(pairs)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    if datasheet:
        from curation.datasheet import write_datasheet

        write_datasheet(records, store, out, title=title, include=include)
    return ExportResult(out, counts, leak.ok, records)


def save_hf(records: list[dict[str, Any]], path: Path) -> None:
    """A DatasetDict (train/val/bench) with one fixed schema: message content always a list of parts
    (``{"type": "text"|"image", "text"}``), ``meta`` with the common keys, ``reference``/``provenance`` and the MCQ
    options as JSON strings. Empty splits are left out (datasets cannot load a split saved without rows)."""
    import datasets
    from datasets import Dataset, DatasetDict, Features, List, Value

    datasets.disable_progress_bars()
    part = {"type": Value("string"), "text": Value("string")}
    features = Features({
        "messages": List({"role": Value("string"), "content": List(part)}),
        "images": List(Value("string")),
        "meta": {"id": Value("string"), "split": Value("string"), "stage": Value("string"), "task": Value("string"),
                 "subtask": Value("string"), "axis": Value("string"), "modality": Value("string"),
                 "region": Value("string"),
                 "levels": List(Value("string")), "review_status": Value("string"), "case_id": Value("string"),
                 "source_id": Value("string"), "location": Value("string"), "options": Value("string"),
                 "answer": Value("string")},
        "reference": Value("string"), "provenance": Value("string"),
    })

    def parts(content: Any) -> list[dict[str, Any]]:
        if isinstance(content, str):
            return [{"type": "text", "text": content}]
        return [{"type": c["type"], "text": c.get("text")} for c in content]

    def flat(rec: dict[str, Any]) -> dict[str, Any]:
        meta = dict(rec["meta"])
        meta["options"] = json.dumps(meta["options"], ensure_ascii=False) if "options" in meta else None
        meta.setdefault("answer", None)
        return {
            "messages": [{"role": m["role"], "content": parts(m["content"])} for m in rec["messages"]],
            "images": rec["images"], "meta": meta,
            "reference": json.dumps(rec["reference"], ensure_ascii=False),
            "provenance": json.dumps(rec["provenance"], ensure_ascii=False),
        }

    parts_by_split = {}
    for split in ("train", "val", "bench"):
        rows = [flat(r) for r in records if r["meta"]["split"] == split]
        if rows:
            parts_by_split[split] = Dataset.from_list(rows, features=features)
    DatasetDict(parts_by_split).save_to_disk(str(path))
