"""End to end with the real embedded model: a few knowledge documents + one real labelled case (VerSe sub-verse004)
-> generate (templates, labels, LLM draft + revise) -> review with the CLI (two reviewers) -> export; every exported
item traces back to its source, the datasheet renders, the HF dataset loads."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from core.paths import REPO_ROOT
from curation.cli import main
from curation.store import CurationStore

ARTIFACTS = Path(__file__).parent / "_artifacts" / "curation"


def _run(argv: list[str], capsys) -> str:
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def _check_trace(rec: dict, store: CurationStore, export_dir: Path) -> None:
    prov = rec["provenance"]
    source = store.source(prov["source_id"])
    assert source is not None, rec["meta"]["id"]
    chunk = store.chunk(prov["chunk_id"])
    assert chunk is not None and chunk["source_id"] == source["id"] and chunk["location"] == prov["location"]
    item = store.item(rec["meta"]["id"])
    assert store.draft(prov["draft_id"])["job_key"] == item["job_key"]
    assert store.revision(prov["revision_id"])["item_id"] == item["id"]
    assert prov["generator"] and prov["prompt_template"] and prov["prompt_version"]
    if source["kind"] == "knowledge_doc":
        path, line = prov["location"].rsplit(":", 1)
        heading = (REPO_ROOT / path).read_text(encoding="utf-8").splitlines()[int(line) - 1]
        assert heading.startswith("## ") and heading[3:].strip() in chunk["title"]
    else:
        label_file = Path(source["meta"]["label_path"])
        value = int(prov["location"].rsplit("label value ", 1)[1])
        data = np.asarray(nib.load(str(label_file)).dataobj)
        assert (np.rint(data) == value).any()
        assert rec["reference"] and set(rec["meta"]["levels"]) <= set(source["meta"]["levels"]) | {
            f"{a}-{b}" for a, b in zip(source["meta"]["levels"], source["meta"]["levels"][1:])}
    for rel in rec["images"]:
        assert (export_dir / rel).is_file()
    msgs = rec["messages"]
    assert msgs[0]["role"] == "system" and msgs[-1]["role"] == "assistant" and msgs[1]["role"] == "user"
    if rec["images"]:  # one image part per path, in the first user turn
        assert [p["type"] for p in msgs[1]["content"]] == ["image"] * len(rec["images"]) + ["text"]


def test_end_to_end_with_the_embedded_model(tmp_path, samples, capsys, monkeypatch, embedded_model):
    model = embedded_model
    db = str(tmp_path / "cur" / "curation.db")
    out = _run(["--db", db, "ingest", "knowledge", "--only", "disc-degeneration-pfirrmann,spondylolisthesis-grading"],
               capsys)
    assert "2 documents" in out
    out = _run(["--db", db, "ingest", "case", str(samples / "verse004_labels_only_T9-L5"), "--case-id", "verse004",
                "--dataset", "verse"], capsys)
    assert "9 vertebrae" in out
    _run(["--db", db, "generate"], capsys)  # templates + labels, then the gates
    out = _run(["--db", db, "generate", "--llm", "--model", str(model), "--tasks", "mcq,open_qa", "--limit", "2",
                "--max-tokens", "160"], capsys)
    assert "gates:" in out
    store = CurationStore(db)
    llm = store.items("generator_kind = 'llm'")
    drafts = list(store.db["drafts"].rows_where("generator_kind = 'llm'"))
    assert len(drafts) == 2 and all(d["generator"] == f"llama-cpp:{model.name}" for d in drafts)
    for it in llm:  # whatever the 135M model wrote, the draft and the revision (with the model's critique) exist
        assert store.draft(it["draft_id"])["raw_output"]
        rev = store.revision(it["revision_id"])
        assert rev["generator"] == f"llama-cpp:{model.name}" and rev["critique"] is not None
    assert {i["review_status"] for i in store.items()} <= {"auto_gated", "auto_rejected"}

    # review: drA in the interactive queue, drB as a second reviewer of the same items, plus one direct decision
    monkeypatch.setattr(sys, "stdin", io.StringIO("a\na\nr\nanswer too vague\na\nq\n"))
    out = _run(["--db", db, "review", "--reviewer", "drA", "--limit", "4"], capsys)
    assert "accept 3" in out and "reject 1" in out
    monkeypatch.setattr(sys, "stdin", io.StringIO("a\nr\nwrong emphasis\nr\nnot supported\na\n"))
    out = _run(["--db", db, "review", "--reviewer", "drB", "--second"], capsys)
    assert "accept 2" in out and "reject 2" in out
    out = _run(["--db", db, "review", "--agreement"], capsys)
    assert "drA vs drB: 4 items" in out and "Cohen's kappa" in out
    image_item = store.items("review_status = 'auto_gated' AND modality = 'image+text'")[0]
    _run(["--db", db, "review", "--reviewer", "drA", "--item", image_item["id"], "--accept"], capsys)
    open_item = store.items("review_status = 'auto_gated' AND task = 'open_qa'")[0]
    edited = {**open_item["content"], "answer": open_item["content"]["answer"] + " (checked by drA)"}
    (tmp_path / "edit.json").write_text(json.dumps(edited))
    out = _run(["--db", db, "review", "--reviewer", "drA", "--item", open_item["id"], "--edit-file",
                str(tmp_path / "edit.json"), "--reason", "clarified"], capsys)
    assert "edited" in out and store.item(open_item["id"])["content"] == edited
    assert main(["--db", db, "review", "--reviewer", "drA", "--item", open_item["id"], "--reject"]) == 1  # no reason
    capsys.readouterr()

    # export: human decisions only, then with the auto-gated items labelled as such
    only_human = tmp_path / "export_human"
    out = _run(["--db", db, "export", str(only_human), "--no-hf"], capsys)
    human = [json.loads(line) for split in ("train", "val", "bench")
             for line in (only_human / f"{split}.jsonl").read_text().splitlines()]
    assert human and {r["meta"]["review_status"] for r in human} == {"accepted", "edited"}
    assert image_item["id"] in {r["meta"]["id"] for r in human}
    full = tmp_path / "export"
    out = _run(["--db", db, "export", str(full), "--include-auto-gated"], capsys)
    assert "leakage check passed" in out
    records = [json.loads(line) for split in ("train", "val", "bench")
               for line in (full / f"{split}.jsonl").read_text().splitlines()]
    statuses = {r["meta"]["review_status"] for r in records}
    assert statuses <= {"accepted", "edited", "auto_gated"} and "auto_gated" in statuses
    for rec in records:
        _check_trace(rec, store, full)
    assert {r["meta"]["task"] for r in records} >= {"mcq", "open_qa", "consultation", "report"}
    assert any(r["images"] for r in records) and any(r["provenance"]["generator_kind"] == "labels" for r in records)

    from datasets import load_from_disk

    hf = load_from_disk(str(full / "hf"))
    assert sum(len(hf[s]) for s in hf) == len(records)
    # the consumers read it: the training reader (JSONL and the HF split) and SpineBench's export reader
    from training.data import read_records

    assert len(read_records([full / "train.jsonl"])) == len((full / "train.jsonl").read_text().splitlines())
    assert len(read_records([full / "hf" / "train"])) == len(hf["train"])
    sheet = (full / "datasheet.md").read_text()
    assert "auto_gated" in sheet and "NOT reviewed by a clinician" in sheet
    png = Image.open(full / "datasheet.png")
    assert png.size[0] > 600 and png.size[1] > 400
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(full / "datasheet.png", ARTIFACTS / "e2e_datasheet.png")
    store.close()

    # the installed console script works on the same store
    exe = Path(sys.executable).with_name("spinemed-curate")
    if exe.exists():
        proc = subprocess.run([str(exe), "--db", db, "stats"], capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and "review_status:" in proc.stdout
