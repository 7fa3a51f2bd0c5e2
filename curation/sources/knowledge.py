"""Knowledge-base ingest: every document of resources/knowledge (core.knowledge) becomes a source, every ``##``
section a chunk whose location is ``<file>:<line>`` of its heading, so an item drafted from a passage points at the
exact lines that support it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from core.knowledge import chunk, load_documents
from core.paths import REPO_ROOT
from core.spine.anatomy import regions_of
from curation.store import Chunk, CurationStore, Source


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def doc_region(levels: tuple[str, ...]) -> str:
    """'cervical' / 'thoracic' / 'lumbar' / 'sacral', 'multiple' when a document spans regions, 'all' for all."""
    if "all" in levels:
        return "all"
    regions: set[str] = set()
    for lv in levels:
        regions |= set(regions_of(lv))
    if len(regions) == 1:
        return next(iter(regions))
    return "multiple" if regions else "all"


def ingest_knowledge(store: CurationStore, folder: Path | str | None = None,
                     only: list[str] | None = None) -> tuple[int, int]:
    """Add (or refresh) the knowledge documents as sources and their sections as chunks; returns (docs, chunks).

    ``only``: restrict to these document ids (tests use a few documents)."""
    docs = load_documents(folder)
    if only:
        wanted = set(only)
        docs = [d for d in docs if d.id in wanted]
        missing = wanted - {d.id for d in docs}
        if missing:
            raise KeyError(f"knowledge document(s) not found: {sorted(missing)}")
    n_chunks = 0
    for doc in docs:
        source_id = f"kb:{doc.id}"
        store.upsert_source(Source(
            id=source_id, kind="knowledge_doc", title=doc.title, path=_rel(doc.path),
            sha256=hashlib.sha256(doc.path.read_bytes()).hexdigest(),
            licence="project knowledge base (Apache-2.0), written in the project's own words",
            origin="resources/knowledge", dataset="knowledge", modality=",".join(doc.modalities),
            region=doc_region(doc.levels),
            meta={"topics": list(doc.topics), "levels": list(doc.levels), "references": list(doc.references),
                  "reviewed": doc.reviewed},
        ))
        for p in chunk(doc):
            store.upsert_chunk(Chunk(
                id=f"kb:{p.id}", source_id=source_id, location=f"{_rel(p.path)}:{p.line}", title=p.title,
                text=p.text, levels=list(p.levels), meta={"section": p.section, "doc_id": p.doc_id,
                                                          "references": list(doc.references)},
            ))
            n_chunks += 1
    return len(docs), n_chunks
