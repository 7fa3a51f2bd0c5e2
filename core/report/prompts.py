"""Prompts and answer schemas of the drafting calls: one per level row, one for impression and recommendations.

Free-text fields are strings of letters and punctuation only (a JSON-schema ``pattern`` that becomes part of the
llama.cpp grammar): the model cannot write a digit, so it can neither invent a measured value nor name a level
that is not in view. The summary's impression may name levels, but only the levels in view (they are spelled out as
alternatives in the pattern).
"""
from __future__ import annotations

import re

from core.report.model import ASPECT_TITLES
from core.report.templates import ReportTemplate

TEXT_CHARS = "A-Za-z ,.;:()/'+-"
ROW_ITEMS = 120  # characters per level-row field
SUMMARY_ITEMS = 90  # characters (or level names) per summary sentence

SYSTEM = (
    "You draft parts of a structured spine imaging report for a clinician, who will check every word. "
    "Answer only with the JSON asked for. Write short, plain clinical phrases about this study only. "
    "Never write numbers or measurements: measured values are added by the software. "
    "If the images cannot show something, write: not assessable. If nothing abnormal is described, write: "
    "no abnormality described."
)


def text_schema(items: int, levels: list[str] | None = None) -> dict:
    """A bounded string of letters/punctuation, optionally also containing the given level names."""
    alternatives = [f"[{TEXT_CHARS}]"] + [re.escape(lv) for lv in sorted(levels or [], key=len, reverse=True)]
    longest = max([1] + [len(lv) for lv in levels or []])
    return {"type": "string", "pattern": f"^({'|'.join(alternatives)}){{0,{items}}}$", "x-max-chars": items * longest}


def row_schema(template: ReportTemplate, kind: str, fixed: set[str] = frozenset()) -> dict:
    """The answer of one row; ``fixed`` names scales already set (e.g. Meyerding from a measured slip)."""
    props: dict[str, dict] = {aspect: text_schema(ROW_ITEMS) for aspect in template.aspects[kind]}
    for scale in template.scales_for(kind):
        if scale.assessable and scale.name not in fixed:
            props[scale.name] = {"enum": scale.choices}
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def summary_schema(levels: list[str], postoperative: bool) -> dict:
    def items(schema: dict, lo: int, hi: int) -> dict:
        return {"type": "array", "items": schema, "minItems": lo, "maxItems": hi}

    plain = text_schema(SUMMARY_ITEMS)
    props = {
        "impression": items(text_schema(SUMMARY_ITEMS, levels), 1, 3),
        "advice": items(plain, 1, 3),
        "treatment": items(plain, 1, 3),
        "risk": items(plain, 1, 2),
    }
    if postoperative:
        props["postop"] = items(plain, 1, 2)
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def passages_block(passages, max_chars: int = 500) -> str:
    """Background for the model, without passage ids (small models copy them into the text; the report's
    diagnostic basis records which passages were given)."""
    if not passages:
        return ""
    lines = []
    for p in passages:
        text = " ".join(p.text.split())
        if len(text) > max_chars:
            text = text[:max_chars].rsplit(" ", 1)[0] + " ..."
        lines.append(f"- {p.title}: {text}")
    return "Background knowledge (for you, not to be copied):\n" + "\n".join(lines)


def row_prompt(template: ReportTemplate, context_text: str, level: str, kind: str, note: str,
               measurements: list[str], passages, fixed: set[str] = frozenset()) -> list[dict]:
    what = "vertebra" if kind == "vertebra" else "intervertebral disc segment"
    lines = [context_text, "", f"Level: {level} ({what}){' - ' + note if note else ''}"]
    lines.append("Measurements at this level: " + ("; ".join(measurements) if measurements else "none"))
    lines.append("Describe each field in one short phrase:")
    for aspect, hint in template.aspects[kind].items():
        lines.append(f"- {aspect} ({ASPECT_TITLES[aspect]}): {hint}")
    for scale in template.scales_for(kind):
        if scale.assessable and scale.name not in fixed:
            lines.append(f"- {scale.name}: choose one of {', '.join(scale.choices)} ({scale.label}; {scale.hint})")
    if block := passages_block(passages):
        lines += ["", block]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def summary_prompt(template: ReportTemplate, context_text: str, findings: list[str], postoperative: bool,
                   passages) -> list[dict]:
    lines = [context_text, "", "Drafted findings:"]
    lines += [f"- {f}" for f in findings] or ["- no level findings drafted"]
    lines += [
        "",
        "Write: impression (the main findings, most important first), advice (for the patient, in plain words), "
        "treatment (evidence-based options a clinician could consider), risk (risk and prognosis)"
        + (", postop (post-operative management)" if postoperative else "") + ".",
        template.summary,
    ]
    if block := passages_block(passages):
        lines += ["", block]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]
