"""Citations in the chat and the report editor (Qt under Xvfb): each statement shows what it cites; a click opens the
measurement or passage and selects its level; unsupported statements are shown struck out with the reason.

Grounded answers from the real model are tested in tests/test_findings_model.py; here the stored answer is a check of
hand-written model statements, so the rendering is tested on a known answer."""
from __future__ import annotations

from PySide6.QtCore import QUrl

from app.chat.chat_panel import ChatPanel
from core.consult import ConversationStore, StudyContext
from core.findings import build_facts, check_answer
from core.report.model import Basis, LevelFindings, SpineReport, Statement
from core.report.store import ReportStore
from core.spine.measure.geometry import BodyHeights, body_heights_measurement
from core.spine.measure.measurement import Measurement

LEVELS = ["L1", "L1-L2", "L2", "L2-L3", "L3"]


def _sheet():
    wedge = body_heights_measurement(BodyHeights(17.0, 21.5, 26.8), "L2", method="user:Dr A")
    wedge.id = 7
    return build_facts([wedge], LEVELS, modality="CT")


def test_chat_shows_citations_struck_statements_and_opens_the_evidence(qtbot, tmp_path):
    store = ConversationStore(tmp_path / "library.db")
    panel = ChatPanel(store=store, retriever=None)
    qtbot.addWidget(panel)
    panel.resize(560, 800)
    panel.show()
    panel.set_study("study-W", StudyContext(modality="CT", levels_in_view=LEVELS), series_uid="1.2.3")
    sheet = _sheet()
    panel.set_facts(sheet)
    q = "Is there a compression fracture of L2?"
    checked = check_answer([{"text": "There is a wedge compression fracture of L2.", "kind": "finding",
                             "cites": ["F-genant-L2"]},
                            {"text": "There is also a disc herniation at L1-L2.", "kind": "finding", "cites": []}],
                           sheet, question=q, level="L2")
    cid = store.create_conversation("study-W", "1.2.3", q, "test", "system", "context")
    store.add_message(cid, "user", q, level="L2")
    store.add_message(cid, "assistant", checked.to_text(), level="L2", grounding=checked.to_json())
    panel._open_consultation(cid)
    html = panel.transcript.toHtml()
    assert 'href="cite:F-genant-L2"' in html and "<s>" not in html  # Qt writes strike-out as a style
    assert "line-through" in html and "not shown as a finding" in panel.transcript.toPlainText()
    assert "did not see the images" in panel.transcript.toPlainText()
    with qtbot.waitSignal(panel.level_clicked) as clicked:
        panel.transcript.anchorClicked.emit(QUrl("cite:F-genant-L2"))
    assert clicked.args == ["L2"]
    evidence = panel.evidence.toPlainText()
    assert panel.evidence.isVisible() and "Genant grade 2" in evidence and "stored measurement #7" in evidence
    assert "user:Dr A" in evidence
    panel.show_citation("F-unknown")
    assert "not found" in panel.evidence.toPlainText()
    panel.shutdown()
    store.close()


def test_report_editor_shows_what_each_statement_cites(qtbot, tmp_path):
    from app.report.report_editor import ReportEditor

    rep = SpineReport(template="ct-spine-v1")
    rep.measurements.append(Measurement("vertebral body height loss", "L2", 36.6, "%", id="m1"))
    row = LevelFindings("L2", "vertebra", statements=[
        Statement("L2.m1", "Vertebral body height loss: 36.6 % (measured).", source="measurement",
                  aspect="measurement", basis=Basis(measurements=["m1"])),
        Statement("L2.body", "Vertebral body: not assessed from this study's data.", source="template",
                  aspect="body"),
        Statement("L2.body.unsupported", "Not shown as a finding: \u00abNo fracture.\u00bb (contradicted)",
                  source="model", status="rejected", aspect="body")])
    rep.levels.append(row)
    editor = ReportEditor(ReportStore(tmp_path / "library.db"))
    qtbot.addWidget(editor)
    editor.set_report(rep)
    items = editor._items
    assert items["L2.m1"].text(3) == "m1" and items["L2.body.unsupported"].text(3) == "unsupported"
    assert items["L2.body.unsupported"].font(0).strikeOut()
    with qtbot.waitSignal(editor.level_selected) as selected:
        editor.tree.itemClicked.emit(items["L2.m1"], 0)
    assert selected.args == ["L2"]
    assert "[m1] measurement: L2 vertebral body height loss: 36.6 %" in editor.evidence.toPlainText()
    editor.tree.itemClicked.emit(items["L2.body.unsupported"], 0)
    assert "Not shown as a finding" in editor.evidence.toPlainText()
