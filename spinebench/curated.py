"""Pathology and surgical-planning items from the curation export, and the train/bench leakage check.

The curation export (``resources/datasets/spinemed-curated-v2/{train,val,bench}.jsonl``) is read as the chat JSONL
that ``training.data`` documents; this module relies only on this part of it::

    {"messages": [{"role": "system"|"user"|"assistant", "content": "text" | [{"type": "text", "text": ...},
                                                                          {"type": "image"}]}, ...],
     "images": ["key_images/x.png", ...],                  # relative to the file's folder, one per image part
     "meta": {"id": "...",                                 # item id (else a hash of the messages)
              "task": "mcq" | "open_qa" | ..., "axis" | "category" | "subtask": "pathology" | "surgical_planning" ...,
              "case_id": "..." | null, "split": "train" | "val" | "bench",
              "review_status": "accepted" | "edited" | "auto_gated" | "pending" | ...,
              "options": {"A": "...", ...} | ["...", ...], "answer": "B"}}   # multiple choice only

- Only ``bench``-split records whose ``review_status`` is ``accepted``, ``edited`` (a human reviewer) or
  ``auto_gated`` (automatic gates only, labelled so in every item) are used; everything else is counted and skipped.
- Axis: ``meta.axis`` when present (``curation/export.py`` writes it): only ``pathology_assessment`` and
  ``surgical_planning`` records are taken (``level_identification`` and ``anatomy_imaging`` are counted and skipped:
  level identification is generated here from the label maps). Without ``meta.axis``, the first of
  ``meta.category`` / ``subtask`` / ``task`` that names pathology / diagnosis / grading or surgery / planning /
  treatment decides.
- Format: ``mcq`` when options and an answer letter are given, else ``open`` with the last assistant message as the
  reference answer. Single-question records only (one user turn). The record's own system message and user text
  are kept (a question that already lists its options is asked as it is).

Leakage (:func:`leakage`): a bench item - curated or generated here - leaks when its case id appears in the training
or validation export, or when its text is a near-duplicate of a training record (Jaccard similarity of word 3-gram
shingles >= ``NEAR_DUPLICATE``). The build drops leaking items and writes the check's result into the manifest and
datasheet. Generated items use the curation export's case ids for the sample studies, so a study the training
split learnt from never reaches the benchmark.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spinebench.schema import MCQ_SYSTEM, OPEN_SYSTEM, REVIEWED_STATUSES, Item, mcq_text

NEAR_DUPLICATE = 0.7
_AXIS_WORDS = (("pathology_assessment", re.compile(r"patholog|diagnos|grading|grade|finding|lesion", re.IGNORECASE)),
               ("surgical_planning", re.compile(r"surg|plan|treat|operat|management|procedure", re.IGNORECASE)))
_OPTION_LINE = re.compile(r"^\s*\(?([A-H])[.)]\s+\S", re.MULTILINE)


@dataclass
class Record:
    id: str
    messages: list[dict[str, Any]]
    images: list[str]
    meta: dict[str, Any]
    where: str
    folder: Path

    def user_texts(self) -> list[str]:
        return [text_of(m["content"]) for m in self.messages if m.get("role") == "user"]

    def text(self) -> str:
        return "\n".join(text_of(m["content"]) for m in self.messages if m.get("role") in ("user", "assistant"))


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text")


def read_export(path: Path) -> list[Record]:
    """Records of one export file; a record without a ``messages`` list is an error naming the line."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc})") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
            raise ValueError(f"{where}: expected an object with a \"messages\" list")  # noqa: TRY004 - bad data
        meta = dict(obj.get("meta") or {})
        rid = str(meta.get("id") or meta.get("item_id") or
                  hashlib.sha256(json.dumps(obj["messages"], sort_keys=True).encode()).hexdigest()[:16])
        out.append(Record(rid, obj["messages"], list(obj.get("images") or []), meta, where, Path(path).parent))
    return out


def axis_of(meta: dict[str, Any]) -> str | None:
    """The benchmark axis of a record: ``meta.axis`` when the export gives one (only pathology_assessment and
    surgical_planning are taken; level identification comes from the label maps here), else keywords."""
    if isinstance(meta.get("axis"), str) and meta["axis"]:
        return meta["axis"] if meta["axis"] in ("pathology_assessment", "surgical_planning") else None
    for key in ("category", "subtask", "task"):
        value = meta.get(key)
        if not isinstance(value, str):
            continue
        for axis, words in _AXIS_WORDS:
            if words.search(value):
                return axis
    return None


def _options(meta: dict[str, Any]) -> dict[str, str]:
    raw = meta.get("options")
    if isinstance(raw, dict):
        return {str(k).strip().upper(): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return {chr(65 + i): str(v) for i, v in enumerate(raw)}
    return {}


@dataclass
class CuratedResult:
    items: list[Item] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # reason -> count


def items_from_export(bench_file: Path, image_dir: Path, rel: str = "images/curated") -> CuratedResult:
    """Benchmark items from the bench split; images are copied to ``image_dir`` (named by content hash)."""
    result = CuratedResult()
    for rec in read_export(bench_file):
        meta = rec.meta
        if str(meta.get("split", "bench")) != "bench":
            result.skipped["not in the bench split"] += 1
            continue
        status = str(meta.get("review_status") or "unknown")
        if status not in REVIEWED_STATUSES:
            result.skipped[f"review status {status}"] += 1
            continue
        axis = axis_of(meta)
        if axis is None:
            result.skipped[f"axis {meta.get('axis') or 'unknown'} not taken"] += 1
            continue
        users = rec.user_texts()
        if len(users) != 1:
            result.skipped["multi-turn record"] += 1
            continue
        options = _options(meta)
        answer = str(meta.get("answer") or "").strip().upper()[:1]
        system = next((text_of(m["content"]) for m in rec.messages if m.get("role") == "system"), None)
        assistant = [text_of(m["content"]) for m in rec.messages if m.get("role") == "assistant"]
        images = []
        for p in rec.images:
            src = rec.folder / p
            data = src.read_bytes()
            name = hashlib.sha256(data).hexdigest()[:16] + src.suffix.lower()
            image_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, image_dir / name)
            images.append(f"{rel}/{name}")
        common = {"id": f"cur-{rec.id}", "axis": axis, "modality": "image+text" if images else "text", "images": images,
                      "case_id": meta.get("case_id"), "review_status": status,
                      "source": {"kind": "curation_export", "file": bench_file.name, "where": rec.where.split("/")[-1],
                              "record_id": rec.id, "source_id": meta.get("source_id"),
                              "location": meta.get("location")},
                      "subtype": str(meta.get("subtask") or meta.get("task") or "")}
        if options and answer in options:
            in_text = len(set(_OPTION_LINE.findall(users[0])) & set(options)) >= len(options) - 1
            result.items.append(Item(format="mcq", turns=[users[0]], options=options, answer=answer,
                                     system=system or MCQ_SYSTEM, meta={"options_in_text": in_text}, **common))
        elif assistant and assistant[-1].strip():
            result.items.append(Item(format="open", turns=[users[0]], reference=assistant[-1],
                                     system=system or OPEN_SYSTEM, **common))
        else:
            result.skipped["no answer (neither options+answer nor an assistant message)"] += 1
    return result


# --- leakage --------------------------------------------------------------------------------------------------
def shingles(text: str, n: int = 3) -> frozenset[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    if len(words) < n:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))


def item_text(item: Item) -> str:
    text = mcq_text(item) if item.format == "mcq" else "\n".join(item.turns)
    return text + ("\n" + item.reference if item.reference else "")


@dataclass
class Leakage:
    case_overlaps: list[tuple[str, str]] = field(default_factory=list)  # (bench item id, case id)
    near_duplicates: list[tuple[str, str, float]] = field(default_factory=list)  # (bench id, train id, jaccard)
    n_bench: int = 0
    n_train: int = 0

    @property
    def leaking_ids(self) -> set[str]:
        return {i for i, _ in self.case_overlaps} | {i for i, _, _ in self.near_duplicates}

    def to_dict(self) -> dict[str, Any]:
        return {"n_bench_checked": self.n_bench, "n_train_records": self.n_train,
                "case_overlaps": [list(x) for x in self.case_overlaps],
                "near_duplicates": [[a, b, round(j, 3)] for a, b, j in self.near_duplicates],
                "threshold_jaccard_word3": NEAR_DUPLICATE}


def leakage(items: list[Item], train: list[Record], threshold: float = NEAR_DUPLICATE,
            max_df: int = 200) -> Leakage:
    """Case-id overlaps and near-duplicates between bench items and training records.

    Candidates share at least one shingle that occurs in at most ``max_df`` training records (boilerplate shingles
    are ignored for candidate search only); the Jaccard similarity is then computed on the full shingle sets."""
    out = Leakage(n_bench=len(items), n_train=len(train))
    train_cases = {str(r.meta.get("case_id")) for r in train if r.meta.get("case_id")}
    for item in items:
        if item.case_id and str(item.case_id) in train_cases:
            out.case_overlaps.append((item.id, str(item.case_id)))
    train_sets = [shingles(r.text()) for r in train]
    index: dict[str, list[int]] = defaultdict(list)
    for n, s in enumerate(train_sets):
        for sh in s:
            index[sh].append(n)
    for item in items:
        a = shingles(item_text(item))
        if not a:
            continue
        candidates = {n for sh in a if 0 < len(index.get(sh, ())) <= max_df for n in index[sh]}
        best = None
        for n in candidates:
            b = train_sets[n]
            j = len(a & b) / len(a | b)
            if j >= threshold and (best is None or j > best[1]):
                best = (train[n].id, j)
        if best:
            out.near_duplicates.append((item.id, best[0], best[1]))
    return out
