"""Prompt text of a consultation: the system prompt from its Markdown template, and each user turn.

The system prompt is rendered once per conversation (see resources/prompts/consult_system.md). A user turn carries
what changes between questions, in this order: the selected level, an updated study context (only when it changed
since the last turn), the retrieved knowledge passages, then the question.
"""
from __future__ import annotations

import re
from pathlib import Path

from core import paths
from core.consult.retrieval import PassageRef

SYSTEM_TEMPLATE = paths.RESOURCES / "prompts" / "consult_system.md"
PLACEHOLDER = "{{study_context}}"
_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)


def load_template(path: Path | None = None) -> str:
    text = (path or SYSTEM_TEMPLATE).read_text(encoding="utf-8")
    text = _COMMENT.sub("", text).strip()
    if PLACEHOLDER not in text:
        raise ValueError(f"{path or SYSTEM_TEMPLATE}: the system prompt template has no {PLACEHOLDER} placeholder")
    return text


def system_prompt(context_text: str, template: str | None = None) -> str:
    return (template or load_template()).replace(PLACEHOLDER, context_text.strip())


def user_turn(
    question: str,
    level: str | None,
    passages: list[PassageRef] | None = None,
    context_update: str | None = None,
    facts: str | None = None,
) -> str:
    parts = [f"Selected level: {level or 'none'}"]
    if context_update:
        parts.append("Updated study context:\n" + context_update.strip())
    if facts:
        parts.append(facts.strip())
    if passages:
        parts.append("Knowledge passages:\n" + "\n".join(p.to_prompt() for p in passages))
    parts.append("Question: " + question.strip())
    return "\n\n".join(parts)
