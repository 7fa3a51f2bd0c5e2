"""Quality gates: schema validation, near-duplicate removal (MinHash + LSH), MCQ answer-position balance, PHI scan,
case-level splits and the leakage check.

``run_gates(store)`` checks every item that no human has reviewed yet: an item that passes everything becomes
``auto_gated`` (NOT a clinician review), one that fails becomes ``auto_rejected`` with the reasons in its
``gate_report``. Human decisions are never overwritten; duplicates among human-reviewed items are reported and left
out of the export instead.

Near duplicates: word 3-shingles of the item's text, 128 MinHash permutations (``(a*h + b) mod (2^31 - 1)`` over
32-bit shingle hashes), LSH with 32 bands of 4 rows, candidates confirmed with the exact Jaccard similarity
(>= 0.8 by default). Image items are only compared with items showing the same images.

Splits are by group (the case for imaging items, the knowledge document for knowledge items): groups connected by a
near duplicate are merged first, so no case and no near-duplicate item can be in both train and benchmark splits;
:func:`leakage` verifies it on any assignment.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curation.generate.schemas import validate
from curation.sources.deid import name_token_hash
from curation.store import HUMAN_STATUSES, CurationStore

_PRIME = (1 << 31) - 1
_WORDS = re.compile(r"[a-z0-9]+")
SPLITS = ("train", "val", "bench")


# --- near duplicates ------------------------------------------------------------------------------------------------
def shingles(text: str, k: int = 3) -> set[str]:
    words = _WORDS.findall(text.lower())
    if len(words) < k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class MinHasher:
    def __init__(self, num_perm: int = 128, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, _PRIME, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, _PRIME, size=num_perm, dtype=np.uint64)
        self.num_perm = num_perm

    def signature(self, items: set[str]) -> np.ndarray:
        if not items:
            return np.full(self.num_perm, _PRIME, dtype=np.uint64)
        h = np.array([int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little") for s in items],
                     dtype=np.uint64)
        return ((np.outer(h, self.a) + self.b) % _PRIME).min(axis=0)


def near_duplicate_pairs(texts: dict[str, str], threshold: float = 0.8, bands: int = 32,
                         blocks: dict[str, str] | None = None) -> list[tuple[str, str, float]]:
    """Pairs (id_a, id_b, jaccard) with Jaccard >= threshold. ``blocks``: only ids in the same block are compared
    (e.g. items with the same images)."""
    hasher = MinHasher()
    rows = hasher.num_perm // bands
    sets = {k: shingles(v) for k, v in texts.items()}
    buckets: dict[tuple, list[str]] = defaultdict(list)
    for key, sh in sets.items():
        sig = hasher.signature(sh)
        block = blocks.get(key, "") if blocks else ""
        for band in range(bands):
            buckets[(block, band, sig[band * rows:(band + 1) * rows].tobytes())].append(key)
    seen: set[tuple[str, str]] = set()
    out = []
    for members in buckets.values():
        if len(members) < 2:
            continue
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                pair = (a, b) if a < b else (b, a)
                if pair in seen:
                    continue
                seen.add(pair)
                sim = jaccard(sets[a], sets[b])
                if sim >= threshold:
                    out.append((pair[0], pair[1], sim))
    return sorted(out)


def dedup_text(item: dict[str, Any]) -> str:
    return json.dumps(item["content"], ensure_ascii=False)


# --- PHI -----------------------------------------------------------------------------------------------------------
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*"
PHI_PATTERNS: dict[str, re.Pattern[str]] = {
    "date": re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)?\d{2}\b|\b(?:19|20)\d{2}-\d{2}-\d{2}\b|"
                       rf"\b\d{{1,2}}\s+{_MONTHS}\s+(?:19|20)\d{{2}}\b|\b{_MONTHS}\s+\d{{1,2}},?\s+(?:19|20)\d{{2}}\b|"
                       r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b", re.IGNORECASE),
    "id": re.compile(r"\b(?:mrn|medical record|patient id|hospital (?:no|number)|nhs (?:no|number)|ssn|"
                     r"accession)\b\s*(?:number|no\.?)?\s*[:#]?\s*[A-Z0-9-]{4,}|\b\d{3}-\d{2}-\d{4}\b|\b\d{8,}\b",
                     re.IGNORECASE),
    "phone": re.compile(r"(?:\+\d{1,3}[\s.-]?)?\(?\d{2,4}\)?[\s.-]\d{3,4}[\s.-]\d{3,4}\b"),
    "email": re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"),
    "name": re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+[A-Z][a-z]+|\bpatient(?:'s)? name\s*[:=]\s*\S+|"
                       r"\b[A-Z][A-Za-z]+\^[A-Z][A-Za-z]+\b"),
}


def phi_findings(text: str, name_hashes: set[str] | None = None, salt: bytes | None = None) -> list[str]:
    """What in ``text`` looks like protected health information (pattern name and the matched text)."""
    found = [f"{kind}: {m.group(0)!r}" for kind, rx in PHI_PATTERNS.items() for m in rx.finditer(text)]
    if name_hashes and salt:
        for token in set(re.findall(r"[^\W\d_]{2,}", text)):
            if name_token_hash(token, salt) in name_hashes:
                found.append("name from a DICOM header (token hash match)")
    return found


# --- MCQ answer positions --------------------------------------------------------------------------------------------
def position_counts(items: Iterable[dict[str, Any]]) -> Counter[int]:
    return Counter(i["content"]["answer_index"] for i in items if i["task"] == "mcq")


def balance_positions(items: list[dict[str, Any]], seed: str = "spinemed") -> list[tuple[dict, dict, list[dict]]]:
    """Move each MCQ's correct option to a balanced position (round-robin in a stable pseudo-random order): returns
    (item, new content, changes) for the items whose options were reordered."""
    mcqs = sorted((i for i in items if i["task"] == "mcq"),
                  key=lambda i: hmac.new(seed.encode(), i["id"].encode(), hashlib.sha256).hexdigest())
    out = []
    counts: Counter[int] = Counter()
    for item in mcqs:
        content = item["content"]
        n = len(content["options"])
        target = min(range(n), key=lambda p: (counts[p], p))
        counts[target] += 1
        idx = content["answer_index"]
        if idx == target:
            continue
        options = list(content["options"])
        correct = options.pop(idx)
        others = options
        new_options = others[:target] + [correct] + others[target:]
        new = {**content, "options": new_options, "answer_index": target}
        out.append((item, new, [{"field": "options", "before": content["options"], "after": new_options,
                                 "reason": f"answer position balance: correct option moved from "
                                           f"{'ABCDE'[idx]} to {'ABCDE'[target]}", "by": "gates"}]))
    return out


# --- splits and leakage ----------------------------------------------------------------------------------------------
class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def assign_splits(items: list[dict[str, Any]], dup_pairs: list[tuple[str, str, float]], *,
                  ratios: dict[str, float] | None = None, seed: str = "spinemed-v1",
                  held_out_cases: frozenset[str] | set[str] = frozenset()) -> dict[str, str]:
    """item id -> split. Whole groups (case or document, merged across near duplicates) go to one split; imaging
    groups and knowledge groups are split separately so the benchmark gets both kinds. Every group that touches a
    case of ``held_out_cases`` (the cases SpineBench is built from) goes to ``bench`` first and counts towards its
    share, so no training item shares a patient with a benchmark item."""
    ratios = ratios or {"bench": 0.15, "val": 0.10}
    uf = _UnionFind()
    for it in items:
        uf.find("g:" + it["group_key"])
    by_id = {it["id"]: it for it in items}
    for a, b, _ in dup_pairs:
        if a in by_id and b in by_id:
            uf.union("g:" + by_id[a]["group_key"], "g:" + by_id[b]["group_key"])
    groups: dict[str, list[str]] = defaultdict(list)
    for it in items:
        groups[uf.find("g:" + it["group_key"])].append(it["id"])
    out: dict[str, str] = {}
    for kind in ("case", "other"):
        members = {g: ids for g, ids in groups.items()
                   if (any(by_id[i]["case_id"] for i in ids)) == (kind == "case")}
        total = sum(len(v) for v in members.values())
        order = sorted(members, key=lambda g: hmac.new(seed.encode(), g.encode(), hashlib.sha256).hexdigest())
        free = list(order)
        pinned = [g for g in order if any(by_id[i]["case_id"] in held_out_cases for i in members[g])]
        for g in pinned:
            free.remove(g)
            for i in members[g]:
                out[i] = "bench"
        for split in ("bench", "val"):
            want = ratios.get(split, 0.0) * total
            filled = sum(len(members[g]) for g in pinned) if split == "bench" else 0
            for g in list(free):
                if filled >= 0.75 * want:
                    break
                if filled + len(members[g]) <= 1.25 * want:
                    free.remove(g)
                    filled += len(members[g])
                    for i in members[g]:
                        out[i] = split
            if not filled and want > 0 and len(free) >= 3:  # few, large groups: the smallest one is held out
                g = min(free, key=lambda x: (len(members[x]), x))
                free.remove(g)
                for i in members[g]:
                    out[i] = split
        for g in free:
            for i in members[g]:
                out[i] = "train"
    return out


@dataclass
class LeakageReport:
    shared_cases: list[str] = field(default_factory=list)
    shared_groups: list[str] = field(default_factory=list)
    near_duplicates: list[tuple[str, str, float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.shared_cases or self.shared_groups or self.near_duplicates)


def leakage(items: list[dict[str, Any]], splits: dict[str, str], threshold: float = 0.8,
            train: str = "train", held_out: tuple[str, ...] = ("bench",)) -> LeakageReport:
    """Cases, groups and near-duplicate items present both in ``train`` and a held-out split."""
    rep = LeakageReport()
    where: dict[str, dict[str, set[str]]] = {"case": defaultdict(set), "group": defaultdict(set)}
    for it in items:
        s = splits.get(it["id"])
        if s is None:
            continue
        if it["case_id"]:
            where["case"][it["case_id"]].add(s)
        where["group"][it["group_key"]].add(s)
    for case, seen in sorted(where["case"].items()):
        if train in seen and seen & set(held_out):
            rep.shared_cases.append(case)
    for group, seen in sorted(where["group"].items()):
        if train in seen and seen & set(held_out):
            rep.shared_groups.append(group)
    texts = {it["id"]: dedup_text(it) for it in items if it["id"] in splits}
    blocks = {it["id"]: "|".join(it["images"] or []) for it in items}
    for a, b, sim in near_duplicate_pairs(texts, threshold, blocks=blocks):
        pair = {splits[a], splits[b]}
        if train in pair and pair & set(held_out):
            rep.near_duplicates.append((a, b, sim))
    return rep


# --- the gates -------------------------------------------------------------------------------------------------------
def run_gates(store: CurationStore, *, salt: bytes | None = None, dup_threshold: float = 0.8) -> dict[str, Any]:
    """Gate every item without a human decision; returns a summary (counts, duplicate pairs, positions)."""
    items = [i for i in store.items() if i["review_status"] not in HUMAN_STATUSES]
    name_hashes = store.phi_token_hashes()
    summary: Counter[str] = Counter()
    reports: dict[str, dict[str, Any]] = {}
    for it in items:
        rep = dict(it["gate_report"] or {})
        rep.pop("schema", None), rep.pop("phi", None), rep.pop("duplicate_of", None)
        problems = validate(it["task"], it["content"])
        if problems:
            rep["schema"] = problems
        phi = phi_findings(dedup_text(it), name_hashes, salt)
        if phi:
            rep["phi"] = phi
        reports[it["id"]] = rep
    # balance MCQ answer positions among the items that passed so far (human-reviewed ones are left as they are)
    eligible = [it for it in items if not reports[it["id"]] and it["task"] == "mcq"]
    for item, new, changes in balance_positions(eligible):
        store.add_revision(item_id=item["id"], draft_id=item["draft_id"], generator="gates", prompt_template="rules",
                           prompt_version="1", critique=None, changes=changes, result=new, ok=1, elapsed_s=0.0)
        store.update_item(item["id"], content=new)
        item["content"] = new
        summary["mcq_rebalanced"] += 1
    # near duplicates among all items (human-reviewed ones too: they are kept, the other copy goes)
    everything = store.items()
    rank = {"accepted": 0, "edited": 0, "auto_gated": 1, "pending": 1, "auto_rejected": 3, "rejected": 4}
    candidates = [it for it in everything if it["review_status"] not in ("rejected",)
                  and not (it["id"] in reports and reports[it["id"]])]
    texts = {it["id"]: dedup_text(it) for it in candidates}
    blocks = {it["id"]: "|".join(it["images"] or []) for it in candidates}
    pairs = near_duplicate_pairs(texts, dup_threshold, blocks=blocks)
    by_id = {it["id"]: it for it in everything}
    dropped: set[str] = set()
    for a, b, sim in pairs:
        if a in dropped or b in dropped:
            continue
        keep, drop = sorted((a, b), key=lambda x: (rank.get(by_id[x]["review_status"], 2), x))
        if drop in reports:
            reports[drop]["duplicate_of"] = f"{keep} (jaccard {sim:.2f})"
            dropped.add(drop)
    for it in items:
        rep = reports[it["id"]]
        failing = {k: v for k, v in rep.items() if v}
        status = "auto_rejected" if failing else "auto_gated"
        store.update_item(it["id"], review_status=status, gate_report=failing)
        summary[status] += 1
        for key in failing:
            summary[f"failed:{key}"] += 1
    after = [i for i in store.items() if i["review_status"] in ("auto_gated", "accepted", "edited")]
    return {"counts": dict(summary), "duplicate_pairs": len(pairs),
            "mcq_positions": dict(sorted(position_counts(after).items()))}
