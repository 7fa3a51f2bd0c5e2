"""The runner scores the real embedded model on a small stratified slice: structure of the results, accuracy from
the real answer extraction, image items flagged for a text-only model, resume, refusal to mix configurations, the
CLI, and `spinebench compare`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from spinebench.cli import main as cli_main
from spinebench.clients import ModelSpec
from spinebench.extract import extract_choice
from spinebench.runner import RunConfig, RunError, run, select_items
from spinebench.schema import load_benchmark

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "resources" / "spinebench" / "v2"
SHORT = {"mcq": 24, "open": 32, "report": 48, "dialogue": 24, "judge": 48}


@pytest.fixture(scope="module")
def model(embedded_model) -> Path:
    return embedded_model


def _cfg(model: Path, out: Path, **kw) -> RunConfig:
    spec = ModelSpec("gguf", str(model), n_ctx=4096, n_threads=1)
    return RunConfig(bench=BENCH, out=out, candidate=spec, judge=kw.pop("judge", spec), limit=kw.pop("limit", 6),
                     max_tokens=dict(kw.pop("max_tokens", SHORT)), **kw)


@pytest.fixture(scope="module")
def first_run(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    logs: list[str] = []
    results = run(_cfg(model, out), log=logs.append)
    return out, results, logs


def test_stratified_subset_covers_every_kind_of_item():
    items = load_benchmark(BENCH).items
    kinds = {(i.axis, i.format, i.modality) for i in items}
    chosen = select_items(items, len(kinds))
    assert len(chosen) == len(kinds) < len(items)
    assert {(i.axis, i.format, i.modality) for i in chosen} == kinds
    assert select_items(items, len(kinds)) == chosen  # deterministic


def test_run_writes_scored_results(first_run):
    out, results, logs = first_run
    assert {p.name for p in out.iterdir()} >= {"responses.jsonl", "run.json", "results.json", "results.md",
                                               "results.png"}
    records = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert len(records) == len(results["items"]) == 6
    bench = {i.id: i for i in load_benchmark(BENCH).items}
    mcq = [r for r in records if r["format"] == "mcq"]
    assert mcq
    for r in mcq:  # correctness is what the extractor makes of the model's real reply
        item = bench[r["id"]]
        ex = extract_choice(r["responses"][0], item.options)
        assert (r["extracted"], r["correct"]) == (ex.letter, ex.letter == item.answer)
        assert r["image_withheld"] == bool(item.images)  # the embedded model takes no images
    s = results["summary"]
    expected = sum(r["correct"] for r in mcq) / len(mcq)
    assert s["mcq"]["all"]["value"] == pytest.approx(expected)
    for est in [s["total"], *s["axes"].values(), s["mcq"]["all"]]:
        assert est["n"] > 0 and est["lo"] <= est["value"] <= est["hi"]
    report = next(r for r in records if r["format"] == "report")
    assert set(report["checks"]) >= {"parses", "levels_covered", "no_outside_level", "values_match"}
    assert len(report["judge"]["scores"]) == 10 and report["judge"]["raw"]
    dialogue = next(r for r in records if r["format"] == "dialogue")
    assert len(dialogue["responses"]) == len(bench[dialogue["id"]].turns)
    md = (out / "results.md").read_text()
    assert "| figure | score | 95 % CI | n |" in md and "answered from their text only" in md
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("[6/6]" in line for line in logs)


def test_rerun_resumes_and_refuses_another_configuration(model, first_run, tmp_path):
    src, results, _ = first_run
    out = tmp_path / "resume"
    shutil.copytree(src, out)
    before = (out / "responses.jsonl").read_text()
    logs: list[str] = []
    run(_cfg(model, out), log=logs.append)
    assert "0 to run" in logs[0] and (out / "responses.jsonl").read_text() == before
    lines = before.splitlines(keepends=True)
    (out / "responses.jsonl").write_text("".join(lines[:-1]) + lines[-1][:20])  # an interrupted last write
    logs.clear()
    again = run(_cfg(model, out), log=logs.append)
    assert "1 to run" in logs[0]
    assert [r["id"] for r in again["items"]] == [r["id"] for r in results["items"]]
    with pytest.raises(RunError, match="different run configuration"):
        run(_cfg(model, out, max_tokens={**SHORT, "mcq": 25}), log=logs.append)


def test_cli_run_and_compare(model, first_run, tmp_path, capsys):
    src, _, _ = first_run
    out = tmp_path / "cli"
    code = cli_main(["run", "--model", str(model), "--bench", str(BENCH), "-o", str(out), "--limit", "3",
                     "--axis", "level_identification", "--max-tokens-mcq", "16"])
    assert code == 0 and "total" in capsys.readouterr().out
    assert len(json.loads((out / "results.json").read_text())["items"]) == 3
    # B: the first run with two MCQ answers turned right -> paired tests on the common items
    b = json.loads((src / "results.json").read_text())
    flipped = [r for r in b["items"] if r["format"] == "mcq" and not r["correct"]][:2]
    for r in flipped:
        r.update(correct=True, score=1.0)
    (tmp_path / "b.json").write_text(json.dumps(b))
    code = cli_main(["compare", str(src / "results.json"), str(tmp_path / "b.json"), "-o", str(tmp_path / "c.md")])
    text = capsys.readouterr().out
    assert code == 0 and "McNemar, exact binomial" in text and "paired bootstrap" in text
    cmp = json.loads((tmp_path / "c.json").read_text())
    assert cmp["rows"]["MCQ all"]["b_only"] == len(flipped) and cmp["rows"]["MCQ all"]["a_only"] == 0


def test_cli_reports_bad_input(tmp_path, capsys):
    assert cli_main(["run", "--model", str(tmp_path / "missing.gguf"), "-o", str(tmp_path / "o"), "--limit", "1"]) == 2
    assert "no such model" in capsys.readouterr().err
