"""The spine knowledge base: Markdown documents in resources/knowledge, parsed, chunked and searchable offline.

- ``load_documents(folder)`` parses every document's front matter (strictly; errors name the file) into
  :class:`KnowledgeDoc` objects; ``chunk(doc)`` splits one into :class:`Passage` objects, one per ``##`` section.
- ``KnowledgeIndex(db_path, folder)`` keeps an SQLite FTS5 index of the passages, rebuilt only when the documents
  change; ``search(query, level=None, limit=5)`` returns :class:`Hit` objects ranked by relevance, preferring
  documents about the asked spine level and its neighbours.

The documents are decision support written by engineers and not yet reviewed by a clinician (``reviewed: false``).
Pure Python: never imports Qt or VTK.
"""
from core.knowledge.documents import KnowledgeDoc, KnowledgeError, Passage, chunk, load_documents, parse_document
from core.knowledge.index import Hit, KnowledgeIndex, fts_query
from core.spine.anatomy import find_levels, normalise_level, related_levels

__all__ = [
    "Hit",
    "KnowledgeDoc",
    "KnowledgeError",
    "KnowledgeIndex",
    "Passage",
    "chunk",
    "find_levels",
    "fts_query",
    "load_documents",
    "normalise_level",
    "parse_document",
    "related_levels",
]
