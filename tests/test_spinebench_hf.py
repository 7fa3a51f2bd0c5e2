"""`spinebench run --backend hf --adapter ...` on the tiny random Llama + PEFT LoRA of test_inference_transformers
(built on the fly, no download): the HF path of the runner end to end. Needs the ``train`` extra."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from test_inference_transformers import _tiny_model  # the same tiny model (skipped above without torch)

from spinebench.cli import main as cli_main

BENCH = Path(__file__).resolve().parents[1] / "resources" / "spinebench" / "v2"


def test_run_hf_model_with_peft_adapter(tmp_path):
    model, adapter = tmp_path / "model", tmp_path / "adapter"
    _tiny_model(model, adapter)
    cfg = json.loads((model / "config.json").read_text())
    cfg["max_position_embeddings"] = 4096  # rotary positions: the byte-level tokenizer makes long prompts
    (model / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    code = cli_main(["run", "--backend", "hf", "--model", str(model), "--adapter", str(adapter), "--bench", str(BENCH),
                     "-o", str(out), "--limit", "2", "--axis", "level_identification", "--max-tokens-mcq", "4"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    info = results["meta"]["candidate_info"]
    assert info["backend"] == "transformers" and info["lora_path"] == str(adapter)
    assert results["meta"]["candidate"]["kind"] == "hf"
    records = [json.loads(x) for x in (out / "responses.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["extraction"] in ("ok", "invalid", "none") for r in records)
    assert any(r["image_withheld"] for r in records)  # the transformers backend takes no images
