"""Full-text search over the knowledge passages: an SQLite FTS5 table (porter stemming), level-aware ranking.

The index lives in one SQLite file (or in memory). ``build()`` hashes the documents' bytes and rebuilds only when
the hash differs from the one stored with the index. ``search()`` accepts arbitrary user text: it keeps word tokens
only, drops stopwords, quotes every token and ORs them, so FTS operators and punctuation are never interpreted.
Passages whose document applies to the asked level (or a neighbouring disc/vertebra) are ranked higher; when no
level is given, the first level named in the query (e.g. "stenosis at L4-5") is used.
"""
from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from core.knowledge.documents import Passage, chunk, default_folder, document_files, load_documents
from core.spine.anatomy import ALL_LEVELS, find_levels, normalise_level, regions_of, related_levels, strip_levels

SCHEMA_VERSION = "1"
LEVEL_BOOST = 1.6  # document tagged with the asked level or an adjacent disc/vertebra
REGION_BOOST = 1.2  # document tagged with another level of the same region
OFF_REGION = 0.5  # document tagged only with levels of other regions (a cervical document for a thoracic question)
CANDIDATES = 60  # FTS rows fetched before level-aware re-ranking
MAX_TOKENS = 32
# bm25 column weights: title, topics, text
_BM25 = "bm25(passages_fts, 4.0, 2.5, 1.0)"

STOPWORDS = frozenset(
    [
        "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
        "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do",
        "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having",
        "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just",
        "me", "more", "most", "my", "no", "nor", "not", "of", "off", "on", "once", "only", "or", "other", "our", "out",
        "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then",
        "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we",
        "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you",
        "your", "please", "tell", "explain", "show", "describe", "give", "much", "many",
    ]
)
_TOKEN_RE = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float  # higher is better; comparable only within one search


def fts_query(text: str) -> str:
    """An FTS5 MATCH expression for arbitrary text: quoted word tokens joined by OR ('' when nothing is left)."""
    tokens = [t.lower() for t in _TOKEN_RE.findall(text or "")]
    kept = [t for t in tokens if t not in STOPWORDS] or tokens
    unique: list[str] = []
    for t in kept:
        if t not in unique:
            unique.append(t)
    return " OR ".join(f'"{t}"' for t in unique[:MAX_TOKENS])


def content_hash(folder: Path | str | None = None) -> str:
    digest = hashlib.sha256(f"schema {SCHEMA_VERSION}\n".encode())
    for path in document_files(folder):
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class KnowledgeIndex:
    """Searchable index of the knowledge documents in ``folder`` (default ``resources/knowledge``), stored at
    ``db_path`` (default: in memory). Call ``build()`` explicitly, or let the first ``search()`` do it."""

    def __init__(self, db_path: Path | str | None = None, folder: Path | str | None = None):
        self.folder = Path(folder) if folder is not None else None
        self.db_path = str(db_path) if db_path is not None else ":memory:"
        if self.db_path != ":memory:":
            Path(self.db_path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.db_path, check_same_thread=False)
        self._lock = threading.RLock()
        self._checked = False
        self._create_schema()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _create_schema(self) -> None:
        with self._lock, self._db:
            has_meta = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() if has_meta else None
            if row and row[0] != SCHEMA_VERSION:  # an index written by another version: start afresh
                self._db.executescript("DROP TABLE meta; DROP TABLE passages; DROP TABLE passages_fts;")
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS passages (
                    rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, doc_id TEXT NOT NULL, title TEXT NOT NULL,
                    section TEXT NOT NULL, text TEXT NOT NULL, levels TEXT NOT NULL, path TEXT NOT NULL,
                    line INTEGER NOT NULL);
                CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5(
                    title, topics, text, tokenize = 'porter unicode61 remove_diacritics 2');
                """
            )

    def _passage(self, row) -> Passage:
        # Paths are stored relative to the folder so a moved checkout keeps a valid index.
        pid, doc_id, title, section, text, levels, name, line = row
        folder = self.folder if self.folder is not None else default_folder()
        return Passage(pid, doc_id, title, section, text, tuple(levels.split()), folder / name, int(line))

    def stored_hash(self) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'content_hash'").fetchone()
        return row[0] if row else None

    def build(self, force: bool = False) -> bool:
        """Index the documents unless the stored content hash matches. Returns True if it (re)built."""
        with self._lock:
            current = content_hash(self.folder)
            self._checked = True
            if not force and current == self.stored_hash():
                return False
            docs = load_documents(self.folder)
            with self._db:
                self._db.execute("DELETE FROM passages")
                self._db.execute("DELETE FROM passages_fts")
                for doc in docs:
                    topics = " ".join(doc.topics) + " " + doc.title
                    for p in chunk(doc):
                        cur = self._db.execute(
                            "INSERT INTO passages (id, doc_id, title, section, text, levels, path, line)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (p.id, p.doc_id, p.title, p.section, p.text, " ".join(p.levels), p.path.name, p.line),
                        )
                        self._db.execute(
                            "INSERT INTO passages_fts (rowid, title, topics, text) VALUES (?, ?, ?, ?)",
                            (cur.lastrowid, p.title, topics, p.text),
                        )
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('content_hash', ?)", (current,))
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            return True

    def ensure_built(self) -> None:
        if not self._checked:
            self.build()

    # -- queries ---------------------------------------------------------------------------------------------
    def passage_count(self) -> int:
        self.ensure_built()
        with self._lock:
            return self._db.execute("SELECT count(*) FROM passages").fetchone()[0]

    def get(self, passage_id: str) -> Passage | None:
        self.ensure_built()
        with self._lock:
            row = self._db.execute(
                "SELECT id, doc_id, title, section, text, levels, path, line FROM passages WHERE id = ?",
                (passage_id,),
            ).fetchone()
        return self._passage(row) if row else None

    def search(self, query: str, level: str | None = None, limit: int = 5, max_per_doc: int | None = 3) -> list[Hit]:
        """Best passages for ``query``; ``level`` (e.g. 'L4-L5', 'l4/5', 'C6') boosts documents about that level
        or its neighbours. At most ``max_per_doc`` passages come from one document (None: no cap), so a hit list
        spans several documents. Never raises on odd input; returns [] when there is nothing to search for."""
        if limit <= 0:
            return []
        query = query or ""
        mentioned = find_levels(query)
        # Level names steer ranking through the boost; as text they would swamp the topic words.
        match = (fts_query(strip_levels(query)) if mentioned else "") or fts_query(query)
        if not match:
            return []
        self.ensure_built()
        asked = normalise_level(level) if level else None
        if asked is None and not level and mentioned:
            asked = mentioned[0]
        with self._lock:
            rows = self._db.execute(
                f"SELECT p.id, p.doc_id, p.title, p.section, p.text, p.levels, p.path, p.line, {_BM25}"
                " FROM passages_fts JOIN passages p ON p.rowid = passages_fts.rowid"
                f" WHERE passages_fts MATCH ? ORDER BY {_BM25} LIMIT ?",
                (match, max(CANDIDATES, limit * 4)),
            ).fetchall()
        hits = [Hit(self._passage(r[:8]), -float(r[8]) * _level_factor(r[5].split(), asked)) for r in rows]
        hits.sort(key=lambda h: (-h.score, h.passage.id))
        kept: list[Hit] = []
        per_doc: dict[str, int] = {}
        for hit in hits:
            n = per_doc.get(hit.passage.doc_id, 0)
            if max_per_doc is None or n < max_per_doc:
                per_doc[hit.passage.doc_id] = n + 1
                kept.append(hit)
            if len(kept) == limit:
                break
        return kept


def _level_factor(doc_levels: list[str], asked: str | None) -> float:
    if not asked or asked == ALL_LEVELS or ALL_LEVELS in doc_levels:
        return 1.0
    if related_levels(asked) & set(doc_levels):
        return LEVEL_BOOST
    asked_regions = regions_of(asked)
    # A junctional tag (C7-T1) alone does not make a cervical document thoracic; adjacency was handled above.
    own = [lv for lv in doc_levels if len(regions_of(lv)) == 1] or doc_levels
    if any(regions_of(lv) & asked_regions for lv in own):
        return REGION_BOOST
    return OFF_REGION if doc_levels else 1.0
