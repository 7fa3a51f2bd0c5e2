"""Generation: schemas, prompt templates, template and label-grounded generators, the revise stage, the LLM path
(with a stub generator and a stub OpenAI-compatible server), resumability."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from core.synthetic.phantom import spine_phantom
from curation.generate.grounded import GroundedGenerator
from curation.generate.llm import GenResult, OpenAIJsonGenerator, extract_json
from curation.generate.pipeline import Pipeline
from curation.generate.prompts import load_template
from curation.generate.revise import rule_fixes, support_problems
from curation.generate.schemas import llm_schema, validate
from curation.sources.cases import LabelledCase, store_case
from curation.sources.knowledge import ingest_knowledge
from curation.store import CurationStore


def test_schemas_and_decoder_schema():
    good = {"question": "Which grade is a collapsed dark disc?", "options": ["I", "II", "IV", "V"],
            "answer_index": 3, "rationale": "Grade V: dark disc, collapsed disc space."}
    assert validate("mcq", good) == []
    assert validate("mcq", {**good, "options": ["I", "I", "IV", "V"]})  # duplicate options
    assert validate("mcq", {**good, "options": good["options"][:3]})  # too few
    assert validate("mcq", {**good, "extra": 1})
    assert "maxLength" not in json.dumps(llm_schema("mcq"))
    assert llm_schema("mcq")["properties"]["answer_index"]["enum"] == [0, 1, 2, 3]
    turns = [{"role": "patient", "text": "Hi?"}, {"role": "clinician", "text": "Hello."},
             {"role": "patient", "text": "And?"}, {"role": "clinician", "text": "That is all."}]
    assert validate("consultation", {"level": "L4-L5", "turns": turns}) == []
    assert validate("consultation", {"level": "L4-L5", "turns": turns[:3]})  # ends with the patient


def test_prompt_templates_have_versions_and_fail_on_missing_values():
    for name in ("draft_mcq", "draft_open", "draft_consultation", "draft_report", "revise"):
        t = load_template(name)
        assert t.version and "<!--" not in t.text
    with pytest.raises(KeyError, match="passage"):
        load_template("draft_mcq").render(title="t", level="L4-L5")


def test_extract_json_from_chatty_output():
    assert extract_json('Sure! ```json\n{"a": {"b": "}"}}\n``` done') == {"a": {"b": "}"}}
    assert extract_json("no json here") is None


def test_revise_rules_and_support_checks():
    turns = [{"role": "clinician", "text": "Hello."}, {"role": "patient", "text": "Is  it bad?"},
             {"role": "patient", "text": "Really?"}, {"role": "clinician", "text": "It is mild."},
             {"role": "patient", "text": "Thanks."}]
    fixed, changes = rule_fixes("consultation", {"level": "L4-L5", "turns": turns})
    assert [t["role"] for t in fixed["turns"]] == ["patient", "clinician"]
    assert fixed["turns"][0]["text"] == "Is it bad? Really?" and changes
    passage = "Grade II: over 25% to 50% slip. Meyerding grading applies at L5-S1 most often."
    ok = {"question": "What is a Meyerding grade II slip?", "answer": "Grade II is a slip over 25% to 50%."}
    assert support_problems("open_qa", ok, passage, {"L5-S1"}) == []
    invented = {"question": "What is a Meyerding grade II slip?", "answer": "A slip over 30% at C5-C6."}
    problems = support_problems("open_qa", invented, passage, {"L5-S1"})
    assert any("C5-C6" in p for p in problems) and any("30" in p for p in problems)


@pytest.fixture
def kb_store(tmp_path):
    store = CurationStore(tmp_path / "c.db")
    ingest_knowledge(store, only=["disc-degeneration-pfirrmann", "spondylolisthesis-grading"])
    yield store
    store.close()


def test_template_items_are_valid_and_supported(kb_store, tmp_path):
    pipe = Pipeline(kb_store, tmp_path / "images")
    counts = pipe.run_templates()
    items = kb_store.items()
    assert counts["items"] == len(items) > 20
    assert {i["task"] for i in items} >= {"mcq", "open_qa", "consultation"}
    for it in items:
        assert validate(it["task"], it["content"]) == [], it
        chunk = kb_store.chunk(it["chunk_id"])
        _path, line = chunk["location"].rsplit(":", 1)
        assert it["location"] == chunk["location"] and int(line) > 0
        assert kb_store.draft(it["draft_id"])["job_key"] == it["job_key"]
        assert kb_store.revision(it["revision_id"])["item_id"] == it["id"]
    mcq = next(i for i in items if i["subtask"] == "definition_choice" and "Grade V" in i["content"]["rationale"])
    assert mcq["content"]["options"][mcq["content"]["answer_index"]] == "Grade V"
    # a rerun skips every job (resumable, idempotent)
    again = Pipeline(kb_store, tmp_path / "images").run_templates()
    assert again["items"] == 0 and again["skipped"] == len(items)


def _phantom_case(tmp_path) -> LabelledCase:
    ph = spine_phantom("L1", "S1", shape=(64, 64, 110), spacing=(2.0, 2.0, 2.0), ribs=False, noise_hu=0)
    affine = ph.volume.affine.copy()
    affine[:2, :] *= -1  # LPS -> RAS for NIfTI
    path = tmp_path / "phantom_ct.nii.gz"
    nib.save(nib.Nifti1Image(ph.volume.data, affine), str(path))
    return LabelledCase(case_id="phantom:1", dataset="phantom", subject="1", modality="CT", image_path=path,
                        vertebrae=dict(ph.centres), discs=dict(ph.discs), label_values={},
                        licence="synthetic", origin="core.synthetic.phantom")


def test_grounded_items_answer_from_labels(tmp_path):
    case = _phantom_case(tmp_path)
    drafts, notes = GroundedGenerator(tmp_path / "img").items(case)
    assert not notes
    by_sub = {}
    for d in drafts:
        by_sub.setdefault(d.subtask, []).append(d)
        assert validate(d.task, d.content) == [], d
        assert d.generator_kind == "labels" and d.case_id == "phantom:1"
    marked = by_sub["which_level_marked"]
    assert {d.variant for d in marked} == set(case.vertebrae)
    for d in marked:
        assert d.content["options"][d.content["answer_index"]] == d.variant
        png = Image.open(tmp_path / "img" / d.images[0]).convert("RGB")
        assert (np.asarray(png) == (255, 64, 64)).all(axis=2).any()  # the red ring is drawn
    counts = {d.variant: d.content["answer"] for d in by_sub["count_from_sacrum"]}
    assert counts["L5"].endswith("first vertebra above the sacrum: L5.")
    assert counts["L1"].endswith("fifth vertebra above the sacrum: L1.")
    discs = {d.variant for d in by_sub["disc_between"]}
    assert discs == {"L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"}
    report = by_sub["levels_report"][0].content
    assert [f["level"] for f in report["findings"]][:6] == ["L1", "L2", "L3", "L4", "L5", "S1"]


class StubGenerator:
    """Returns canned JSON: a good open question for drafts, a 'fix' critique that changes the answer."""

    name = "stub:model"

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def generate(self, messages, schema, *, max_tokens=400, seed=0, temperature=0.3):
        self.calls += 1
        if self.fail:
            return GenResult(None, "{\"question\": \"What", "output cut at max_tokens", 0.01)
        if "verdict" in schema["properties"]:
            revised = {"question": "What does Pfirrmann grade V look like on T2-weighted MRI?",
                       "answer": "Grade V: dark (hypointense) disc; distinction lost; disc space collapsed."}
            return GenResult({"verdict": "fix", "problems": ["answer incomplete"], "revised": revised}, "", "", 0.01)
        draft = {"question": "What does Pfirrmann grade V look like on T2-weighted MRI?",
                 "answer": "A dark disc with the disc space collapsed."}
        return GenResult(draft, json.dumps(draft), "", 0.01)


def test_llm_path_records_draft_and_revision(kb_store, tmp_path):
    gen = StubGenerator()
    pipe = Pipeline(kb_store, tmp_path / "images", generator=gen)
    counts = pipe.run_llm(("open_qa",), limit=2)
    assert counts["llm_drafted"] == 2
    items = kb_store.items("generator_kind = 'llm'")
    assert len(items) == 2
    for it in items:
        assert it["generator"] == "stub:model" and it["prompt_template"] == "draft_open"
        assert it["prompt_version"] == load_template("draft_open").version
        draft = kb_store.draft(it["draft_id"])
        assert "Passage" in draft["prompt"] and draft["parsed"]["answer"].startswith("A dark disc")
        rev = kb_store.revision(it["revision_id"])
        assert rev["critique"]["verdict"] == "fix"
        changed = [c for c in rev["changes"] if c["field"] == "answer"]
        if it["review_status"] == "pending":  # the revision was supported by the passage and kept
            assert it["content"]["answer"].startswith("Grade V") and changed
    # failed drafts are stored, not retried by a rerun unless asked
    failing = StubGenerator(fail=True)
    Pipeline(kb_store, tmp_path / "images", generator=failing).run_llm(("mcq",), limit=1)
    assert failing.calls == 1
    assert next(iter(kb_store.db["drafts"].rows_where("ok = 0")))["error"].startswith("output cut")
    again = StubGenerator(fail=True)
    Pipeline(kb_store, tmp_path / "images", generator=again).run_llm(("mcq",), limit=1)
    jobs_left = Pipeline(kb_store, tmp_path / "images", generator=again).llm_jobs(("mcq",), 0, limit=1)
    assert jobs_left and again.calls == 1  # the next mcq job, not the failed one


class _Handler(BaseHTTPRequestHandler):
    bodies: ClassVar[list] = []
    fail_first: ClassVar[list[bool]] = [True]

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.bodies.append((self.path, body))
        if _Handler.fail_first[0]:
            _Handler.fail_first[0] = False
            self.send_response(503)
            self.end_headers()
            return
        content = json.dumps({"question": "What is grade V?", "answer": "A collapsed disc."})
        out = json.dumps({"choices": [{"message": {"content": content}, "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 10, "completion_tokens": 12}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def test_openai_compatible_generator_retries_and_sends_the_schema():
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        gen = OpenAIJsonGenerator(f"http://127.0.0.1:{server.server_port}/v1", "local", backoff_s=0.01)
        result = gen.generate([{"role": "user", "content": "q"}], llm_schema("open_qa"), max_tokens=50, seed=3)
    finally:
        server.shutdown()
    assert result.parsed == {"question": "What is grade V?", "answer": "A collapsed disc."}
    assert result.completion_tokens == 12
    assert len(_Handler.bodies) == 2  # one 503, one retry
    path, body = _Handler.bodies[-1]
    assert path == "/v1/chat/completions" and body["seed"] == 3 and body["max_tokens"] == 50
    assert body["response_format"]["type"] == "json_object" and "schema" in body["response_format"]


def test_store_case_and_generate_from_store(tmp_path):
    store = CurationStore(tmp_path / "c.db")
    store_case(store, _phantom_case(tmp_path))
    counts = Pipeline(store, tmp_path / "images").run_grounded()
    items = store.items()
    assert counts["items"] == len(items) > 10
    assert all(store.chunk(i["chunk_id"]) is not None for i in items)
    assert all((tmp_path / "images" / p).is_file() for i in items for p in i["images"])
    store.close()
