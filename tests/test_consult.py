"""Consultations with the real embedded model on the bundled sample study: structure, streaming, persistence,
cancel, prompt prefix-extension, context overflow, sockets blocked, kill -9 mid-answer."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.consult import (
    Consultation,
    ContextOverflowError,
    ConversationStore,
    Measurement,
    StudyContext,
    conversation_markdown,
    default_retriever,
)
from core.consult.prompt import load_template, user_turn
from core.inference.backend import GenerationParams, backend_for_model
from tests.conftest import loaded_backend

REPO = Path(__file__).resolve().parents[1]
SHORT = GenerationParams(max_tokens=32, temperature=0.0)


@dataclass
class _Passage:
    id: str
    title: str
    text: str
    section: str = ""


@dataclass
class _Hit:
    passage: _Passage
    score: float


class StubKnowledge:
    """Stands in for core.knowledge.KnowledgeIndex (same search signature); records what it was asked."""

    def __init__(self, text: str = "Disc height is judged against the adjacent levels.") -> None:
        self.text = text
        self.queries: list[tuple[str, str | None]] = []

    def search(self, query: str, level: str | None = None, limit: int = 5):
        self.queries.append((query, level))
        return [_Hit(_Passage("disc-degeneration#grading", "Disc degeneration", self.text, "Grading"), 3.0),
                _Hit(_Passage("stenosis#canal", "Spinal stenosis", self.text, "Canal"), 2.0)][:limit]


@pytest.fixture(scope="module")
def model_path(embedded_model):
    return embedded_model


@pytest.fixture(scope="module")
def backend(model_path):
    with loaded_backend(model_path, n_ctx=4096) as b:
        yield b


@pytest.fixture
def sample_context(bundled_ct, tmp_path):
    from core.library import Library

    lib = Library(tmp_path / "library.db")
    rep = lib.import_path(bundled_ct)
    uid = (rep.new_series + rep.existing_series)[0]
    source = lib.source(uid)
    lib.close()
    ctx = StudyContext.from_series_source(
        source, levels_in_view=["T11", "T11-T12", "T12"], selected_level="T11-T12",
        measurements=[Measurement("disc height", "T11-T12", 5.8, "mm")],
        prior_findings=["2021 CT: no fracture at T11-T12"])
    return ctx, source.study_uid or f"series:{uid}", uid, tmp_path / "library.db"


def test_context_text_is_compact_and_structured():
    ctx = StudyContext(modality="MR", levels_in_view=["L4", "L4-L5", "L5", "L5-S1", "S1"], selected_level="L4-L5",
                       measurements=[Measurement("canal AP diameter", "L4-L5", 9.46, "mm")],
                       prior_findings=["disc bulge L4-L5 (2020)"], patient_age="047Y", patient_sex="M")
    text = ctx.to_text()
    assert text.splitlines() == [
        "Modality: MR", "Region: lumbosacral spine", "Patient: 47 years, male",
        "Levels in view: L4, L4-L5, L5, L5-S1, S1", "Measurements:", "- L4-L5 canal AP diameter: 9.46 mm",
        "Prior findings:", "- disc bulge L4-L5 (2020)"]
    assert "Selected level: L4-L5" in ctx.to_text(include_selected=True)
    assert "not determined" in StudyContext(modality="CT").to_text()


def test_system_prompt_template_is_our_markdown():
    template = load_template()
    assert "<!--" not in template and "{{study_context}}" in template
    assert "decision" in template.lower() and "field of view" in template and "uncertainty" in template
    turn = user_turn("Is it narrowed?", "L4-L5", None, None)
    assert turn.startswith("Selected level: L4-L5") and turn.endswith("Question: Is it narrowed?")


def test_real_multi_turn_consultation_on_the_sample_study(backend, sample_context):
    ctx, study_key, uid, db = sample_context
    knowledge = StubKnowledge()
    store = ConversationStore(db)
    consult = Consultation(backend, store, ctx, study_key=study_key, series_uid=uid, retriever=knowledge,
                           params=SHORT)
    assert "Levels in view: T11, T11-T12, T12" in consult.system_prompt
    assert "T11-T12 disc height: 5.8 mm" in consult.system_prompt and "Modality: CT" in consult.system_prompt

    first = consult.ask("Is the disc height at this level reduced?")
    stamps: list[float] = []
    pieces = []
    for piece in first:
        stamps.append(time.perf_counter())
        pieces.append(piece)
    assert len(pieces) >= 3 and stamps[-1] > stamps[0]  # streamed piece by piece, not at once
    assert first.status == "complete" and first.message.content == "".join(pieces)
    assert knowledge.queries == [("Is the disc height at this level reduced?", "T11-T12")]
    assert [p["id"] for p in first.message.passages] == ["disc-degeneration#grading", "stenosis#canal"]
    prompt1 = backend.render_prompt(first.prompt)
    assert "Selected level: T11-T12" in prompt1 and "[disc-degeneration#grading]" in prompt1
    tokens1 = backend.tokenize_prompt(first.prompt)
    ttft1 = backend.last_stats.ttft_s

    ctx.levels_in_view = ["T11-T12", "T12", "T12-L1"]  # the clinician scrolled: sent as an update, prompt stays stable
    second = consult.ask("And the level below?", level="T12-L1")
    second.consume()
    prompt2 = backend.render_prompt(second.prompt)
    assert prompt2.startswith(prompt1 + first.text)  # exact prefix-extension of turn 1 and its answer
    assert "Updated study context:" in second.prompt[-1]["content"] and "T12-L1" in second.prompt[-1]["content"]
    stats2 = backend.last_stats
    assert stats2.reused_prompt_tokens >= len(tokens1)
    print(f"TTFT turn 1 {ttft1:.3f}s, turn 2 {stats2.ttft_s:.3f}s, reused {stats2.reused_prompt_tokens} tokens")

    # Persistence round-trip through a second connection, as after a restart.
    store2 = ConversationStore(db)
    reopened = Consultation(backend, store2, conversation_id=consult.id)
    msgs = reopened.messages()
    assert [(m.role, m.status) for m in msgs] == [("user", "complete"), ("assistant", "complete")] * 2
    assert [m.level for m in msgs if m.role == "user"] == ["T11-T12", "T12-L1"]
    assert msgs[1].content == first.text and msgs[3].content == second.text and msgs[0].sent_content
    assert reopened.system_prompt == consult.system_prompt
    assert store2.conversations(study_key)[0]["n_messages"] == 4
    third = reopened.ask("Summarise.", level="T12")
    third.consume()
    assert backend.render_prompt(third.prompt).startswith(prompt2 + second.text)
    assert "Updated study context" not in third.prompt[-1]["content"]

    md = conversation_markdown(store2, consult.id)
    assert md.count("### Question") == 3 and "Decision support, not a diagnosis" in md
    assert "[disc-degeneration#grading]" in md and "Levels in view: T11, T11-T12, T12" in md


def test_answers_record_the_knowledge_base_passages_they_were_given(backend, tmp_path):
    retriever = default_retriever()
    if retriever is None:
        pytest.skip("no knowledge base documents (resources/knowledge)")
    consult = Consultation(backend, ConversationStore(tmp_path / "lib.db"), StudyContext(modality="MR"),
                           retriever=retriever, params=SHORT)
    answer = consult.ask("How is disc degeneration graded on MRI?", level="L4-L5")
    answer.consume()
    ids = [p["id"] for p in answer.message.passages]
    assert ids and all(retriever.get(i) is not None for i in ids)
    assert all(f"[{i}]" in answer.prompt[-1]["content"] for i in ids)


def test_cancel_stops_early_and_keeps_the_partial_answer(backend, tmp_path):
    store = ConversationStore(tmp_path / "lib.db")
    consult = Consultation(backend, store, StudyContext(modality="MR", levels_in_view=["L4-L5"]),
                           params=GenerationParams(max_tokens=400, temperature=0.8, seed=5))
    answer = consult.ask("Explain in detail everything about the lumbar spine.", level="L4-L5")
    pieces = []
    for piece in answer:
        pieces.append(piece)
        if len(pieces) == 3:
            threading.Thread(target=consult.cancel).start()
    assert answer.status == "cancelled" and len(pieces) <= 6
    assert backend.last_stats.generated_tokens < 10
    stored = store.messages(consult.id)[-1]
    assert stored.status == "cancelled" and stored.content == "".join(pieces)


def test_regenerate_and_edit_and_resend_keep_history(backend, tmp_path):
    store = ConversationStore(tmp_path / "lib.db")
    consult = Consultation(backend, store, StudyContext(modality="CT", levels_in_view=["L1", "L1-L2"]),
                           params=GenerationParams(max_tokens=12, temperature=0.9))
    consult.ask("Is L1 fractured?", level="L1").consume()
    consult.regenerate().consume()
    active = consult.messages()
    assert [m.role for m in active] == ["user", "assistant"]
    assert len(consult.messages(include_inactive=True)) == 3
    q = active[0]
    consult.edit_and_resend(q.id, "Is L1 compressed?").consume()
    active = consult.messages()
    assert [m.content for m in active if m.role == "user"] == ["Is L1 compressed?"]
    assert active[0].level == "L1"
    with pytest.raises(ValueError):
        consult.edit_and_resend(q.id, "again")


def test_context_overflow_drops_oldest_turns_visibly_and_never_overflows(model_path, tmp_path):
    small = backend_for_model(model_path, n_ctx=640)
    small.load()
    store = ConversationStore(tmp_path / "lib.db")
    params = GenerationParams(max_tokens=48, temperature=0.0)
    consult = Consultation(small, store, StudyContext(modality="MR", levels_in_view=["L3-L4", "L4-L5"]),
                           params=params)
    filler = "Please consider the disc, the canal, the foramina and the facets carefully. " * 4
    notes = []
    n_ctx = small.info().n_ctx  # llama.cpp rounds the context up (640 -> 768)
    limit = n_ctx - params.max_tokens
    for n in range(6):
        answer = consult.ask(f"Question {n}: {filler}", level="L4-L5")
        notes += answer.notes
        answer.consume()
        assert small.last_stats.prompt_tokens <= limit
    assert any("left out of the model's view" in n for n in notes)
    stored_notes = [m for m in consult.messages() if m.role == "note"]
    assert stored_notes and "context window" in stored_notes[0].content
    assert len([m for m in consult.messages() if m.role == "user"]) == 6  # nothing is deleted from the record

    # Long knowledge passages that cannot fit are left out, with a note.
    wordy = Consultation(small, store, StudyContext(modality="MR"), retriever=StubKnowledge("T12-L1 " * 200),
                         params=params)
    answer = wordy.ask("Is the canal narrow?", level="L4-L5")
    assert any("Knowledge passages left out" in n for n in answer.notes) and not answer.passages
    answer.consume()

    # A question that can never fit is refused before anything is stored.
    before = len(store.conversations())
    with pytest.raises(ContextOverflowError, match="context window"):
        Consultation(small, store, StudyContext(), params=params).ask("why " * 900)
    assert len(store.conversations()) == before
    small.unload()


def test_whole_consultation_with_sockets_blocked(model_path, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during an offline consultation")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    b = backend_for_model(model_path, n_ctx=1024)
    b.load()
    store = ConversationStore(tmp_path / "lib.db")
    consult = Consultation(b, store, StudyContext(modality="MR", levels_in_view=["L5-S1"]),
                           retriever=StubKnowledge(), params=SHORT)
    consult.ask("What do you see at L5-S1?", level="L5-S1").consume()
    consult.ask("Anything else?").consume()
    assert len(consult.messages()) == 4
    assert "What do you see" in conversation_markdown(store, consult.id)
    with pytest.raises(OSError, match="network access attempted"):
        socket.create_connection(("127.0.0.1", 9))
    b.unload()


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from core.consult import Consultation, ConversationStore, StudyContext
    from core.inference.backend import GenerationParams, backend_for_model
    b = backend_for_model(sys.argv[1], n_ctx=1024); b.load()
    store = ConversationStore(sys.argv[2])
    c = Consultation(b, store, StudyContext(modality="MR", levels_in_view=["L4-L5"]),
                     params=GenerationParams(max_tokens=32, temperature=0.0))
    c.ask("Is L4-L5 normal?", level="L4-L5").consume()
    c.params = GenerationParams(max_tokens=2000, temperature=0.8, seed=2)
    for n, piece in enumerate(c.ask("Write a very long report about L4-L5.", level="L4-L5")):
        sys.stdout.write(repr(piece) + "\\n"); sys.stdout.flush()
        if n < 2:
            time.sleep(0.6)  # slow reader: the partial answer is flushed to the database meanwhile
        else:
            print("KILL ME", flush=True)
            time.sleep(120)
""")


def test_kill_minus_9_mid_answer_loses_at_most_that_answer(model_path, tmp_path):
    db = tmp_path / "lib.db"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(model_path), str(db)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    streamed = []
    try:
        for line in proc.stdout:
            if line.startswith("KILL ME"):
                break
            streamed.append(eval(line))
        else:
            pytest.fail("the answer ended before the kill")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = ConversationStore(db)
    msgs = store.messages(1)
    assert [(m.role, m.status) for m in msgs] == [("user", "complete"), ("assistant", "complete"),
                                                   ("user", "complete"), ("assistant", "streaming")]
    partial = msgs[-1].content
    assert partial and "".join(streamed).startswith(partial)
    assert store.mark_interrupted() == 1 and store.messages(1)[-1].status == "interrupted"
    assert "interrupted" in conversation_markdown(store, 1)
