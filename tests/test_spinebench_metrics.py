"""SpineBench metric code against hand-worked examples: accuracy, bootstrap intervals, judge scale, McNemar, paired
bootstrap, item-weighted total, and the deterministic report and dialogue checks."""
from __future__ import annotations

import math

import pytest

from spinebench.dialogue import check_turn, score_dialogue
from spinebench.metrics import (
    JUDGE_DIMENSIONS,
    accuracy,
    binomial_two_sided,
    dimension_0_100,
    mcnemar,
    mean_ci,
    paired_bootstrap,
    report_judge_score,
)
from spinebench.reports import check_report, parse_report
from spinebench.results import compare, summarise


def test_accuracy_value_and_n():
    e = accuracy([True, True, False, True])
    assert (e.value, e.n) == (0.75, 4)


def test_bootstrap_interval_hand_worked():
    # [0, 1]: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4 -> 2.5 % and 97.5 % quantiles 0 and 1
    e = mean_ci([0, 1])
    assert (e.value, e.lo, e.hi) == (0.5, 0.0, 1.0)
    # [0, 0, 0, 1]: P(mean = 0) = (3/4)^4 = 0.32; P(mean >= 0.75) = 4 (1/4)^3 (3/4) + (1/4)^4 = 0.051 > 0.025 while
    # P(mean = 1) = 0.0039 < 0.025 -> interval [0, 0.75]
    e = mean_ci([0, 0, 0, 1], b=20000)
    assert (e.value, e.lo, e.hi) == (0.25, 0.0, 0.75)
    # constant data: a degenerate interval
    assert mean_ci([1, 1, 1]).to_dict() == {"value": 1.0, "lo": 1.0, "hi": 1.0, "n": 3}
    assert mean_ci([]).value is None


def test_bootstrap_is_seeded():
    data = [0.13, 0.5, 0.77, 0.91, 0.02, 0.4, 0.66]
    assert mean_ci(data) == mean_ci(data)
    assert mean_ci(data, seed=1) != mean_ci(data, seed=2)


def test_judge_scale_and_report_score():
    assert [dimension_0_100(s) for s in (1, 2, 3, 4, 5)] == [0, 25, 50, 75, 100]
    with pytest.raises(ValueError):
        dimension_0_100(6)
    assert report_judge_score({d: 3 for d in JUDGE_DIMENSIONS}) == 50
    half = {d: (5 if n < 5 else 1) for n, d in enumerate(JUDGE_DIMENSIONS)}
    assert report_judge_score(half) == 50  # (5 x 100 + 5 x 0) / 10
    assert report_judge_score({**half, "coverage": None}) is None  # overall needs all 10 dimensions


def test_exact_binomial_hand_worked():
    assert binomial_two_sided(1, 7) == pytest.approx(2 * (1 + 7) / 128)  # 0.125
    assert binomial_two_sided(0, 5) == pytest.approx(2 / 32)
    assert binomial_two_sided(3, 6) == 1.0  # 2 * 42/64 capped
    assert binomial_two_sided(0, 0) == 1.0


def test_mcnemar_exact_and_chi_square():
    # 1 item only A gets right, 6 only B, 3 both right, 2 both wrong
    a = [True] * 1 + [False] * 6 + [True] * 3 + [False] * 2
    b = [False] * 1 + [True] * 6 + [True] * 3 + [False] * 2
    r = mcnemar(a, b)
    assert (r["a_only"], r["b_only"], r["method"]) == (1, 6, "exact binomial")
    assert r["p"] == pytest.approx(0.125)
    # 10 vs 25 discordant: chi2 = (|10 - 25| - 1)^2 / 35 = 5.6, p = P(chi2_1 > 5.6) = 0.01796
    a = [True] * 10 + [False] * 25
    b = [False] * 10 + [True] * 25
    r = mcnemar(a, b)
    assert r["method"].startswith("chi-square") and r["statistic"] == pytest.approx(5.6)
    assert r["p"] == pytest.approx(0.017966, abs=1e-5)
    assert r["p"] == pytest.approx(math.erfc(math.sqrt(5.6 / 2)))


def test_paired_bootstrap():
    a = [0.2, 0.5, 0.9, 0.4]
    same = paired_bootstrap(a, a)
    assert (same["diff"], same["lo"], same["hi"], same["p"]) == (0.0, 0.0, 0.0, 1.0)
    up = paired_bootstrap(a, [x + 0.1 for x in a])
    assert up["diff"] == pytest.approx(0.1) and up["lo"] == pytest.approx(0.1) and up["p"] == 0.0
    mixed = paired_bootstrap([0, 1, 0, 1], [1, 0, 1, 0])
    assert mixed["diff"] == 0 and mixed["p"] == pytest.approx(1.0)


def _rec(i, axis, fmt, score, modality="text", **kw):
    return {"id": i, "axis": axis, "format": fmt, "modality": modality, "subtype": kw.pop("subtype", ""),
            "score": score, **kw}


def test_total_is_weighted_by_item_count_and_split_by_modality():
    recs = [
        _rec("m1", "level_identification", "mcq", 1.0, correct=True, extraction="ok"),
        _rec("m2", "level_identification", "mcq", 1.0, "image+text", correct=True, extraction="ok"),
        _rec("m3", "level_identification", "mcq", 0.0, "image+text", correct=False, extraction="invalid"),
        _rec("r1", "report_generation", "report", 0.5, checks={"parses": True, "levels_covered": 0.5,
                                                               "no_outside_level": True, "values_match": False,
                                                               "score": 0.5, "n_values": 1}),
        _rec("d1", "consultation", "dialogue", 1.0, subtype="correction", dialogue={"passed": True, "fraction": 1.0}),
    ]
    s = summarise(recs, {})["summary"]
    assert s["total"]["value"] == pytest.approx(3.5 / 5)  # item-weighted, not the mean of the three axes
    assert s["axes"]["level_identification"]["value"] == pytest.approx(2 / 3)
    assert (s["mcq"]["text"]["value"], s["mcq"]["image+text"]["value"]) == (1.0, 0.5)
    assert s["mcq"]["extraction"] == {"ok": 2, "invalid": 1, "none": 0}
    assert s["report"]["checks"]["levels_covered"]["value"] == 0.5
    assert s["dialogue"]["by_subtype"]["correction"]["value"] == 1.0


def test_compare_pairs_items_and_uses_mcnemar():
    a = summarise([_rec(f"q{i}", "level_identification", "mcq", float(i < 2), correct=i < 2) for i in range(10)],
                  {"candidate": "a"})
    b = summarise([_rec(f"q{i}", "level_identification", "mcq", float(i < 9), correct=i < 9) for i in range(10)],
                  {"candidate": "b"})
    cmp = compare(a, b)
    row = cmp["rows"]["MCQ all"]
    assert (row["a_only"], row["b_only"]) == (0, 7)
    assert row["p"] == pytest.approx(2 / 2 ** 7)
    assert cmp["rows"]["total"]["diff"] == pytest.approx(0.7)


# --- deterministic report checks ------------------------------------------------------------------------------
CHECKS = {"levels_in_view": ["L2", "L2-L3", "L3"],
          "measurements": [{"name": "vertebral body height", "level": "L3", "value": 25.5, "unit": "mm"}]}
GOOD = """**TECHNIQUE:** CT of the lumbar spine.
FINDINGS:
- L2: partly in view, no fracture.
- L2-L3: disc height preserved.
- L3: vertebral body height 25.5 mm.
IMPRESSION: No acute abnormality at L2-L3."""


def test_report_checks_on_a_good_report():
    r = check_report(GOOD, CHECKS)
    assert (r["parses"], r["levels_covered"], r["no_outside_level"], r["values_match"]) == (True, 1.0, True, True)
    assert r["score"] == 1.0 and r["n_values"] == 1


def test_report_checks_catch_outside_levels_and_wrong_values():
    bad = GOOD.replace("25.5 mm", "2.9 cm").replace("No acute", "L4-L5 stenosis. No acute")
    r = check_report(bad, CHECKS)
    assert r["outside_levels"] == ["L4-L5"] and not r["no_outside_level"]
    assert r["unmatched_values"] == [29.0] and not r["values_match"]
    assert r["score"] == pytest.approx(0.5)
    rounded = check_report(GOOD.replace("25.5 mm", "2.55 cm"), CHECKS)
    assert rounded["values_match"]


def test_report_checks_give_nothing_for_an_echoed_template():
    echo = ("TECHNIQUE: one line on the examination.\nFINDINGS:\n- <level>: <what can be said about this level>\n"
            "IMPRESSION: one to three sentences.")
    assert parse_report(echo, ["L3"]) is None
    r = check_report(echo, CHECKS)
    assert (r["parses"], r["has_content"], r["score"]) == (False, False, 0.0)
    assert parse_report("TECHNIQUE: x\nIMPRESSION: y\nFINDINGS: - L3: ok", ["L3"]) is None  # order matters


# --- dialogue checks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer, check, ok", [
    ("L5-S1. The disc is ...", {"type": "first_level", "level": "L5-S1"}, True),
    ("We discussed L4-L5, then L5-S1.", {"type": "first_level", "level": "L5-S1"}, False),
    ("L3", {"type": "first_level", "level": "L3", "only": True}, True),
    ("L3 and L4", {"type": "first_level", "level": "L3", "only": True}, False),
    ("At L3 the body is intact.", {"type": "mentions", "level": "L3"}, True),
    ("The L5-S1 disc is outside the field of view, so I cannot assess it.", {"type": "refuses", "level": "L5-S1"},
     True),
    ("L5-S1 is not included in this study.", {"type": "refuses", "level": "L5-S1"}, True),
    ("L5-S1 shows a mild disc bulge.", {"type": "refuses", "level": "L5-S1"}, False),
    ("It is not in view. However L5-S1 has severe stenosis.", {"type": "refuses", "level": "L5-S1"}, False),
    ("I cannot tell which vertebra this is.", {"type": "no_level_named"}, True),
    ("The top vertebra is T11.", {"type": "no_level_named"}, False),
])
def test_dialogue_checks(answer, check, ok):
    assert check_turn(answer, check) is ok


def test_dialogue_item_passes_only_when_every_turn_passes():
    checks = [[{"type": "mentions", "level": "L3"}], [{"type": "first_level", "level": "L2", "only": True}]]
    assert score_dialogue(["L3 looks fine.", "L2"], checks) == {"passed": True, "turn_checks": [[True], [True]],
                                                                "fraction": 1.0}
    r = score_dialogue(["L3 looks fine.", "L3"], checks)
    assert (r["passed"], r["fraction"]) == (False, 0.5)
