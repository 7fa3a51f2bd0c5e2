"""The curation store: one SQLite file (sqlite-utils) holding sources, chunks, items, drafts, revisions and reviews.

    store = CurationStore("curation.db")          # applies pending named migrations
    store.upsert_source(Source(...)); store.upsert_chunk(Chunk(...))
    item_id = store.add_item(item_dict)            # provenance fields are required, see REQUIRED_PROVENANCE
    store.add_draft(...); store.add_revision(...); store.add_review(...)

Provenance lives on every item row: the source id and location (file:line, label value, CSV row), the case id for
imaging items, the generator (model file name or "template:<name>" / "labels:<name>"), its kind (llm / template /
labels), the prompt template name and version, the seed and timestamps. An item never exists without a draft row
(what the generator produced) and a revision row (what the revise stage changed and why), so an exported item can be
traced back to the passage or label that supports it.

Review status (``items.review_status``) is honest about who looked at an item:
``pending`` (nobody yet), ``auto_gated`` (passed the automatic quality gates — NOT a clinician review),
``auto_rejected`` (failed a gate; the reason is in ``gate_report``), ``accepted`` / ``edited`` / ``rejected``
(a human reviewer's decision, from the ``reviews`` table).

Migrations are named and ordered like core/library/migrations.py: never edit a shipped one, append a new one.
Every write is its own transaction; one lock serialises access so worker threads may share the store.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import sqlite_utils

from core.library.migrations import migrate as library_migrate

REVIEW_STATUSES = ("pending", "auto_gated", "auto_rejected", "accepted", "edited", "rejected")
HUMAN_STATUSES = ("accepted", "edited", "rejected")
GENERATOR_KINDS = ("llm", "template", "labels")
REQUIRED_PROVENANCE = ("source_id", "location", "generator", "generator_kind", "prompt_template", "prompt_version",
                       "seed")
JSON_COLUMNS = ("levels", "content", "images", "gate_report", "meta", "parsed", "critique", "changes", "result",
                "edited_content", "files")


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def stable_id(*parts: object, n: int = 16) -> str:
    """A short deterministic id from its parts (same inputs, same id: reruns are idempotent)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return digest[:n]


# --- migrations ---------------------------------------------------------------------------------------------------
def _m001_initial(db: sqlite_utils.Database) -> None:
    db["sources"].create(
        {"id": str, "kind": str, "title": str, "path": str, "sha256": str, "licence": str, "origin": str,
         "dataset": str, "modality": str, "region": str, "meta": str, "ingested_at": str},
        pk="id",
    )
    db["chunks"].create(
        {"id": str, "source_id": str, "location": str, "title": str, "text": str, "levels": str, "sha256": str,
         "meta": str},
        pk="id", foreign_keys=[("source_id", "sources", "id")],
    )
    db["chunks"].create_index(["source_id"])
    db["items"].create(
        {"id": str, "job_key": str, "task": str, "subtask": str, "modality": str, "region": str, "levels": str,
         "content": str, "images": str, "source_id": str, "chunk_id": str, "location": str, "case_id": str,
         "group_key": str, "generator": str, "generator_kind": str, "prompt_template": str, "prompt_version": str,
         "seed": int,
         "draft_id": int, "revision_id": int, "review_status": str, "gate_report": str, "split": str,
         "created_at": str, "updated_at": str},
        pk="id", foreign_keys=[("source_id", "sources", "id")],
    )
    db["items"].create_index(["job_key"], unique=True)
    db["items"].create_index(["review_status"])
    db["drafts"].create(
        {"id": int, "job_key": str, "item_id": str, "task": str, "generator": str, "generator_kind": str,
         "prompt_template": str, "prompt_version": str, "seed": int, "prompt": str, "raw_output": str,
         "parsed": str, "ok": int, "error": str, "elapsed_s": float, "created_at": str},
        pk="id",
    )
    db["drafts"].create_index(["job_key"])
    db["revisions"].create(
        {"id": int, "item_id": str, "draft_id": int, "generator": str, "prompt_template": str, "prompt_version": str,
         "critique": str, "changes": str, "result": str, "ok": int, "elapsed_s": float, "created_at": str},
        pk="id",
    )
    db["revisions"].create_index(["item_id"])
    db["reviews"].create(
        {"id": int, "item_id": str, "reviewer": str, "decision": str, "reason": str, "edited_content": str,
         "created_at": str},
        pk="id", foreign_keys=[("item_id", "items", "id")],
    )
    db["reviews"].create_index(["item_id"])


def _m002_runs_and_phi(db: sqlite_utils.Database) -> None:
    """Runs (for resumability reports) and salted hashes of names met while de-identifying DICOM (PHI scan)."""
    db["runs"].create(
        {"id": int, "command": str, "args": str, "started_at": str, "finished_at": str, "counts": str}, pk="id"
    )
    db["phi_tokens"].create({"token_hash": str, "origin": str}, pk="token_hash")


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("001_initial", _m001_initial),
    ("002_runs_and_phi", _m002_runs_and_phi),
]


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply the curation store's pending migrations (same mechanism as the study library's)."""
    return library_migrate(db, MIGRATIONS)


# --- records ------------------------------------------------------------------------------------------------------
@dataclass
class Source:
    id: str  # "kb:<doc-id>" or "case:<dataset>:<subject>"
    kind: str  # "knowledge_doc" | "case"
    title: str
    path: str = ""
    sha256: str = ""
    licence: str = ""
    origin: str = ""
    dataset: str = ""
    modality: str = ""
    region: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chunk:
    id: str
    source_id: str
    location: str  # "resources/knowledge/x.md:12", "label value 22", "findings.csv row 3"
    title: str
    text: str
    levels: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (json.dumps(v, ensure_ascii=False) if k in JSON_COLUMNS and v is not None
                and not isinstance(v, str) else v) for k, v in row.items()}


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for k in JSON_COLUMNS:
        if k in out and isinstance(out[k], str) and out[k]:
            try:
                out[k] = json.loads(out[k])
            except ValueError:
                pass
    return out


class CurationStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA journal_mode = WAL")
        self._lock = threading.RLock()
        with self._lock:
            migrate(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- sources and chunks -------------------------------------------------------------------------------------
    def upsert_source(self, source: Source) -> None:
        row = _encode({**asdict(source), "ingested_at": now()})
        with self._lock, self.db.conn:
            self.db["sources"].upsert(row, pk="id")

    def upsert_chunk(self, chunk: Chunk) -> None:
        row = asdict(chunk)
        row["sha256"] = hashlib.sha256(chunk.text.encode("utf-8")).hexdigest()
        with self._lock, self.db.conn:
            self.db["chunks"].upsert(_encode(row), pk="id")

    def source(self, source_id: str) -> dict[str, Any] | None:
        with self._lock:
            rows = list(self.db["sources"].rows_where("id = ?", [source_id]))
        return _decode(rows[0]) if rows else None

    def sources(self, kind: str | None = None) -> list[dict[str, Any]]:
        where, args = ("kind = ?", [kind]) if kind else (None, None)
        with self._lock:
            return [_decode(r) for r in self.db["sources"].rows_where(where, args, order_by="id")]

    def chunk(self, chunk_id: str) -> dict[str, Any] | None:
        with self._lock:
            rows = list(self.db["chunks"].rows_where("id = ?", [chunk_id]))
        return _decode(rows[0]) if rows else None

    def chunks(self, source_id: str | None = None) -> list[dict[str, Any]]:
        where, args = ("source_id = ?", [source_id]) if source_id else (None, None)
        with self._lock:
            return [_decode(r) for r in self.db["chunks"].rows_where(where, args, order_by="id")]

    # --- drafts, items, revisions -------------------------------------------------------------------------------
    def has_job(self, job_key: str) -> bool:
        """True when an item for this job (source x task x generator x prompt version x seed) already exists."""
        with self._lock:
            return bool(list(self.db["items"].rows_where("job_key = ?", [job_key], limit=1)))

    def add_draft(self, **fields: Any) -> int:
        fields.setdefault("created_at", now())
        with self._lock, self.db.conn:
            return int(self.db["drafts"].insert(_encode(fields)).last_pk)

    def add_item(self, item: dict[str, Any]) -> str:
        missing = [k for k in REQUIRED_PROVENANCE if item.get(k) in (None, "")]
        if missing:
            raise ValueError(f"item without provenance field(s) {missing}: every item must trace back to a source")
        if item["generator_kind"] not in GENERATOR_KINDS:
            raise ValueError(f"generator_kind must be one of {GENERATOR_KINDS}, got {item['generator_kind']!r}")
        status = item.setdefault("review_status", "pending")
        if status not in REVIEW_STATUSES:
            raise ValueError(f"unknown review status {status!r}")
        stamp = now()
        item.setdefault("created_at", stamp)
        item["updated_at"] = stamp
        with self._lock, self.db.conn:
            self.db["items"].upsert(_encode(item), pk="id")
        return item["id"]

    def update_item(self, item_id: str, **fields: Any) -> None:
        if "review_status" in fields and fields["review_status"] not in REVIEW_STATUSES:
            raise ValueError(f"unknown review status {fields['review_status']!r}")
        encoded = _encode(fields)
        with self._lock, self.db.conn:
            current = self.db["items"].get(item_id)  # raises NotFoundError for an unknown id
            changed = {k: v for k, v in encoded.items() if current.get(k) != v}
            if not changed:  # re-running the gates must not restamp unchanged items (the export carries the stamp)
                return
            changed["updated_at"] = now()
            self.db["items"].update(item_id, changed)

    def add_revision(self, **fields: Any) -> int:
        fields.setdefault("created_at", now())
        with self._lock, self.db.conn:
            return int(self.db["revisions"].insert(_encode(fields)).last_pk)

    def item(self, item_id: str) -> dict[str, Any] | None:
        with self._lock:
            rows = list(self.db["items"].rows_where("id = ?", [item_id]))
        return _decode(rows[0]) if rows else None

    def items(self, where: str | None = None, args: list[Any] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [_decode(r) for r in self.db["items"].rows_where(where, args, order_by="id")]

    def iter_items(self, statuses: tuple[str, ...] | None = None) -> Iterator[dict[str, Any]]:
        if statuses:
            marks = ", ".join("?" for _ in statuses)
            yield from self.items(f"review_status IN ({marks})", list(statuses))
        else:
            yield from self.items()

    def draft(self, draft_id: int) -> dict[str, Any] | None:
        with self._lock:
            rows = list(self.db["drafts"].rows_where("id = ?", [draft_id]))
        return _decode(rows[0]) if rows else None

    def revision(self, revision_id: int) -> dict[str, Any] | None:
        with self._lock:
            rows = list(self.db["revisions"].rows_where("id = ?", [revision_id]))
        return _decode(rows[0]) if rows else None

    def revisions(self, item_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [_decode(r) for r in self.db["revisions"].rows_where("item_id = ?", [item_id], order_by="id")]

    # --- reviews ------------------------------------------------------------------------------------------------
    def add_review(self, item_id: str, reviewer: str, decision: str, reason: str = "",
                   edited_content: dict[str, Any] | None = None) -> int:
        if decision not in ("accept", "edit", "reject"):
            raise ValueError(f"decision must be accept, edit or reject, got {decision!r}")
        if not reviewer.strip():
            raise ValueError("a review needs a reviewer id")
        if decision == "reject" and not reason.strip():
            raise ValueError("a rejection needs a reason")
        if decision == "edit" and not edited_content:
            raise ValueError("an edit needs the edited content")
        if self.item(item_id) is None:
            raise KeyError(f"no item {item_id!r}")
        row = {"item_id": item_id, "reviewer": reviewer.strip(), "decision": decision, "reason": reason,
               "edited_content": edited_content, "created_at": now()}
        with self._lock, self.db.conn:
            review_id = int(self.db["reviews"].insert(_encode(row)).last_pk)
        self._apply_reviews(item_id)
        return review_id

    def reviews(self, item_id: str | None = None) -> list[dict[str, Any]]:
        where, args = ("item_id = ?", [item_id]) if item_id else (None, None)
        with self._lock:
            return [_decode(r) for r in self.db["reviews"].rows_where(where, args, order_by="id")]

    def _apply_reviews(self, item_id: str) -> None:
        """An item's human status: each reviewer's latest decision counts; any rejection rejects; an edit's content
        replaces the item's content (the pre-edit content stays in the drafts/revisions for the record)."""
        latest: dict[str, dict[str, Any]] = {}
        for r in self.reviews(item_id):
            latest[r["reviewer"]] = r
        decisions = [r["decision"] for r in latest.values()]
        if not decisions:
            return
        fields: dict[str, Any] = {}
        if "reject" in decisions:
            fields["review_status"] = "rejected"
        elif "edit" in decisions:
            fields["review_status"] = "edited"
            last_edit = max((r for r in latest.values() if r["decision"] == "edit"), key=lambda r: r["id"])
            fields["content"] = last_edit["edited_content"]
        else:
            fields["review_status"] = "accepted"
        self.update_item(item_id, **fields)

    # --- runs and PHI tokens ------------------------------------------------------------------------------------
    def start_run(self, command: str, args: dict[str, Any]) -> int:
        with self._lock, self.db.conn:
            return int(self.db["runs"].insert({"command": command, "args": json.dumps(args, default=str),
                                               "started_at": now()}).last_pk)

    def finish_run(self, run_id: int, counts: dict[str, Any]) -> None:
        with self._lock, self.db.conn:
            self.db["runs"].update(run_id, {"finished_at": now(), "counts": json.dumps(counts)})

    def add_phi_token_hashes(self, hashes: dict[str, str]) -> None:
        """Salted hashes (never the names themselves) of name tokens found in DICOM headers."""
        if not hashes:
            return
        with self._lock, self.db.conn:
            self.db["phi_tokens"].upsert_all([{"token_hash": h, "origin": o} for h, o in hashes.items()],
                                             pk="token_hash")

    def phi_token_hashes(self) -> set[str]:
        with self._lock:
            return {r["token_hash"] for r in self.db["phi_tokens"].rows}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {t: self.db[t].count for t in ("sources", "chunks", "items", "drafts", "revisions", "reviews")}
