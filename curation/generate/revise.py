"""The revise stage: written criteria checked by rules, optionally preceded by an LLM critique, every change recorded.

Criteria (the same ones the revise prompt gives the model): clinical accuracy against the passage, level consistency
with the source, no invented facts (numbers and levels must appear in the source), the answer supported by the cited
passage, and the schema. Rule-based fixes: whitespace, duplicate MCQ options, consultation turns that do not
alternate patient/clinician (merged), a consultation ending on the patient (trailing turn dropped).

Outcome (:class:`Revision`): the content to keep, the list of changes (field, before, after, reason), the critique of
the model if one ran, and the problems left; an item with problems left fails the gates (``auto_rejected``).
Items generated from labels are correct by construction: their revision is the schema and rule checks only.
"""
from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from core.spine.anatomy import find_levels, related_levels
from curation.generate.prompts import load_template
from curation.generate.schemas import revision_schema, validate

STOP = frozenset([
    "a", "an", "the", "and", "or", "of", "in", "on", "at", "to", "for", "with", "by", "from", "is", "are", "was",
    "were", "be", "been", "it", "its", "this", "that", "these", "those", "as", "not", "no", "can", "may", "will",
    "which", "what", "when", "where", "who", "how", "than", "then", "there", "their", "they", "them", "into",
    "over", "under", "between", "about", "also", "only", "more", "most", "other", "such", "each", "both", "any",
    "all", "if", "but", "so", "do", "does", "did", "has", "have", "had", "one", "two", "three"
])
_WORD = re.compile(r"[a-z][a-z\-]{2,}")
_NUMBER = re.compile(r"(?<![A-Za-z\d.])\d+(?:\.\d+)?(?![\d])")
SUPPORT_THRESHOLD = {"mcq": 0.6, "open_qa": 0.6, "consultation": 0.5, "report": 0.4}


@dataclass
class Revision:
    content: dict[str, Any]
    changes: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    critique: dict[str, Any] | None = None
    generator: str = "rules"
    prompt_template: str = "rules"
    prompt_version: str = "1"
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def content_words(text: str) -> set[str]:
    return {w.rstrip("s") for w in _WORD.findall(text.lower()) if w not in STOP}


def answer_text(task: str, content: dict[str, Any]) -> str:
    """The part of an item that must be supported by the source."""
    if task == "mcq":
        opts = content.get("options") or []
        idx = content.get("answer_index", 0)
        correct = opts[idx] if isinstance(idx, int) and 0 <= idx < len(opts) else ""
        return f"{correct} {content.get('rationale', '')}"
    if task == "open_qa":
        return str(content.get("answer", ""))
    if task == "consultation":
        return " ".join(t.get("text", "") for t in content.get("turns", []) if t.get("role") == "clinician")
    if task == "report":
        parts = [content.get("impression", "")] + [f.get("finding", "") for f in content.get("findings", [])]
        return " ".join(str(p) for p in parts)
    return ""


def item_text(task: str, content: dict[str, Any]) -> str:
    """All text of an item (question and answers), for levels, duplicates and the PHI scan."""
    return json.dumps(content, ensure_ascii=False)


_ABOUT_THE_EXERCISE = re.compile(r"\b(correct answer|this (?:multiple[- ]choice )?question|the passage|which option|"
                                 r"the following|the options?)\b", re.IGNORECASE)
_QUESTION_START = re.compile(r"^(what|which|how|why|when|where|who|whom|whose|is|are|does|do|can|should|in|according|"
                             r"name|list|describe|explain|give|at)\b", re.IGNORECASE)


def form_problems(task: str, content: dict[str, Any]) -> list[str]:
    """Shape checks a schema cannot express: a real question, a non-trivial answer."""
    problems = []
    question = str(content.get("question", ""))
    if task in ("mcq", "open_qa"):
        if len(question.split()) < 5:
            problems.append("question too short (under 5 words)")
        if not (question.rstrip().endswith("?") or _QUESTION_START.match(question.strip())):
            problems.append("question is not phrased as a question")
        if question.lower().startswith(("passage", "information", "item")):
            problems.append("question repeats the prompt instead of asking something")
        if _ABOUT_THE_EXERCISE.search(question):
            problems.append("question is about the exercise, not about a clinical fact")
    answer = str(content.get("answer", ""))
    if task == "open_qa" and len(content_words(answer)) + len(_NUMBER.findall(answer)) < 3:
        problems.append("reference answer too short (under 3 content words)")
    if task == "mcq":
        opts = content.get("options") or []
        idx = content.get("answer_index")
        rationale = str(content.get("rationale", ""))
        if isinstance(idx, int) and 0 <= idx < len(opts):
            if len(content_words(rationale)) < 3:
                problems.append("rationale too short")
            correct = str(opts[idx]).strip().lower().rstrip(".")
            if correct and correct not in rationale.lower() and not (
                    content_words(correct) and content_words(correct) <= content_words(rationale)):
                problems.append("the rationale does not mention the correct option")
    return problems


def support_problems(task: str, content: dict[str, Any], support: str, allowed_levels: set[str]) -> list[str]:
    problems = form_problems(task, content)
    answer = answer_text(task, content)
    allowed = set()
    for lv in allowed_levels | set(find_levels(support)):
        allowed |= related_levels(lv) | {lv}
    for lv in find_levels(answer):
        if lv not in allowed:
            problems.append(f"level {lv} is not in the source")
    source_numbers = set(_NUMBER.findall(support))
    for num in _NUMBER.findall(answer):
        if num not in source_numbers and not re.fullmatch(r"[0-4]", num):
            problems.append(f"number {num} does not appear in the source")
    words = content_words(answer)
    if words:
        overlap = len(words & content_words(support)) / len(words)
        if overlap < SUPPORT_THRESHOLD.get(task, 0.5):
            problems.append(f"answer not supported by the source (word overlap {overlap:.2f})")
    else:
        problems.append("empty answer")
    return problems


def rule_fixes(task: str, content: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    fixed = copy.deepcopy(content)
    changes: list[dict[str, Any]] = []

    def note(field_name: str, before: Any, after: Any, reason: str) -> None:
        changes.append({"field": field_name, "before": before, "after": after, "reason": reason, "by": "rules"})

    def clean(value: Any) -> Any:
        return re.sub(r"\s+", " ", value).strip() if isinstance(value, str) else value

    for key, value in list(fixed.items()):
        if isinstance(value, str) and clean(value) != value:
            fixed[key] = clean(value)
            note(key, value, fixed[key], "whitespace normalised")
    if task == "mcq" and isinstance(fixed.get("options"), list):
        opts = [clean(o) for o in fixed["options"]]
        idx = fixed.get("answer_index")
        if isinstance(idx, int) and 0 <= idx < len(opts):
            correct = opts[idx]
            unique = []
            for o in opts:
                if o.lower() not in {u.lower() for u in unique}:
                    unique.append(o)
            if unique != fixed["options"]:
                note("options", fixed["options"], unique, "duplicate options removed / whitespace normalised")
                fixed["options"] = unique
                fixed["answer_index"] = unique.index(correct)
    if task == "consultation" and isinstance(fixed.get("turns"), list):
        turns = [t for t in fixed["turns"] if isinstance(t, dict) and str(t.get("text", "")).strip()]
        merged: list[dict[str, str]] = []
        for t in turns:
            if merged and merged[-1]["role"] == t.get("role"):
                merged[-1] = {"role": t["role"], "text": merged[-1]["text"] + " " + clean(t["text"])}
            else:
                merged.append({"role": t.get("role", ""), "text": clean(t.get("text", ""))})
        while merged and merged[0]["role"] != "patient":
            merged.pop(0)
        while merged and merged[-1]["role"] != "clinician":
            merged.pop()
        if merged != fixed["turns"]:
            note("turns", fixed["turns"], merged, "turns merged/trimmed to alternate patient -> clinician")
            fixed["turns"] = merged
    return fixed, changes


def _diff(before: dict[str, Any], after: dict[str, Any], reason: str, by: str) -> list[dict[str, Any]]:
    return [{"field": k, "before": before.get(k), "after": after.get(k), "reason": reason, "by": by}
            for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]


def revise(task: str, content: dict[str, Any], *, support: str, allowed_levels: set[str], generator_kind: str,
           reviser=None, max_tokens: int = 400, seed: int = 0) -> Revision:
    """Apply the revise stage to one drafted item (see module docstring)."""
    start = time.perf_counter()
    fixed, changes = rule_fixes(task, content)
    rev = Revision(content=fixed, changes=changes)
    if generator_kind == "labels":
        rev.problems = validate(task, fixed)
        rev.elapsed_s = time.perf_counter() - start
        return rev
    if reviser is not None:
        template = load_template("revise")
        prompt = template.render(passage=support[:1500], draft=json.dumps(fixed, ensure_ascii=False), task=task)
        result = reviser.generate(
            [{"role": "system", "content": "You are a careful medical editor. Reply with JSON only."},
             {"role": "user", "content": prompt}],
            revision_schema(task), max_tokens=max_tokens, seed=seed, temperature=0.2)
        rev.generator, rev.prompt_template, rev.prompt_version = reviser.name, template.name, template.version
        rev.critique = result.parsed or {"error": result.error, "raw": result.raw[:500]}
        if result.parsed and result.parsed.get("verdict") == "fix" and isinstance(result.parsed.get("revised"), dict):
            candidate, more = rule_fixes(task, result.parsed["revised"])
            cand_problems = validate(task, candidate) or support_problems(task, candidate, support, allowed_levels)
            if not cand_problems:
                rev.changes += _diff(fixed, candidate, "; ".join(result.parsed.get("problems") or [])
                                     or "model revision", reviser.name) + more
                rev.content = candidate
            else:
                rev.changes.append({"field": "*", "before": None, "after": None, "by": reviser.name,
                                    "reason": "model revision discarded: " + "; ".join(cand_problems[:3])})
        elif result.parsed and result.parsed.get("verdict") == "reject":
            rev.changes.append({"field": "*", "before": None, "after": None, "by": reviser.name,
                                "reason": "model critique: reject (" + "; ".join(result.parsed.get("problems") or [])
                                          + ") - the rule checks decide"})
    rev.problems = validate(task, rev.content) or support_problems(task, rev.content, support, allowed_levels)
    rev.elapsed_s = time.perf_counter() - start
    return rev
