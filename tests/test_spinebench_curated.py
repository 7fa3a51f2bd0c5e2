"""Pathology / surgical-planning items from a curation export (written here in curation/export.py's record format),
and the case-level / near-duplicate leakage check, also through the build."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from spinebench import build
from spinebench.curated import items_from_export, leakage, read_export
from spinebench.schema import load_benchmark, mcq_text

SYSTEM = "You are SpineMed, a decision-support assistant for spine imaging."


def _mcq(rid, question, options, answer, axis, status="accepted", case=None, split="bench", images=()):
    letters = "ABCDE"
    text = f"{question}\n\n" + "\n".join(f"{letters[n]}. {o}" for n, o in enumerate(options)) + \
        "\n\nAnswer with the letter of the correct option and a short reason."
    user = ({"role": "user", "content": [*({"type": "image"} for _ in images), {"type": "text", "text": text}]}
            if images else {"role": "user", "content": text})
    return {"messages": [{"role": "system", "content": SYSTEM}, user,
                         {"role": "assistant", "content": f"{answer}. {options[letters.index(answer)]}"}],
            "images": list(images),
            "meta": {"id": rid, "split": split, "task": "mcq", "subtask": "x", "axis": axis, "review_status": status,
                     "case_id": case, "options": options, "answer": answer}}


def _open(rid, question, answer, axis, status="auto_gated", case=None, split="bench"):
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question},
                         {"role": "assistant", "content": answer}], "images": [],
            "meta": {"id": rid, "split": split, "task": "open_qa", "subtask": "y", "axis": axis,
                     "review_status": status, "case_id": case}}


NEAR = ("Which Meyerding grade describes an anterolisthesis of L4 on L5 measuring 38 percent of the vertebral body "
        "width on a standing lateral radiograph")


@pytest.fixture
def export(tmp_path) -> Path:
    out = tmp_path / "export"
    (out / "images").mkdir(parents=True)
    Image.new("RGB", (16, 16), (90, 90, 90)).save(out / "images" / "key.png")
    bench = [
        _mcq("p1", NEAR, ["Grade I", "Grade II", "Grade III", "Grade IV"], "B", "pathology_assessment"),
        _mcq("p2", "Which Modic type shows low T1 and high T2 endplate signal?", ["Type 1", "Type 2", "Type 3"], "A",
             "pathology_assessment", case="verse:sub-verse004", images=["images/key.png"]),
        _open("s1", "What is the first-line management of an uncomplicated lumbar disc herniation with radiculopathy?",
              "Conservative care for about six weeks unless red flags or progressive deficit.", "surgical_planning"),
        _mcq("l1", "Which vertebra is circled?", ["L1", "L2"], "A", "level_identification"),
        _mcq("a1", "Which sequence shows fat as bright?", ["T1", "STIR"], "A", "anatomy_imaging"),
        _mcq("p3", "Pending question about stenosis grading?", ["a", "b"], "A", "pathology_assessment",
             status="pending"),
        _open("s2", "Rejected planning question?", "x", "surgical_planning", status="rejected"),
    ]
    train = [
        _mcq("t1", NEAR.replace("38 percent", "38 %"), ["Grade I", "Grade II", "Grade III", "Grade IV"], "B",
             "pathology_assessment", split="train"),
        _open("t2", "Describe the L1 compression fracture.", "Height loss.", "pathology_assessment",
              case="verse:sub-verse004", split="train"),
        _open("t3", "Unrelated question about cervical myelopathy signs?", "Hoffmann sign ...", "pathology_assessment",
              split="train"),
    ]
    for name, recs in (("bench", bench), ("train", train)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return out


def test_only_reviewed_pathology_and_surgical_items_are_taken(export, tmp_path):
    res = items_from_export(export / "bench.jsonl", tmp_path / "img")
    by_id = {i.id: i for i in res.items}
    assert set(by_id) == {"cur-p1", "cur-p2", "cur-s1"}
    assert res.skipped == {"axis level_identification not taken": 1, "axis anatomy_imaging not taken": 1,
                           "review status pending": 1, "review status rejected": 1}
    p1, p2, s1 = by_id["cur-p1"], by_id["cur-p2"], by_id["cur-s1"]
    assert (p1.format, p1.answer, p1.review_status, p1.axis) == ("mcq", "B", "accepted", "pathology_assessment")
    assert p1.meta["options_in_text"] and mcq_text(p1).count("B. Grade II\n") == 1  # options not listed twice
    assert p1.system == SYSTEM
    assert (p2.modality, len(p2.images)) == ("image+text", 1) and (tmp_path / "img").glob("*.png")
    assert (s1.format, s1.review_status, s1.axis) == ("open", "auto_gated", "surgical_planning")
    assert s1.reference.startswith("Conservative care")


def test_leakage_finds_shared_cases_and_near_duplicates(export, tmp_path):
    items = items_from_export(export / "bench.jsonl", tmp_path / "img").items
    leak = leakage(items, read_export(export / "train.jsonl"))
    assert leak.case_overlaps == [("cur-p2", "verse:sub-verse004")]
    assert [(a, b) for a, b, _ in leak.near_duplicates] == [("cur-p1", "t1")]
    assert leak.near_duplicates[0][2] >= 0.7
    assert leak.leaking_ids == {"cur-p1", "cur-p2"}


def test_build_drops_leaking_items_and_reports_it(export, tmp_path):
    if not build.DEFAULT_SAMPLES.is_dir():
        pytest.skip("shared spine samples not found beside the checkout")
    out = tmp_path / "bench"
    manifest = build.build(out, build.DEFAULT_SAMPLES, export, log=lambda s: None)
    ids = {i.id for i in load_benchmark(out).items}
    assert "cur-s1" in ids and not ids & {"cur-p1", "cur-p2"}
    # the generated items of the case the training split used are dropped too
    assert not any(i.startswith(("lvl-img-verse004", "report-verse004", "dlg-verse004")) for i in ids)
    leak = manifest["leakage"]
    assert leak["checked"] and "cur-p1" in leak["dropped"] and "lvl-img-verse004-sagittal-L1" in leak["dropped"]
    assert manifest["counts"]["by_axis"]["surgical_planning"] == 1
    sheet = (out / "datasheet.md").read_text()
    assert "Checked against 3 train/val records" in sheet and "auto_gated" in sheet
