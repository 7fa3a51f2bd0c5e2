"""A multi-turn consultation about one study: ask, stream, cancel, regenerate, edit-and-resend, persisted.

    consult = Consultation(backend, ConversationStore(), context, study_key=key, retriever=default_retriever())
    answer = consult.ask("Is the disc height reduced?", level="L4-L5")
    answer.notes                       # visible notes (turns dropped to fit the context window, images not sent...)
    for piece in answer: print(piece, end="")      # streams; consult.cancel() from another thread stops it
    answer.message                     # the stored assistant message (status complete / cancelled / error)
    consult.regenerate(); consult.edit_and_resend(message_id, "new text")

Prompt layout, kept byte-stable so the runtime's KV cache is reused: the system prompt (template + study context) is
frozen when the conversation starts and stored with it; every user turn is stored exactly as sent
(``sent_content``: selected level, context changes, knowledge passages, question); answers are re-sent verbatim.
So the prompt of question N+1 starts with the whole prompt of question N followed by its answer.

Persistence: the question (and any note) is committed before generation starts; the answer row is created at its
first token with status 'streaming', rewritten at most every ``FLUSH_SECONDS``, and finalised with its status. A
kill -9 mid-answer therefore loses at most the tail of that answer.
"""
from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator

from core.consult import prompt
from core.consult.budget import ContextOverflowError, fit_history, prompt_limit
from core.consult.context import StudyContext
from core.consult.retrieval import PassageRef, Retriever, retrieve
from core.consult.store import ConversationStore, StoredMessage
from core.inference.backend import ChatBackend, GenerationParams, Message
from core.tasks import CancelToken

FLUSH_SECONDS = 0.5
GROUNDED_MIN_TOKENS = 200  # a grounded answer is JSON: fewer tokens cut its first statement short
_JSON_TEXTS = re.compile(r'"text"\s*:\s*"((?:[^"\\]|\\.)*)"')
DEFAULT_PARAMS = GenerationParams(max_tokens=384, temperature=0.2, repeat_penalty=1.1)


class AnswerStream:
    """One answer being generated: iterate it for the text pieces. ``notes`` and ``passages`` are known before the
    first piece; ``message``, ``text`` and ``status`` after the end."""

    def __init__(self, consultation: Consultation, prompt_messages: list[Message], user: StoredMessage,
                 passages: list[PassageRef], notes: list[str]) -> None:
        self.consultation = consultation
        self.checked = None  # core.findings.CheckedAnswer of a grounded answer, once checked
        self.prompt = prompt_messages
        self.user = user
        self.passages = passages
        self.notes = notes
        self.token = CancelToken()
        self.message: StoredMessage | None = None
        self.text = ""
        self.status = "pending"
        self.error = ""
        self._started = False

    def cancel(self) -> None:
        self.token.cancel()

    def consume(self) -> str:
        for _ in self:
            pass
        return self.text

    def __iter__(self) -> Iterator[str]:
        if self._started:
            raise RuntimeError("an answer stream can be iterated only once")
        self._started = True
        return self._run()

    def _run(self) -> Iterator[str]:
        c = self.consultation
        store, cid = c.store, c.id
        assert cid is not None
        model = c.backend.info().model_name
        passages = [p.to_json() for p in self.passages]
        parts: list[str] = []
        msg_id: int | None = None
        last_flush = time.monotonic()
        self.status = "streaming"
        previous_stats = c.backend.last_stats
        if c.facts is not None:
            yield from self._run_grounded(model, passages, previous_stats)
            return
        inner = c.backend.chat_stream(self.prompt, c.answer_params(), cancel=self.token)
        try:
            for piece in inner if not self.token.cancelled else ():
                parts.append(piece)
                if msg_id is None:
                    msg_id = store.add_message(cid, "assistant", piece, status="streaming", level=self.user.level,
                                               passages=passages, model=model).id
                    last_flush = time.monotonic()
                elif time.monotonic() - last_flush >= FLUSH_SECONDS:
                    store.update_message(msg_id, content="".join(parts))
                    last_flush = time.monotonic()
                yield piece
            self.status = "cancelled" if self.token.cancelled else "complete"
        except (GeneratorExit, KeyboardInterrupt):
            self.status = "cancelled"  # the consumer stopped reading (Ctrl-C in the terminal, a closed stream)
            raise
        except Exception as exc:
            self.status, self.error = "error", str(exc)
            raise
        finally:
            inner.close()  # releases the backend for the next call even when we were abandoned mid-answer
            self.text = "".join(parts)
            stats = c.backend.last_stats if c.backend.last_stats is not previous_stats else None
            fields = {"content": self.text, "status": self.status,
                      "stats": dataclasses.asdict(stats) if stats else {}}
            if msg_id is None:
                msg_id = store.add_message(cid, "assistant", self.text, status=self.status, level=self.user.level,
                                           passages=passages, model=model, stats=fields["stats"]).id
            else:
                store.update_message(msg_id, **fields)
            if self.error:
                store.add_message(cid, "note", f"The answer failed: {self.error}")
            self.message = next((m for m in store.messages(cid) if m.id == msg_id), None)
            c._current = None


    def _run_grounded(self, model: str, passages: list[dict], previous_stats) -> Iterator[str]:
        """The model answers under the statements schema; nothing is shown until the check has run (core.findings):
        then the checked answer is stored and yielded as one piece."""
        import json

        from core.findings import answer_schema, check_answer
        from core.report.constrained import first_json_object

        c = self.consultation
        ids = c.facts.ids() + [p["id"] for p in passages]
        params = c.answer_params()
        budget = min(max(params.max_tokens, GROUNDED_MIN_TOKENS), max(16, c.backend.info().n_ctx // 2))
        params = dataclasses.replace(params, max_tokens=budget, json_schema=answer_schema(ids))
        parts: list[str] = []
        inner = c.backend.chat_stream(self.prompt, params, cancel=self.token)
        try:
            parts.extend(inner if not self.token.cancelled else ())
            self.status = "cancelled" if self.token.cancelled else "complete"
        except (GeneratorExit, KeyboardInterrupt):
            self.status = "cancelled"
            raise
        except Exception as exc:  # noqa: BLE001 - stored as the answer's error, then raised to the caller
            self.status, self.error = "error", str(exc)
        finally:
            inner.close()
        raw = "".join(parts)
        statements: list[dict] | str = raw
        try:
            doc = json.loads(raw)
        except ValueError:
            try:
                doc = first_json_object(raw)
            except Exception:  # noqa: BLE001 - cut short at the token limit: its complete sentences are checked
                doc = {"statements": [{"text": json.loads(f'"{t}"'), "kind": "", "cites": []}
                                      for t in _JSON_TEXTS.findall(raw)]}
        if isinstance(doc, dict) and isinstance(doc.get("statements"), list):
            statements = [s for s in doc["statements"] if isinstance(s, dict)]
        grounding: dict = {}
        if self.status == "complete":
            self.checked = check_answer(statements, c.facts, [p["id"] for p in passages],
                                        question=self.user.content, level=self.user.level, raw=raw)
            self.text, grounding = self.checked.to_text(), self.checked.to_json()
        else:
            self.text = "(stopped before the answer was checked: nothing is shown)" if self.status == "cancelled" \
                else ""
        stats = c.backend.last_stats if c.backend.last_stats is not previous_stats else None
        store, cid = c.store, c.id
        msg = store.add_message(cid, "assistant", self.text, status=self.status, level=self.user.level,
                                passages=passages, model=model, stats=dataclasses.asdict(stats) if stats else {},
                                grounding=grounding)
        if self.error:
            store.add_message(cid, "note", f"The answer failed: {self.error}")
        self.message = next((m for m in store.messages(cid) if m.id == msg.id), None)
        c._current = None
        if self.error:
            raise RuntimeError(self.error)
        if self.text:
            yield self.text


class Consultation:
    def __init__(
        self,
        backend: ChatBackend,
        store: ConversationStore,
        context: StudyContext | None = None,
        *,
        conversation_id: int | None = None,
        study_key: str = "",
        series_uid: str = "",
        retriever: Retriever | None = None,
        params: GenerationParams | None = None,
        template: str | None = None,
        n_passages: int = 3,
        facts=None,
    ) -> None:
        """``facts`` (a core.findings.FactSheet) makes every answer grounded: generated under the statements schema
        with the facts' ids, then checked so that no unsupported image finding is shown as a finding."""
        self.backend = backend
        self.facts = facts
        self.store = store
        self.retriever = retriever
        self.params = params or DEFAULT_PARAMS
        self.n_passages = n_passages
        self.context = context or StudyContext()
        self._current: AnswerStream | None = None
        self._start = 0  # first history message still in the model's view (older turns were dropped to fit)
        if conversation_id is None:
            self.id: int | None = None
            self.study_key, self.series_uid = study_key, series_uid
            self.context_text = self.context.to_text()
            self.system_prompt = prompt.system_prompt(self.context_text, template)
        else:
            row = store.conversation(conversation_id)
            self.id = conversation_id
            self.study_key, self.series_uid = row["study_key"] or "", row["series_uid"] or ""
            self.context_text, self.system_prompt = row["context_text"] or "", row["system_prompt"] or ""
        # Reopened without a live context (e.g. from the conversation list): the stored one stands, no updates.
        self._track_context = context is not None or conversation_id is None
        self._sent_context = self.context_text  # the context text the model has last been shown

    def start_new(self, template: str | None = None) -> None:
        """Begin a new conversation (created in the store at its first question) on the current context."""
        self.cancel()
        self.id = None
        self._start = 0
        self._track_context = True
        self.context_text = self.context.to_text()
        self.system_prompt = prompt.system_prompt(self.context_text, template)
        self._sent_context = self.context_text

    def answer_params(self) -> GenerationParams:
        """``params`` with the answer length capped at half the context window, so the prompt keeps room."""
        cap = max(16, self.backend.info().n_ctx // 2)
        if self.params.max_tokens <= cap:
            return self.params
        return dataclasses.replace(self.params, max_tokens=cap)

    # --- state ----------------------------------------------------------------------------------------------
    @property
    def title(self) -> str:
        return self.store.conversation(self.id)["title"] if self.id is not None else "New conversation"

    def messages(self, include_inactive: bool = False) -> list[StoredMessage]:
        return self.store.messages(self.id, include_inactive) if self.id is not None else []

    def _history(self) -> tuple[list[Message], list[StoredMessage]]:
        msgs, stored = [], []
        for m in self.messages():
            if m.role == "user":
                msgs.append({"role": "user", "content": m.sent_content or m.content})
            elif m.role == "assistant" and m.content:
                msgs.append({"role": "assistant", "content": m.content})
            else:
                continue
            stored.append(m)
        return msgs, stored

    def _ensure_conversation(self, title: str) -> int:
        if self.id is None:
            self.id = self.store.create_conversation(
                self.study_key, self.series_uid, title[:80], self.backend.info().model_name,
                self.system_prompt, self.context_text)
        return self.id

    # --- asking -----------------------------------------------------------------------------------------------
    def ask(self, question: str, level: str | None = None, images: list[bytes] | None = None) -> AnswerStream:
        """Commit the question and return the stream of its answer (generation starts when iterated)."""
        question = question.strip()
        if not question:
            raise ValueError("empty question")
        if self._current is not None and self._current.status in ("pending", "streaming"):
            raise RuntimeError("an answer is still being generated: cancel it or wait for it")
        level = level or self.context.selected_level
        history, _ = self._history()
        notes: list[str] = []
        context_text = self.context.to_text() if self._track_context else self._sent_context
        update = context_text if context_text != self._sent_context else None
        passages = retrieve(self.retriever, question, level, self.n_passages)
        current: Message = {"role": "user", "content": prompt.user_turn(question, level, passages, update,
                                                                         self._facts_text(question, level))}
        if images:
            if self.backend.info().multimodal:
                current["images"] = list(images)
            else:
                notes.append(f"{len(images)} key image(s) not sent: this model cannot see images.")
        fit, passage_note = self._fit(history, current, question, level, update)
        if passage_note:
            passages = []
            notes.append(passage_note)
        if fit.note:
            notes.append(fit.note)
        cid = self._ensure_conversation(question)
        for note in notes:
            self.store.add_message(cid, "note", note)
        user = self.store.add_message(cid, "user", question, sent_content=fit.messages[-1]["content"], level=level,
                                      passages=[p.to_json() for p in passages])
        self._sent_context = context_text
        return self._stream(fit.messages, user, passages, notes)

    def _fit(self, history: list[Message], current: Message, question: str, level: str | None,
             update: str | None):
        system = {"role": "system", "content": self.system_prompt}
        limit = prompt_limit(self.backend.info().n_ctx, self.answer_params().max_tokens)
        self._start = min(self._start, len(history))
        try:
            fit = fit_history(self.backend.count_prompt_tokens, system, history, current, limit, self._start)
            note = None
        except ContextOverflowError:
            bare = {**current, "content": prompt.user_turn(question, level, None, update,
                                                           self._facts_text(question, level))}
            fit = fit_history(self.backend.count_prompt_tokens, system, history, bare, limit, self._start)
            note = "Knowledge passages left out: with them the question does not fit the model's context window."
        self._start = fit.start
        return fit, note

    def _facts_text(self, question: str, level: str | None) -> str | None:
        """The facts shown with a grounded question: those at the asked levels (all when none is asked)."""
        if self.facts is None:
            return None
        from core.findings.facts import FactSheet
        from core.spine.anatomy import find_levels

        asked = find_levels(question) or ([level] if level else [])
        facts = [f for f in self.facts.facts if not asked or f.level is None or f.level in asked]
        sheet = FactSheet(facts, [n for n in self.facts.not_assessed], self.facts.levels_in_view,
                          self.facts.modality, self.facts.sees_images)
        from core.findings.check import ANSWER_FORMAT

        return sheet.to_prompt() + "\n" + ANSWER_FORMAT

    def _stream(self, messages: list[Message], user: StoredMessage, passages: list[PassageRef],
                notes: list[str]) -> AnswerStream:
        self._current = AnswerStream(self, messages, user, passages, notes)
        return self._current

    def cancel(self) -> None:
        """Stop the answer being generated (safe from any thread); what was generated is kept as 'cancelled'."""
        current = self._current
        if current is not None:
            current.cancel()

    def regenerate(self) -> AnswerStream:
        """A new answer to the last question; the previous answer is kept but no longer active."""
        if self._current is not None and self._current.status in ("pending", "streaming"):
            raise RuntimeError("an answer is still being generated")
        active = self.messages()
        last_user = next((i for i in range(len(active) - 1, -1, -1) if active[i].role == "user"), None)
        if last_user is None:
            raise ValueError("nothing to regenerate: the conversation has no question yet")
        self.store.deactivate([m.id for m in active[last_user + 1:]])
        history, _ = self._history()
        user = active[last_user]
        current = history.pop()  # the last question, exactly as it was sent
        system = {"role": "system", "content": self.system_prompt}
        limit = prompt_limit(self.backend.info().n_ctx, self.answer_params().max_tokens)
        fit = fit_history(self.backend.count_prompt_tokens, system, history, current, limit,
                          min(self._start, len(history)))
        self._start = fit.start
        notes = [fit.note] if fit.note else []
        for note in notes:
            self.store.add_message(self.id, "note", note)
        passages = [PassageRef(p["id"], p.get("title", "")) for p in user.passages]
        return self._stream(fit.messages, user, passages, notes)

    def edit_and_resend(self, message_id: int, new_text: str, level: str | None = None) -> AnswerStream:
        """Replace a question (and everything after it) by an edited one and answer it."""
        active = self.messages()
        index = next((i for i, m in enumerate(active) if m.id == message_id), None)
        if index is None or active[index].role != "user":
            raise ValueError(f"message {message_id} is not an active question of this conversation")
        old_level = active[index].level
        self.store.deactivate([m.id for m in active[index:]])
        return self.ask(new_text, level=level or old_level)
