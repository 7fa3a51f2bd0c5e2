"""The curation review pane (issue 6): a real store built by the template generator, decisions clicked in the pane
and read back through curation.review / the store API."""
from __future__ import annotations

import pytest
from app_support import settle
from PySide6.QtCore import Qt

from app.curation_review import ReviewPane
from curation import review
from curation.generate.pipeline import Pipeline
from curation.sources.knowledge import ingest_knowledge
from curation.store import CurationStore


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "curation.db"
    with CurationStore(path) as store:
        ingest_knowledge(store, only=["disc-degeneration-pfirrmann"])
        counts = Pipeline(store, tmp_path / "images").run_templates()
        assert counts["items"] >= 6
    return path


def _go_to(pane: ReviewPane, qtbot, task: str) -> dict:
    """Click Next until the current item is an undecided item of ``task``."""
    for _ in range(len(pane.items)):
        item = pane.current_item()
        if item["task"] == task and item["id"] not in pane.session:
            return item
        qtbot.mouseClick(pane.next_button, Qt.LeftButton)
    raise AssertionError(f"no {task} item in the queue")


def test_accept_reject_edit_update_the_store_and_counts(qapp, qtbot, store_path, monkeypatch, screenshot_path):
    pane = ReviewPane(store_path)
    qtbot.addWidget(pane)
    pane.resize(1400, 900)
    pane.show()
    qtbot.waitExposed(pane)

    n_items = len(pane.items)
    assert n_items >= 6 and pane.counts()["awaiting"] == n_items
    assert not pane.accept_button.isEnabled()  # no reviewer id yet: no decision possible
    qtbot.keyClicks(pane.reviewer_edit, "dr.a")
    pane.reviewer_edit.editingFinished.emit()
    assert pane.accept_button.isEnabled() and len(pane.items) == n_items

    # the first item shows its messages and provenance; an MCQ shows its options with the keyed answer
    mcq = _go_to(pane, qtbot, "mcq")
    assert mcq["content"]["question"] in pane.messages_view.toPlainText()
    assert "assistant" in pane.messages_view.toPlainText()
    keyed = mcq["content"]["options"][mcq["content"]["answer_index"]]
    assert f"{keyed} (keyed answer)" in pane.options_label.text()
    assert mcq["location"] in pane.provenance_label.text()

    # accept the MCQ
    qtbot.mouseClick(pane.accept_button, Qt.LeftButton)
    assert pane.current_item()["id"] != mcq["id"]
    counts = pane.counts()
    assert counts["accepted"] == 1 and counts["awaiting"] == n_items - 1
    assert "accepted: <b>1</b>" in pane.counts_label.text()

    # reject an open question, with a reason given in the dialog
    qa = _go_to(pane, qtbot, "open_qa")
    monkeypatch.setattr(pane, "ask_reason", lambda: "answer is not supported by the passage")
    qtbot.mouseClick(pane.reject_button, Qt.LeftButton)
    # cancelling the dialog (or an empty reason) records nothing
    cons = _go_to(pane, qtbot, "consultation")
    monkeypatch.setattr(pane, "ask_reason", lambda: None)
    qtbot.mouseClick(pane.reject_button, Qt.LeftButton)
    monkeypatch.setattr(pane, "ask_reason", lambda: "   ")
    qtbot.mouseClick(pane.reject_button, Qt.LeftButton)
    assert pane.current_item()["id"] == cons["id"]

    # edit the consultation's clinician answer(s)
    qtbot.mouseClick(pane.edit_button, Qt.LeftButton)
    assert pane.editing and not pane.answer_edit.isReadOnly() and pane.edit_button.text() == "Save edit"
    text = pane.answer_edit.toPlainText()
    n_clinician = sum(t["role"] == "clinician" for t in cons["content"]["turns"])
    assert text.count("\n---\n") == n_clinician - 1
    new_text = text.rsplit("\n---\n", 1)
    new_text[-1] = "Reviewed wording: please discuss these findings with your spine clinician."
    pane.answer_edit.setPlainText("\n---\n".join(new_text))
    pane.edit_reason.setText("clearer last answer")
    qtbot.mouseClick(pane.edit_button, Qt.LeftButton)
    assert not pane.editing

    # an invalid edit (wrong number of clinician turns) is refused with a message and records nothing
    other = _go_to(pane, qtbot, "consultation")
    qtbot.mouseClick(pane.edit_button, Qt.LeftButton)
    pane.answer_edit.setPlainText("\n---\n".join("answer" for _ in range(9)))  # more than any consultation has
    qtbot.mouseClick(pane.edit_button, Qt.LeftButton)
    assert pane.editing and "not saved" in pane.message_label.text()
    qtbot.mouseClick(pane.cancel_edit_button, Qt.LeftButton)
    assert not pane.editing and pane.current_item()["id"] == other["id"]

    # the store reflects each decision (read back through a separate connection and the review API)
    with CurationStore(store_path) as store:
        assert store.item(mcq["id"])["review_status"] == "accepted"
        assert store.item(qa["id"])["review_status"] == "rejected"
        assert store.item(cons["id"])["review_status"] == "edited"
        assert store.item(other["id"])["review_status"] in ("pending", "auto_gated")
        [rej] = store.reviews(qa["id"])
        assert rej["reviewer"] == "dr.a" and rej["reason"] == "answer is not supported by the passage"
        [edit] = store.reviews(cons["id"])
        assert edit["decision"] == "edit" and edit["reason"] == "clearer last answer"
        edited = store.item(cons["id"])["content"]
        assert edited["turns"][-1]["text"].startswith("Reviewed wording")
        assert edited["turns"][0] == cons["content"]["turns"][0]  # the patient turns are untouched
        assert len(store.reviews()) == 3
        counts = review.status_counts(store)
        assert (counts["accepted"], counts["rejected"], counts["edited"]) == (1, 1, 1)
        assert counts["awaiting"] == n_items - 3
        remaining = {i["id"] for i in review.queue(store, "dr.a")}
        assert remaining.isdisjoint({mcq["id"], qa["id"], cons["id"]}) and len(remaining) == n_items - 3
    assert "rejected: <b>1</b>" in pane.counts_label.text() and "edited: <b>1</b>" in pane.counts_label.text()

    # previous goes back to a decided item, which shows the decision
    while pane.current_item()["id"] != cons["id"]:
        qtbot.mouseClick(pane.prev_button, Qt.LeftButton)
    assert "you decided: edit" in pane.message_label.text()
    assert "Reviewed wording" in pane.answer_edit.toPlainText()

    # a second reviewer's queue holds what dr.a decided; their decisions give an agreement
    pane.second_check.setChecked(True)
    pane.reviewer_edit.setText("dr.b")
    pane.reviewer_edit.editingFinished.emit()
    assert {i["id"] for i in pane.items} == {mcq["id"], qa["id"], cons["id"]}
    while pane.current_item()["id"] != mcq["id"]:
        qtbot.mouseClick(pane.next_button, Qt.LeftButton)
    qtbot.mouseClick(pane.accept_button, Qt.LeftButton)
    with CurationStore(store_path) as store:
        [agree] = review.agreement(store)
        assert agree.reviewers == ("dr.a", "dr.b") and agree.n_items == 1

    # screenshot: back to the first reviewer's queue on an MCQ
    pane.second_check.setChecked(False)
    pane.reviewer_edit.setText("dr.a")
    pane.reviewer_edit.editingFinished.emit()
    _go_to(pane, qtbot, "mcq")
    settle(0.2)
    assert pane.grab().save(str(screenshot_path("curation_review.png")))
    pane.close()


def test_assistant_text_round_trip():
    mcq = {"task": "mcq", "content": {"question": "Which grade is a collapsed dark disc?",
                                      "options": ["I", "II", "IV", "V"], "answer_index": 3, "rationale": "Grade V."}}
    assert review.assistant_text(mcq) == "Grade V."
    edited = review.with_assistant_text(mcq, "Grade V: dark, collapsed.", answer_index=2)
    assert edited["rationale"] == "Grade V: dark, collapsed." and edited["answer_index"] == 2
    assert mcq["content"]["answer_index"] == 3  # the item itself is unchanged
    report = {"task": "report", "content": {"technique": "CT"}}
    with pytest.raises(ValueError):
        review.with_assistant_text(report, "{not json")
