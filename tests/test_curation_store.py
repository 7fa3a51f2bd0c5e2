"""Curation store: named migrations, provenance required on items, review decisions and statuses."""
import pytest

from core.library.migrations import applied
from curation.store import MIGRATIONS, CurationStore, Source


def _item(**over):
    row = {"id": "it1", "job_key": "k1", "task": "open_qa", "subtask": "t", "modality": "text", "region": "",
           "levels": ["L4-L5"], "content": {"question": "What is the L4-L5 disc?", "answer": "A disc at L4-L5."},
           "images": [], "source_id": "kb:doc", "chunk_id": "kb:doc#s", "location": "doc.md:3", "case_id": "",
           "group_key": "kb:doc", "generator": "template:kb", "generator_kind": "template",
           "prompt_template": "template:t", "prompt_version": "1", "seed": 0}
    row.update(over)
    return row


@pytest.fixture
def store(tmp_path):
    st = CurationStore(tmp_path / "c.db")
    st.upsert_source(Source(id="kb:doc", kind="knowledge_doc", title="Doc"))
    yield st
    st.close()


def test_migrations_are_named_and_applied_once(tmp_path):
    st = CurationStore(tmp_path / "c.db")
    assert applied(st.db) == [name for name, _ in MIGRATIONS]
    st.close()
    st = CurationStore(tmp_path / "c.db")  # reopening applies nothing new
    assert applied(st.db) == [name for name, _ in MIGRATIONS]
    assert {"sources", "chunks", "items", "drafts", "revisions", "reviews"} <= set(st.db.table_names())
    st.close()


def test_item_needs_provenance(store):
    with pytest.raises(ValueError, match="provenance"):
        store.add_item(_item(location=""))
    with pytest.raises(ValueError, match="generator_kind"):
        store.add_item(_item(generator_kind="magic"))
    store.add_item(_item())
    got = store.item("it1")
    assert got["content"]["answer"] == "A disc at L4-L5." and got["levels"] == ["L4-L5"]
    assert got["review_status"] == "pending" and got["created_at"]


def test_reviews_set_the_human_status(store):
    store.add_item(_item())
    with pytest.raises(ValueError, match="reason"):
        store.add_review("it1", "drA", "reject")
    with pytest.raises(ValueError, match="reviewer"):
        store.add_review("it1", " ", "accept")
    store.add_review("it1", "drA", "accept")
    assert store.item("it1")["review_status"] == "accepted"
    edited = {"question": "What is the L4-L5 disc?", "answer": "The disc between L4 and L5."}
    store.add_review("it1", "drB", "edit", reason="clearer", edited_content=edited)
    item = store.item("it1")
    assert item["review_status"] == "edited" and item["content"] == edited
    store.add_review("it1", "drA", "reject", reason="duplicate")  # drA changes their mind: any reject rejects
    assert store.item("it1")["review_status"] == "rejected"
    assert [r["reviewer"] for r in store.reviews("it1")] == ["drA", "drB", "drA"]


def test_an_update_that_changes_nothing_keeps_the_timestamp(store, monkeypatch):
    import curation.store as store_mod

    store.add_item(_item())
    monkeypatch.setattr(store_mod, "now", lambda: "2030-01-01T00:00:00+00:00")
    before = store.item("it1")
    store.update_item("it1", content=before["content"], gate_report=before["gate_report"])
    assert store.item("it1")["updated_at"] == before["updated_at"]  # e.g. the gates re-run on an unchanged item
    store.update_item("it1", review_status="auto_gated")
    after = store.item("it1")
    assert after["review_status"] == "auto_gated" and after["updated_at"] == "2030-01-01T00:00:00+00:00"
