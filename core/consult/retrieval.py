"""Knowledge retrieval for a consultation: the project's spine knowledge base (core.knowledge) when available.

Any object with ``search(query, level=None, limit=5) -> [hit]`` (hit.passage with id, title, text) works as a
retriever. :func:`default_retriever` opens ``core.knowledge.KnowledgeIndex`` (its SQLite FTS5 index cached in the
data folder) and returns None when the package or its documents are missing, so consultations still work without.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from core import paths

log = logging.getLogger(__name__)
MAX_PASSAGE_CHARS = 700  # per passage: keeps the prompt small for small models and short context windows


class Retriever(Protocol):
    def search(self, query: str, level: str | None = None, limit: int = 5) -> list[Any]: ...


@dataclass(frozen=True)
class PassageRef:
    id: str
    title: str
    text: str = ""

    def to_prompt(self) -> str:
        text = " ".join(self.text.split())
        if len(text) > MAX_PASSAGE_CHARS:
            text = text[:MAX_PASSAGE_CHARS].rsplit(" ", 1)[0] + " ..."
        return f"[{self.id}] {self.title}: {text}"

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title}


def default_retriever() -> Retriever | None:
    try:
        from core.knowledge import KnowledgeIndex
    except ImportError as exc:
        log.info("no knowledge base: %s", exc)
        return None
    try:
        index = KnowledgeIndex(paths.data_dir() / "knowledge.db")
        index.build()
        if index.passage_count() == 0:
            return None
        return index
    except Exception as exc:  # noqa: BLE001 - a broken knowledge base must not stop a consultation
        log.warning("knowledge base unavailable: %s", exc)
        return None


def retrieve(retriever: Retriever | None, question: str, level: str | None, limit: int = 3) -> list[PassageRef]:
    if retriever is None or limit <= 0:
        return []
    hits = retriever.search(question, level=level, limit=limit)
    refs = []
    for hit in hits:
        p = getattr(hit, "passage", hit)
        title = getattr(p, "title", "")
        section = getattr(p, "section", "")
        if section and section not in title:
            title = f"{title} - {section}"
        refs.append(PassageRef(str(p.id), title, getattr(p, "text", "")))
    return refs
