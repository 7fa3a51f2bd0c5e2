"""Quality gates: near duplicates, Cohen's kappa (hand-worked), MCQ balance, PHI scan, case-level splits, leakage."""
from __future__ import annotations

from collections import Counter

import pytest

from curation.quality import (
    assign_splits,
    balance_positions,
    jaccard,
    leakage,
    near_duplicate_pairs,
    phi_findings,
    shingles,
)
from curation.review import cohen_kappa
from curation.sources.deid import name_token_hash

BASE = ("Pfirrmann grade IV describes an inhomogeneous grey to dark disc in which the distinction between nucleus "
        "and annulus is lost and the disc height is normal to moderately decreased")


def test_near_duplicates_found_and_distinct_texts_not():
    texts = {
        "a": BASE,
        "b": BASE.replace("moderately", "mildly"),  # one word changed
        "c": BASE + " on T2",  # two words added
        "d": "Modic type 1 changes are bone marrow oedema next to the endplate, dark on T1 and bright on T2",
        "e": "Which intervertebral disc lies between the L3 and L4 vertebrae? The L3-L4 disc.",
        "f": "Which intervertebral disc lies between the L4 and L5 vertebrae? The L4-L5 disc.",
    }
    pairs = {(a, b) for a, b, _ in near_duplicate_pairs(texts, threshold=0.8)}
    assert ("a", "b") in pairs and ("a", "c") in pairs
    assert not any("d" in p for p in pairs)
    assert ("e", "f") not in pairs  # same template, different answer: not a duplicate
    assert jaccard(shingles(texts["e"]), shingles(texts["f"])) < 0.5


def test_blocks_keep_image_items_apart():
    texts = {"x": BASE, "y": BASE}
    assert near_duplicate_pairs(texts, blocks={"x": "img1.png", "y": "img2.png"}) == []
    assert [p[:2] for p in near_duplicate_pairs(texts, blocks={"x": "i.png", "y": "i.png"})] == [("x", "y")]


def test_cohen_kappa_hand_worked():
    # 10 items. Rater A accepts 7, rejects 3; rater B accepts 7, rejects 3; they agree on 8.
    # p_o = 0.8; p_e = 0.7 * 0.7 + 0.3 * 0.3 = 0.58; kappa = (0.8 - 0.58) / (1 - 0.58) = 0.5238...
    a = ["acc", "acc", "rej", "rej", "acc", "acc", "rej", "acc", "acc", "acc"]
    b = ["acc", "rej", "rej", "rej", "acc", "acc", "acc", "acc", "acc", "acc"]
    assert cohen_kappa(a, b) == pytest.approx(0.22 / 0.42)
    assert cohen_kappa(a, a) == 1.0
    # agreement exactly at chance level (p_o = p_e = 0.5) gives kappa 0
    assert cohen_kappa(["x", "y", "x", "y"], ["x", "x", "y", "y"]) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        cohen_kappa(["x"], [])


def _mcq(i: int, idx: int) -> dict:
    return {"id": f"m{i:02d}", "task": "mcq",
            "content": {"question": f"Q{i}?", "options": ["A1", "B1", "C1", "D1"], "answer_index": idx,
                        "rationale": "r"}}


def test_balance_positions_spreads_answers_and_keeps_the_right_option():
    items = [_mcq(i, 0) for i in range(12)]  # every answer in position A
    changed = {it["id"]: new for it, new, _ in balance_positions(items)}
    final = [changed.get(it["id"], it["content"]) for it in items]
    assert Counter(c["answer_index"] for c in final) == {0: 3, 1: 3, 2: 3, 3: 3}
    assert all(c["options"][c["answer_index"]] == "A1" for c in final)  # the correct option moved with its index


def test_phi_scan():
    salt = b"0123456789abcdef-phi"
    hashes = {name_token_hash("Johnathan", salt)}
    assert phi_findings("The L4-L5 disc is narrowed (Pfirrmann grade IV).", hashes, salt) == []
    assert phi_findings("Grading as in Pfirrmann et al., Spine 2001; 25% to 50% slip.") == []
    for text in ("Seen on 12/03/2021", "scan of 2021-03-12", "born 3 March 1961", "MRN: 12345678",
                 "call 020 7946 0958", "mail jd@example.org", "Mr Smith has pain", "DOE^JOHN"):
        assert phi_findings(text), text
    assert phi_findings("Johnathan says hello", hashes, salt) == ["name from a DICOM header (token hash match)"]


def _items(case_sizes: dict[str, int], doc_sizes: dict[str, int]) -> list[dict]:
    out = []
    for case, n in case_sizes.items():
        out += [{"id": f"{case}-{i}", "case_id": case, "group_key": case, "images": [], "task": "open_qa",
                 "content": {"question": f"{case} question number {i} about the level?",
                             "answer": f"answer {i} {case}"}} for i in range(n)]
    for doc, n in doc_sizes.items():
        out += [{"id": f"{doc}-{i}", "case_id": "", "group_key": doc, "images": [], "task": "open_qa",
                 "content": {"question": f"What does {doc} say in section {i}?",
                             "answer": f"Section {i} of {doc} says {i * 7} things."}} for i in range(n)]
    return out


def test_case_level_split_never_shares_a_case():
    items = _items({f"case{i}": 6 for i in range(8)}, {f"doc{i}": 10 for i in range(12)})
    splits = assign_splits(items, [])
    per_group: dict[str, set] = {}
    for it in items:
        per_group.setdefault(it["group_key"], set()).add(splits[it["id"]])
    assert all(len(s) == 1 for s in per_group.values())
    counts = Counter(splits.values())
    assert counts["bench"] > 0 and counts["val"] > 0 and counts["train"] > counts["bench"]
    assert leakage(items, splits).ok


def test_leakage_detected_and_prevented_by_merging_near_duplicates():
    items = _items({"caseA": 4}, {"doc1": 3, "doc2": 3})
    bad = {it["id"]: "train" for it in items}
    bad["caseA-0"] = "bench"  # one case in both splits
    rep = leakage(items, bad)
    assert rep.shared_cases == ["caseA"] and not rep.ok
    # a near duplicate across two documents: identical content in doc1 and doc2
    items[4]["content"] = items[7]["content"] = {"question": "What is the L4-L5 disc called when it is dark?",
                                                 "answer": "A degenerated disc, Pfirrmann grade IV or V."}
    split = {it["id"]: ("bench" if it["group_key"] == "doc2" else "train") for it in items}
    assert leakage(items, split).near_duplicates
    pairs = near_duplicate_pairs({it["id"]: str(it["content"]) for it in items})
    merged = assign_splits(items, pairs, ratios={"bench": 0.5, "val": 0.0})
    assert merged[items[4]["id"]] == merged[items[7]["id"]]
    assert leakage(items, merged).ok


def test_held_out_cases_go_to_bench_and_count_towards_its_share():
    items = _items({f"case{i}": 6 for i in range(8)}, {f"doc{i}": 10 for i in range(12)})
    held = {"case2", "case5"}
    splits = assign_splits(items, [], held_out_cases=held)
    by_case = {it["case_id"]: splits[it["id"]] for it in items if it["case_id"]}
    assert by_case["case2"] == by_case["case5"] == "bench"
    # 2 of 8 cases (25 %) already exceed the 15 % bench share: no other case is taken for bench
    assert [c for c, s in by_case.items() if s == "bench"] == sorted(held)
    assert any(s == "train" for s in by_case.values()) and leakage(items, splits).ok
    # without pinning, the hash order decides, and at least one of the two cases is not held out
    free = assign_splits(items, [])
    assert {free[it["id"]] for it in items if it["case_id"] in held} != {"bench"}
