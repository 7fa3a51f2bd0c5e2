"""Conversations and messages in the library's SQLite file (tables from migration 002_conversations).

Every write is its own committed transaction, so a crash loses nothing that was finished. An answer being streamed
is inserted with status 'streaming' at its first token and rewritten as it grows (see consultation.py); a process
killed mid-answer leaves that row, which :meth:`ConversationStore.mark_interrupted` turns into 'interrupted'.
The connection may be shared by the GUI thread and the model's worker thread: every access holds one lock.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from core.library.database import LibraryStore


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class StoredMessage:
    id: int
    conversation_id: int
    seq: int
    role: str
    content: str
    sent_content: str = ""
    status: str = "complete"
    active: bool = True
    level: str | None = None
    passages: list[dict[str, str]] = field(default_factory=list)
    model: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    grounding: dict[str, Any] = field(default_factory=dict)  # CheckedAnswer JSON of a grounded answer

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StoredMessage:
        return cls(
            id=row["id"], conversation_id=row["conversation_id"], seq=row["seq"], role=row["role"],
            content=row["content"] or "", sent_content=row["sent_content"] or "", status=row["status"] or "",
            active=bool(row["active"]), level=row["level"], passages=json.loads(row["passages"] or "[]"),
            model=row["model"] or "", stats=json.loads(row["stats"] or "{}"), created_at=row["created_at"] or "",
            grounding=json.loads(row.get("grounding") or "{}"),
        )


class ConversationStore(LibraryStore):
    # --- conversations ------------------------------------------------------------------------------------------
    def create_conversation(self, study_key: str, series_uid: str, title: str, model: str, system_prompt: str,
                            context_text: str) -> int:
        stamp = now()
        with self._lock, self.db.conn:
            return self.db["conversations"].insert({
                "study_key": study_key, "series_uid": series_uid, "title": title, "model": model,
                "system_prompt": system_prompt, "context_text": context_text, "created_at": stamp, "updated_at": stamp,
            }).last_pk

    def conversation(self, conversation_id: int) -> dict[str, Any]:
        with self._lock:
            rows = list(self.db["conversations"].rows_where("id = ?", [conversation_id]))
        if not rows:
            raise KeyError(f"conversation {conversation_id} is not in {self.path}")
        return rows[0]

    def conversations(self, study_key: str | None = None) -> list[dict[str, Any]]:
        """Newest first; with the number of active messages."""
        where, args = ("where study_key = ?", [study_key]) if study_key is not None else ("", [])
        with self._lock:
            return list(self.db.query(
                "select c.*, (select count(*) from messages m where m.conversation_id = c.id and m.active = 1 "
                f"and m.role != 'note') as n_messages from conversations c {where} order by updated_at desc, id desc",
                args))

    def rename(self, conversation_id: int, title: str) -> None:
        with self._lock, self.db.conn:
            self.db["conversations"].update(conversation_id, {"title": title})

    def delete_conversation(self, conversation_id: int) -> None:
        with self._lock, self.db.conn:
            self.db["messages"].delete_where("conversation_id = ?", [conversation_id])
            self.db["conversations"].delete(conversation_id)

    # --- messages -----------------------------------------------------------------------------------------------
    def messages(self, conversation_id: int, include_inactive: bool = False) -> list[StoredMessage]:
        where = "conversation_id = ?" + ("" if include_inactive else " and active = 1")
        with self._lock:
            rows = self.db["messages"].rows_where(where, [conversation_id], order_by="seq, id")
            return [StoredMessage.from_row(r) for r in rows]

    def add_message(self, conversation_id: int, role: str, content: str, **fields: Any) -> StoredMessage:
        stamp = now()
        with self._lock, self.db.conn:
            seq = self.db.execute("select coalesce(max(seq), 0) + 1 from messages where conversation_id = ?",
                                  [conversation_id]).fetchone()[0]
            row = {
                "conversation_id": conversation_id, "seq": seq, "role": role, "content": content,
                "sent_content": fields.pop("sent_content", ""), "status": fields.pop("status", "complete"),
                "active": 1, "level": fields.pop("level", None),
                "passages": json.dumps(fields.pop("passages", [])), "model": fields.pop("model", ""),
                "stats": json.dumps(fields.pop("stats", {})), "created_at": stamp, "updated_at": stamp,
                "grounding": json.dumps(fields.pop("grounding", {})),
            }
            if fields:
                raise TypeError(f"unknown message fields: {sorted(fields)}")
            pk = self.db["messages"].insert(row).last_pk
            self.db["conversations"].update(conversation_id, {"updated_at": stamp})
            row["id"] = pk
        return StoredMessage.from_row(row)

    def update_message(self, message_id: int, **fields: Any) -> None:
        for key in ("passages", "stats", "grounding"):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        fields["updated_at"] = now()
        with self._lock, self.db.conn:
            self.db["messages"].update(message_id, fields)

    def deactivate(self, message_ids: list[int]) -> None:
        if not message_ids:
            return
        marks = ",".join("?" * len(message_ids))
        with self._lock, self.db.conn:
            self.db.execute(f"update messages set active = 0 where id in ({marks})", message_ids)

    def mark_interrupted(self, conversation_id: int | None = None) -> int:
        """Rows left 'streaming' by a process that died: call when no answer is being generated."""
        where, args = "status = 'streaming'", []
        if conversation_id is not None:
            where += " and conversation_id = ?"
            args.append(conversation_id)
        with self._lock, self.db.conn:
            return self.db.execute(f"update messages set status = 'interrupted' where {where}", args).rowcount
