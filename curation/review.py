"""Clinician review: a queue of items, decisions (accept / edit / reject with a reason) by a named reviewer, and the
agreement between two reviewers who saw the same items (Cohen's kappa).

The decisions are rows of the ``reviews`` table; the item's ``review_status`` follows from each reviewer's latest
decision (see CurationStore.add_review). ``queue`` lists what a reviewer has not decided yet, auto-gated items first
(the gates have already removed what is certainly wrong).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from curation.generate.schemas import validate
from curation.store import CurationStore


def queue(store: CurationStore, reviewer: str, statuses: tuple[str, ...] = ("auto_gated", "pending"),
          task: str | None = None, limit: int | None = None, second: bool = False) -> list[dict[str, Any]]:
    """Items this reviewer has not reviewed, in the given statuses. ``second``: instead, the items someone else
    reviewed and this reviewer has not (a second, independent review is how agreement is measured)."""
    reviews = store.reviews()
    done = {r["item_id"] for r in reviews if r["reviewer"] == reviewer}
    if second:
        others = {r["item_id"] for r in reviews if r["reviewer"] != reviewer}
        out = [store.item(i) for i in sorted(others - done)]
        out = [i for i in out if i and (not task or i["task"] == task)]
        return out[:limit] if limit else out
    out = []
    for status in statuses:
        for item in store.items("review_status = ?", [status]):
            if item["id"] in done or (task and item["task"] != task):
                continue
            out.append(item)
            if limit and len(out) >= limit:
                return out
    return out


def decide(store: CurationStore, item_id: str, reviewer: str, decision: str, reason: str = "",
           edited: dict[str, Any] | None = None) -> int:
    """Record a decision; an edit is validated against the item's schema first."""
    if decision == "edit":
        item = store.item(item_id)
        if item is None:
            raise KeyError(f"no item {item_id!r}")
        problems = validate(item["task"], edited)
        if problems:
            raise ValueError("edited item is not valid: " + "; ".join(problems))
    return store.add_review(item_id, reviewer, decision, reason=reason, edited_content=edited)


def cohen_kappa(a: list[str], b: list[str]) -> float:
    """Cohen's kappa of two raters' labels over the same items: (p_o - p_e) / (1 - p_e)."""
    if len(a) != len(b) or not a:
        raise ValueError("kappa needs two equally long, non-empty lists of labels")
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in set(ca) | set(cb)) / (n * n)
    if p_e == 1.0:
        return 1.0  # both raters used one and the same label throughout: perfect agreement
    return (p_o - p_e) / (1 - p_e)


@dataclass
class Agreement:
    reviewers: tuple[str, str]
    n_items: int
    observed: float
    kappa: float
    kappa_accept_vs_reject: float
    table: dict[str, int]

    def text(self) -> str:
        a, b = self.reviewers
        rows = "\n".join(f"  {k}: {v}" for k, v in sorted(self.table.items()))
        return (f"{a} vs {b}: {self.n_items} items seen by both; observed agreement {self.observed:.2f}; "
                f"Cohen's kappa {self.kappa:.2f} (accept/edit/reject), {self.kappa_accept_vs_reject:.2f} "
                f"(kept vs rejected)\n{rows}")


def _kept(decision: str) -> str:
    return "reject" if decision == "reject" else "keep"


def agreement(store: CurationStore) -> list[Agreement]:
    """Kappa for every pair of reviewers with items in common (each reviewer's latest decision per item)."""
    latest: dict[str, dict[str, str]] = {}
    for r in store.reviews():
        latest.setdefault(r["reviewer"], {})[r["item_id"]] = r["decision"]
    out = []
    names = sorted(latest)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = sorted(set(latest[a]) & set(latest[b]))
            if not common:
                continue
            la = [latest[a][k] for k in common]
            lb = [latest[b][k] for k in common]
            out.append(Agreement(
                reviewers=(a, b), n_items=len(common), observed=sum(x == y for x, y in zip(la, lb)) / len(common),
                kappa=cohen_kappa(la, lb), kappa_accept_vs_reject=cohen_kappa([_kept(x) for x in la],
                                                                              [_kept(x) for x in lb]),
                table=dict(Counter(f"{x}/{y}" for x, y in zip(la, lb)))))
    return out


def render_item(item: dict[str, Any], source: dict[str, Any] | None = None, chunk: dict[str, Any] | None = None) -> str:
    """A plain-text view of an item for the review CLI: the item, where it came from, the supporting text."""
    lines = [f"item {item['id']}  [{item['task']}/{item['subtask']}]  status: {item['review_status']}",
             f"source: {item['source_id']}  at {item['location']}",
             (f"generator: {item['generator']} ({item['generator_kind']}), template {item['prompt_template']} "
             f"v{item['prompt_version']}, seed {item['seed']}")]
    if item["images"]:
        lines.append("images: " + ", ".join(item["images"]))
    if item.get("gate_report"):
        lines.append("gates: " + json.dumps(item["gate_report"]))
    lines.append("")
    c = item["content"]
    if item["task"] == "mcq":
        lines.append("Q: " + c["question"])
        lines += [f"  {'*' if n == c['answer_index'] else ' '} {'ABCDE'[n]}. {o}" for n, o in enumerate(c["options"])]
        lines.append("Rationale: " + c["rationale"])
    elif item["task"] == "open_qa":
        lines += ["Q: " + c["question"], "A: " + c["answer"]]
    elif item["task"] == "consultation":
        lines.append(f"Level: {c['level']}")
        lines += [f"  {t['role']}: {t['text']}" for t in c["turns"]]
    else:
        lines.append(json.dumps(c, indent=2, ensure_ascii=False))
    if chunk:
        lines += ["", f"--- supporting source ({chunk['location']}) ---", chunk["text"][:1500]]
    return "\n".join(lines)


CLINICIAN_TURN_SEPARATOR = "\n---\n"


def status_counts(store: CurationStore) -> dict[str, int]:
    """How many items are in each review status (every status of REVIEW_STATUSES, zero when none), plus
    ``awaiting``: the items no human has decided yet (``pending`` + ``auto_gated``)."""
    from curation.store import REVIEW_STATUSES

    counts = Counter(item["review_status"] for item in store.items())
    out = {status: counts.get(status, 0) for status in REVIEW_STATUSES}
    out["awaiting"] = out["pending"] + out["auto_gated"]
    return out


def assistant_text(item: dict[str, Any]) -> str:
    """The assistant's part of an item as one editable text: the MCQ rationale, the open-QA answer, the clinician
    turns of a consultation (separated by a line ``---``), the report as indented JSON.
    :func:`with_assistant_text` is its inverse."""
    c = item["content"]
    task = item["task"]
    if task == "mcq":
        return c["rationale"]
    if task == "open_qa":
        return c["answer"]
    if task == "consultation":
        return CLINICIAN_TURN_SEPARATOR.join(t["text"] for t in c["turns"] if t["role"] == "clinician")
    return json.dumps(c, indent=2, ensure_ascii=False)


def with_assistant_text(item: dict[str, Any], text: str, answer_index: int | None = None) -> dict[str, Any]:
    """The item's content with its assistant part replaced by ``text`` (as given by :func:`assistant_text`); for an
    MCQ, ``answer_index`` may also re-key the correct option. Raises ValueError when the text does not fit the item
    (a consultation needs one text per clinician turn; a report must stay valid JSON). The result is what
    :func:`decide` validates and stores for an ``edit``."""
    c = json.loads(json.dumps(item["content"]))  # a deep copy
    text = text.strip()
    task = item["task"]
    if task == "mcq":
        c["rationale"] = text
        if answer_index is not None:
            c["answer_index"] = int(answer_index)
    elif task == "open_qa":
        c["answer"] = text
    elif task == "consultation":
        parts = [p.strip() for p in re.split(r"\n[ \t]*---[ \t]*\n", text)]
        turns = [t for t in c["turns"] if t["role"] == "clinician"]
        if len(parts) != len(turns):
            raise ValueError(f"the consultation has {len(turns)} clinician turn(s); the edit has {len(parts)} "
                             "(separate them with a line '---')")
        for turn, part in zip(turns, parts):
            turn["text"] = part
    else:
        try:
            c = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"the edited report is not valid JSON: {exc}") from exc
    return c
