"""Named, ordered schema migrations for the library database.

Each migration runs once, inside a transaction, and is recorded by name in ``_migrations``. Never edit a
migration that has shipped: append a new one.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import sqlite_utils


def _m001_initial(db: sqlite_utils.Database) -> None:
    db["studies"].create(
        {
            "id": int,
            "study_key": str,
            "study_uid": str,
            "description": str,
            "study_date": str,
            "patient_age": str,
            "patient_sex": str,
            "modalities": str,
            "imported_at": str,
        },
        pk="id",
    )
    db["studies"].create_index(["study_key"], unique=True)
    db["series"].create(
        {
            "series_uid": str,
            "study_id": int,
            "kind": str,
            "modality": str,
            "description": str,
            "n_images": int,
            "warnings": str,
            "imported_at": str,
            "thumbnail": bytes,
        },
        pk="series_uid",
        foreign_keys=[("study_id", "studies", "id")],
    )
    db["files"].create(
        {"path": str, "series_uid": str, "size": int, "mtime": float},
        pk="path",
        foreign_keys=[("series_uid", "series", "series_uid")],
    )
    db["files"].create_index(["series_uid"])


def _m002_conversations(db: sqlite_utils.Database) -> None:
    """Model consultations about a study (core.consult): one row per conversation, one per message.

    ``study_key`` is the library's studies.study_key (not a foreign key: removing a study must not fail because
    conversations mention it). ``system_prompt`` freezes the prompt a conversation started with, and
    ``messages.sent_content`` the exact text a user turn sent to the model, so a continued conversation re-sends the
    same bytes. A message being streamed has status 'streaming' and is updated as it grows.
    """
    db["conversations"].create(
        {
            "id": int,
            "study_key": str,
            "series_uid": str,
            "title": str,
            "model": str,
            "system_prompt": str,
            "context_text": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
    )
    db["conversations"].create_index(["study_key", "updated_at"])
    db["messages"].create(
        {
            "id": int,
            "conversation_id": int,
            "seq": int,
            "role": str,  # user | assistant | note
            "content": str,
            "sent_content": str,
            "status": str,  # complete | streaming | cancelled | error | interrupted
            "active": int,  # 0 once replaced by Regenerate or Edit-and-resend (kept for the record)
            "level": str,
            "passages": str,  # JSON list of {"id", "title"} given to the model for this answer
            "model": str,
            "stats": str,  # JSON GenerationStats
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("conversation_id", "conversations", "id")],
    )
    db["messages"].create_index(["conversation_id", "seq"])


def _m003_levels(db: sqlite_utils.Database) -> None:
    """Vertebral labellings per series (core.spine.store): the current one, and every saved version for the record.

    ``series_uid`` is not a foreign key: a study can be labelled while it is open without being imported, and
    removing a series must not fail because it was labelled. ``labelling`` is the JSON of
    core.spine.labelling.SpineLabelling; method/user/saved_at are copied out of it for listing.
    """
    db["spine_levels"].create(
        {"series_uid": str, "labelling": str, "method": str, "user": str, "confidence": float, "saved_at": str},
        pk="series_uid",
    )
    db["spine_levels_history"].create(
        {"id": int, "series_uid": str, "labelling": str, "method": str, "user": str, "saved_at": str},
        pk="id",
    )
    db["spine_levels_history"].create_index(["series_uid", "id"])


def _m005_measurements(db: sqlite_utils.Database) -> None:
    """Spine measurements per series (core.spine.measure.store): one row per measurement.

    ``series_uid`` is not a foreign key (as for levels). ``points`` and ``details`` are JSON; ``method`` is
    "auto:<method>@<version>" or "user:<name>"; ``created`` is when it was measured, ``saved_at`` when stored.
    """
    db["spine_measurements"].create(
        {"id": int, "series_uid": str, "kind": str, "name": str, "level": str, "value": float, "unit": str,
         "points": str, "method": str, "created": str, "details": str, "saved_at": str},
        pk="id",
    )
    db["spine_measurements"].create_index(["series_uid", "id"])


def _m004_reports(db: sqlite_utils.Database) -> None:
    """Structured reports (core.report.store): one row per report, one per saved version.

    ``series_uid`` is not a foreign key (a report can be drafted for a study opened without importing it). Every save
    is a new ``report_versions`` row with its author, time and a diff summary; ``document`` is the JSON of
    core.report.model.SpineReport. ``signed_version`` is set once the report is signed: it is locked from then on.
    """
    db["reports"].create(
        {
            "report_id": str,
            "series_uid": str,
            "study_key": str,
            "created_at": str,
            "updated_at": str,
            "latest_version": int,
            "signed_version": int,
            "signed_by": str,
            "signed_at": str,
        },
        pk="report_id",
    )
    db["reports"].create_index(["series_uid", "updated_at"])
    db["report_versions"].create(
        {"id": int, "report_id": str, "version": int, "author": str, "saved_at": str, "summary": str,
         "signed": int, "document": str},
        pk="id",
        foreign_keys=[("report_id", "reports", "report_id")],
    )
    db["report_versions"].create_index(["report_id", "version"], unique=True)


def _m006_message_grounding(db: sqlite_utils.Database) -> None:
    """The check of a grounded answer (core.findings.check.CheckedAnswer as JSON): its statements with their
    citations, the statements not shown as findings with the reason, and what would need measuring."""
    db["messages"].add_column("grounding", str)


Migration = Callable[[sqlite_utils.Database], None]

MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_initial", _m001_initial),
    ("002_conversations", _m002_conversations),
    ("003_levels", _m003_levels),
    ("004_reports", _m004_reports),
    ("005_measurements", _m005_measurements),
    ("006_message_grounding", _m006_message_grounding),
]


def applied(db: sqlite_utils.Database) -> list[str]:
    if "_migrations" not in db.table_names():
        return []
    return [row["name"] for row in db["_migrations"].rows_where(order_by="rowid")]


def migrate(db: sqlite_utils.Database, migrations: list[tuple[str, Migration]] | None = None) -> list[str]:
    """Apply pending migrations in order; return the names applied now.

    ``migrations`` defaults to the library's; other SQLite stores (e.g. curation's) pass their own list.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    if "_migrations" not in db.table_names():
        db["_migrations"].create({"name": str, "applied_at": str}, pk="name")
    done = set(applied(db))
    ran = []
    for name, fn in migrations:
        if name in done:
            continue
        with db.atomic():
            fn(db)
            db["_migrations"].insert({"name": name, "applied_at": dt.datetime.now(dt.UTC).isoformat()})
        ran.append(name)
    return ran
