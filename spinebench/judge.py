"""The judge: prompts that ask a model to grade a report (10 dimensions, 1-5) or an open answer (1-5), and the
parsers of its replies.

The dimensions are those of the SpineMed report evaluation; their one-line definitions below are ours. The judge is
asked for one JSON object; a reply that is not JSON is read line by line ("coverage: 4"). Dimensions the joint
reply leaves unscored are then asked one at a time (:func:`dimension_prompt`, "reply with one digit"), which small
judges follow more often. Dimensions still unscored stay None (left out of the averages, counted in the parse rate),
never zero.
"""
from __future__ import annotations

import json
import re
from typing import Any

from spinebench.metrics import JUDGE_DIMENSIONS

DEFINITIONS = {
    "imaging_findings": "the imaging findings are accurate, complete and consistent with the study context",
    "diagnosis": "the diagnostic impression is correct and appropriately hedged",
    "patient_guidance": "clear, appropriate guidance on next steps for the clinician and patient",
    "evidence_based_treatment": "treatment suggestions follow current evidence and guidelines",
    "technical_feasibility": "proposed procedures or surgical options are technically sensible for these levels",
    "risk_prognosis": "risks, red flags and prognosis are identified",
    "coverage": "every level in view and the clinical question are addressed",
    "relevance": "the report stays on the clinical question, without irrelevant content",
    "granularity": "level-specific detail: named levels, quoted measurements",
    "interpretability": "clear structure and wording a clinician can act on",
}

JUDGE_SYSTEM_ONE = "You grade spine imaging reports drafted by an AI assistant. Be strict and consistent."
JUDGE_SYSTEM = ("You are a senior spine surgeon and musculoskeletal radiologist grading a report drafted by an AI "
                "assistant. Be strict and consistent. Reply with one JSON object only.")


def report_prompt(task_text: str, report: str) -> list[dict[str, str]]:
    dims = "\n".join(f"- {k}: {v}" for k, v in DEFINITIONS.items())
    example = json.dumps({k: 3 for k in JUDGE_DIMENSIONS})
    user = (f"The assistant was given this task:\n<task>\n{task_text}\n</task>\n\n"
            f"It wrote this report:\n<report>\n{report}\n</report>\n\n"
            f"Score the report from 1 (very poor) to 5 (excellent) on each dimension:\n{dims}\n\n"
            "Findings, levels or measurements that are not in the study context count as errors. "
            f"Reply with JSON only, with these keys and integer scores, for example:\n{example}")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def dimension_prompt(task_text: str, report: str, dimension: str) -> list[dict[str, str]]:
    """One dimension: task and report first (the same prefix for all ten, so a local runtime reuses its cache), the
    question and a "Rating (1-5):" cue last (small judges continue the last text)."""
    user = (f"Task given to the assistant:\n<task>\n{task_text}\n</task>\n\nReport it wrote:\n<report>\n{report}\n"
            f"</report>\n\nRate this report on {dimension.replace('_', ' ')} ({DEFINITIONS[dimension]}) on a scale of "
            "1 (very poor) to 5 (excellent). Reply with only the number.\nRating (1-5):")
    return [{"role": "system", "content": JUDGE_SYSTEM_ONE}, {"role": "user", "content": user}]


def parse_digit(text: str) -> int | None:
    """The first standalone digit 1-5 of a reply ("4", "Score: 4/5", "**3**")."""
    m = re.search(r"(?<![\d.])([1-5])(?![\d.]\d)", text)
    return int(m.group(1)) if m else None


def open_prompt(question: str, reference: str, answer: str) -> list[dict[str, str]]:
    user = (f"Question:\n<question>\n{question}\n</question>\n\nReference answer (written by the benchmark):\n"
            f"<reference>\n{reference}\n</reference>\n\nAnswer to grade:\n<answer>\n{answer}\n</answer>\n\n"
            "Score how correct and complete the answer is compared with the reference, from 1 (wrong or missing) to "
            '5 (fully correct). Reply with JSON only, for example: {"score": 3}')
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def _int_1_5(value: Any) -> int | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return int(v) if v == int(v) and 1 <= v <= 5 else None


def _json_objects(text: str) -> list[dict]:
    out = []
    for m in re.finditer(r"\{[^{}]*\}", text, re.DOTALL):
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _key(name: str) -> str:
    return re.sub(r"[^a-z]+", "_", name.lower()).strip("_")


def parse_scores(text: str, keys: tuple[str, ...] = JUDGE_DIMENSIONS) -> dict[str, int | None]:
    """Scores 1-5 per key from a judge reply (JSON first, then "key: n" lines); unscored keys are None."""
    scores: dict[str, int | None] = {k: None for k in keys}
    for obj in _json_objects(text):
        for k, v in obj.items():
            if _key(k) in scores and scores[_key(k)] is None:
                scores[_key(k)] = _int_1_5(v)
    for k in keys:
        if scores[k] is not None:
            continue
        pattern = r"[\s_-]*".join(re.escape(w) for w in k.split("_"))
        m = re.search(rf"{pattern}[\"'\s*]*[:=-]\s*(\d)(?!\d)", text, re.IGNORECASE)
        if m:
            scores[k] = _int_1_5(m.group(1))
    return scores
