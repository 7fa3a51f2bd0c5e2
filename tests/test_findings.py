"""The findings layer: facts from real automatic measurements on CT phantoms (a known wedge, a normal spine), and the
after-generation check on hand-written model outputs (the real model's answers are checked in
tests/test_findings_model.py)."""
import pytest

from core.findings import build_facts, check_answer
from core.findings.check import answer_schema, split_text
from core.report.schema import errors
from core.spine.labelling import SpineLabelling, VertebraLabel
from core.spine.measure.auto import auto_measurements
from core.spine.measure.geometry import slip_measurement
from core.synthetic.phantom import spine_phantom

LEVELS = ["L1", "L1-L2", "L2", "L2-L3", "L3", "L3-L4", "L4"]
WEDGE = 0.40  # anterior wall height 60 % of the posterior wall's: 0.9 x 40 = 36 % at the 10 % measuring column


def _phantom_facts(wedges=None):
    ph = spine_phantom("L1", "L4", shape=(120, 120, 100), spacing=(1.5, 1.5, 1.5), ribs=False, wedges=wedges)
    lab = SpineLabelling([VertebraLabel(n, c) for n, c in ph.centres.items()])
    auto = auto_measurements(ph.volume, lab)
    return build_facts(auto.measurements, LEVELS, modality="CT"), auto


@pytest.fixture(scope="module")
def wedged():
    return _phantom_facts({"L2": WEDGE})


@pytest.fixture(scope="module")
def normal():
    return _phantom_facts()


def test_a_40_percent_wedge_gives_a_genant_grade_fact(wedged):
    sheet, auto = wedged
    l2 = sheet.fact("F-genant-L2")
    assert l2 is not None, [m.summary() for m in auto.measurements] + auto.skipped
    assert l2.value == pytest.approx(0.9 * WEDGE * 100, abs=4.0)  # 36 % height loss, measured
    assert l2.scale == "Genant" and l2.grade == "2" and l2.positive and "wedge" in l2.grade_label
    assert l2.measurement_id is None and l2.method.startswith("auto:")
    for name in ("L1", "L3", "L4"):  # the other bodies are not wedged
        f = sheet.fact(f"F-genant-{name}")
        assert f is not None and f.grade == "0" and not f.positive, f


def test_a_normal_spine_gives_no_grade(normal):
    sheet, _ = normal
    genant = [f for f in sheet.facts if f.kind == "body_heights"]
    assert [f.level for f in genant] == ["L1", "L2", "L3", "L4"]
    assert all(not f.positive for f in sheet.facts), [f.text for f in sheet.facts if f.positive]
    answer = check_answer([{"text": "Yes, there is a compression fracture of L3.", "kind": "finding", "cites": []}],
                          sheet, question="Is there a compression fracture of L3?", level="L3")
    assert not answer.statements[0].shown and "F-genant-L3" in answer.statements[0].reason
    assert [s.cites for s in answer.shown()] == [["F-genant-L3"]]  # the measured fact is given instead


def test_the_wedge_answer_cites_the_ratio_and_the_grade(wedged):
    sheet, _ = wedged
    answer = check_answer([{"text": "There is a wedge compression fracture of L2.", "kind": "finding",
                            "cites": ["F-genant-L2"]}], sheet, question="Is L2 fractured?", level="L2")
    assert answer.statements[0].shown and answer.statements[0].cites == ["F-genant-L2"]
    text = answer.to_text()
    assert "[F-genant-L2]" in text and "Genant grade 2" not in answer.statements[0].text
    assert any("Genant grade 2 (moderate)" in s.text and "%" in s.text for s in answer.shown())


def test_wrong_grades_and_denials_are_contradicted(wedged):
    sheet, _ = wedged
    answer = check_answer([
        {"text": "L2 shows a Genant grade 3 fracture.", "kind": "finding", "cites": ["F-genant-L2"]},
        {"text": "There is no fracture of L2.", "kind": "finding", "cites": []},
        {"text": "L3 has no compression fracture.", "kind": "finding", "cites": ["F-genant-L3"]},
    ], sheet)
    first, second, third = answer.statements
    assert not first.shown and "grade 3" in first.reason and "Genant grade 2" in first.reason
    assert not second.shown and second.reason.startswith("contradicted by [F-genant-L2]")
    assert third.shown and third.cites == ["F-genant-L3"]


def test_the_bundled_ct_question_is_not_answered_with_an_invented_fracture():
    sheet = build_facts([], ["T11", "T11-T12", "T12"], modality="CT")
    q = "Is there any compression fracture of the vertebra shown here?"
    answer = check_answer("Yes, there is a compression fracture of the vertebra shown here.", sheet, question=q)
    assert not answer.statements[0].shown and "not measured at T11" in answer.statements[0].reason
    assert not [s for s in answer.shown() if s.kind == "finding"]
    assert any("cannot tell" in s.text for s in answer.shown())
    assert any("body heights" in n for n in answer.needs)
    text = answer.to_text()
    assert "~~Yes, there is a compression fracture" in text and "did not see the images" in text


def test_the_lumbar_crop_denial_is_not_shown_either():
    sheet = build_facts([], ["L2", "L2-L3", "L3", "L3-L4", "L4"], modality="CT")
    answer = check_answer([{"text": "No, there is no compression fracture of L3.", "kind": "finding",
                            "cites": []}], sheet, question="Is there a compression fracture of L3?", level="L3")
    assert not answer.statements[0].shown and "L3" in answer.statements[0].reason
    assert answer.needs and "L3" in answer.needs[0]


def test_meyerding_and_stenosis_need_their_measurements():
    slip = slip_measurement((0, 10.0, 0), (0, 12.0, 0), (0, -18.0, 0), "L4-L5")  # 2/30 = 6.7 % anterior slip
    sheet = build_facts([slip], ["L4", "L4-L5", "L5"], modality="CT")
    f = sheet.fact("F-meyerding-L4-L5")
    assert f.grade == "I" and f.positive and f.value == pytest.approx(6.67, abs=0.01)
    answer = check_answer([
        {"text": "Meyerding grade V spondyloptosis at L4-L5.", "kind": "finding", "cites": []},
        {"text": "Meyerding grade I anterolisthesis at L4-L5.", "kind": "finding", "cites": ["F-meyerding-L4-L5"]},
        {"text": "Severe central canal stenosis at L4-L5.", "kind": "finding", "cites": []},
        {"text": "There is a disc herniation at L4-L5.", "kind": "finding", "cites": []},
    ], sheet)
    v, one, stenosis, hernia = answer.statements
    assert not v.shown and "grade V" in v.reason
    assert one.shown
    assert not stenosis.shown and "AP canal diameter" in stenosis.reason
    assert not hernia.shown and "did not see the images" in hernia.reason


def test_general_knowledge_uncertainty_and_invented_citations():
    sheet = build_facts([], ["L3"], modality="CT")
    answer = check_answer([
        {"text": "Compression fractures are common in osteoporosis.", "kind": "general", "cites": ["osteo#x"]},
        {"text": "A fracture of L3 cannot be determined without measuring the body heights.", "kind": "cannot_tell",
         "cites": []},
        {"text": "Please correlate with the clinical findings.", "kind": "general", "cites": ["F-made-up"]},
    ], sheet, passage_ids=["osteo#x"])
    general, unsure, plain = answer.statements
    assert general.shown and general.kind == "general" and general.cites == ["osteo#x"]
    assert unsure.shown and unsure.kind == "cannot_tell"
    assert plain.shown and plain.cites == [] and "F-made-up" in plain.reason
    assert "(general knowledge) [osteo#x]" in answer.to_text()


def test_plain_text_is_split_and_its_brackets_read_as_citations():
    parts = split_text("L2 has a wedge fracture [F-genant-L2]. Rest is advised.\n- Follow up in clinic")
    assert [p["text"] for p in parts] == ["L2 has a wedge fracture .", "Rest is advised.", "Follow up in clinic"]
    assert parts[0]["cites"] == ["F-genant-L2"]


def test_not_assessed_lists_what_the_data_cannot_give():
    sheet = build_facts([], ["L4", "L4-L5", "L5"], modality="MR")
    topics = {n.topic for n in sheet.not_assessed}
    assert {"signal", "modic", "degeneration", "nerve", "herniation", "fracture", "listhesis"} <= topics
    ct = build_facts([], ["L4"], modality="CT")
    modic = next(n for n in ct.not_assessed if n.topic == "modic")
    assert "MRI" in modic.needs
    assert "You do not see the images" in sheet.to_prompt()


def test_answer_schema_allows_only_known_ids():
    schema = answer_schema(["F-genant-L2", "doc#sec"])
    ok = {"statements": [{"text": "L2 wedge fracture, 36%.", "kind": "finding", "cites": ["F-genant-L2"]}]}
    assert errors(ok, schema) == []
    bad = {"statements": [{"text": "There is a fracture.", "kind": "finding", "cites": ["F-genant-L9"]}]}
    assert errors(bad, schema)
    empty = answer_schema([])
    assert errors({"statements": [{"text": "No facts are known.", "kind": "cannot_tell", "cites": []}]}, empty) == []


@pytest.mark.parametrize(("method", "view", "grade"), [
    ("auto:ct-sagittal-outline@1", "within ±5 %: no slip stated", "none"),  # was 'Meyerding I' on the view
    ("user:Dr A", "(Meyerding I)", "I"),  # a slip a user measured is graded as measured
])
def test_a_small_slip_reads_the_same_on_the_view_and_in_the_findings(method, view, grade):
    from app.measure.values import format_value

    slip = slip_measurement((0, 10.84, 0), (0, 12.0, 0), (0, -30.0, 0), "L4-L5", method)  # 1.16/42 = 2.8 %
    assert slip.value == pytest.approx(2.76, abs=0.01)
    fact = build_facts([slip], ["L4", "L4-L5", "L5"], modality="CT").fact("F-meyerding-L4-L5")
    assert view in format_value(slip)
    assert fact.grade == grade and fact.positive == (grade == "I")


def test_a_scale_calibration_is_not_a_measurement_of_the_patient():
    """A radiograph's calibration is stored with its measurements but never reaches the chat, the findings or a
    report as a measurement."""
    from core.spine.measure.measurement import context_measurements
    from core.xray.measure import calibration_measurement

    cal = calibration_measurement((10.0, 10.0), (110.0, 10.0), 100.0)
    slip = slip_measurement((0, 10.0, 0), (0, 12.0, 0), (0, -18.0, 0), "L4-L5")
    assert not cal.is_finding and slip.is_finding
    assert [m.name for m in context_measurements([cal, slip])] == [slip.to_context().name]
    assert [f.kind for f in build_facts([cal, slip], ["L4-L5"]).facts] == ["levels", "slip"]
