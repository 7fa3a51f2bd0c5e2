"""SpineBench grounding axis: its items carry the truth they claim, and its scoring counts unsupported findings as
shown (hand-written answers here; benchmarks/bench_grounding.py runs the real model)."""
from spinebench.grounding import CASES, grounding_items, markdown, score, summarise
from spinebench.holdout import BENCHMARK_CASES


def test_items_are_deterministic_and_their_measured_truth_is_the_facts():
    items = grounding_items()
    assert [i.id for i in items] == [i.id for i in grounding_items()] and len({i.id for i in items}) == len(items)
    assert set(CASES) == set(BENCHMARK_CASES)
    assert {i.expect for i in items} == {"cannot_tell", "measured"}
    for item in items:
        sheet = item.sheet()
        assert item.level is None or item.level in sheet.levels_in_view, item
        if item.expect == "measured":
            fact = sheet.fact(item.fact)
            assert fact is not None and fact.topic == item.topic and fact.positive == item.truth, (item, fact)
            # the workstation's own statement of the fact is scored as supported (its words agree with its grade)
            assert score(item, [fact.text], "grounded", [fact.id]).unsupported == [], fact.text
        else:
            assert not [f for f in sheet.facts if f.topic == item.topic]


def test_scoring_counts_unsupported_findings_and_honest_answers():
    items = {i.question + str(i.truth): i for i in grounding_items()}
    cannot = next(i for i in grounding_items() if i.expect == "cannot_tell" and i.level == "T12")
    raw = score(cannot, ["Yes, there is a compression fracture of T12.", "Rest is advised."], "raw", [])
    assert raw.unsupported == ["Yes, there is a compression fracture of T12."] and not raw.says_cannot_tell
    honest = score(cannot, ["The data cannot tell whether T12 has a compression fracture."], "grounded", [])
    assert honest.unsupported == [] and honest.says_cannot_tell
    general = score(cannot, ["Compression fractures are common in osteoporosis."], "raw", [])
    assert general.unsupported == []
    wedge = items["Is there a compression fracture of L1?True"]
    assert score(wedge, ["No, L1 has no fracture."], "raw", []).unsupported
    cited = score(wedge, ["There is a compression fracture of L1."], "grounded", [wedge.fact])
    assert cited.unsupported == [] and cited.cites_measurement
    said = score(wedge, ["L1 has lost 36 % of its height."], "raw", [])
    assert said.cites_measurement  # the raw answer states the measured value (35.9 %)
    normal = items["Is there a compression fracture of L3?False"]
    assert score(normal, ["Yes."], "raw", []).unsupported == ["Yes."]  # a bare yes answers the question's topic
    assert score(normal, ["No."], "raw", []).unsupported == []
    doc = summarise([cannot, wedge], [raw, honest, said, cited], "test model")
    assert doc["conditions"]["raw"]["unsupported_finding_rate"] == 0.5
    assert doc["conditions"]["grounded"]["answers_with_unsupported_finding"] == 0
    assert "| raw | 1/2 | 0.500 |" in markdown(doc, "2026-12-07")


def test_spinebench_has_a_grounding_command(tmp_path):
    from spinebench.cli import parser

    args = parser().parse_args(["grounding", "--limit", "2", "-o", str(tmp_path / "g")])
    assert args.fn.__name__ == "cmd_grounding" and args.limit == 2 and args.out == tmp_path / "g"
