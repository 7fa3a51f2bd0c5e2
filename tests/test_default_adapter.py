"""The shipped default adapter: pointer + sidecar matching the base, the registry's adapter choice, and the
`spinemed-train ship` decision from SpineBench before/after results."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.inference.default_adapter import POINTER, adapter_matches, default_adapter_status
from core.inference.registry import ModelRegistry, ModelValidationError
from training.ship import ShipError, decide, ship


def _base(tmp: Path, size: int = 4096) -> Path:
    base = tmp / "base-model.gguf"
    base.write_bytes(b"\0" * size)
    return base


def _adapter(folder: Path, base: Path, name: str = "spine-lora") -> Path:
    (folder / name).mkdir(parents=True, exist_ok=True)
    gguf = folder / name / f"{name}.gguf"
    gguf.write_bytes(b"GGUF-stand-in")
    gguf.with_suffix(".json").write_text(json.dumps({
        "format": 1, "kind": "lora-adapter", "file": gguf.name,
        "base": {"file": base.name, "size": base.stat().st_size, "sha256": "0" * 64}}))
    return gguf


def test_default_adapter_only_on_the_base_it_was_trained_on(tmp_path):
    models = tmp_path / "models"
    base = _base(tmp_path)
    assert "absent" in default_adapter_status(base, models).reason
    gguf = _adapter(models, base)
    (models / POINTER).write_text(json.dumps({"adapter": "spine-lora/spine-lora.gguf"}))
    status = default_adapter_status(base, models)
    assert status.adapter == gguf
    other = tmp_path / "other" / "base-model.gguf"
    other.parent.mkdir()
    other.write_bytes(b"\0" * 10)  # same name, other size: another model
    status = default_adapter_status(other, models)
    assert status.adapter is None and "not on base-model.gguf" in status.reason
    ok, why = adapter_matches(gguf, base, check_hash=True)
    assert not ok and "sha256" in why
    gguf.with_suffix(".json").unlink()
    assert "no sidecar" in default_adapter_status(base, models).reason
    (models / POINTER).write_text("{not json")
    assert "unreadable" in default_adapter_status(base, models).reason


def test_registry_adapter_choice(tmp_path, monkeypatch, embedded_model):
    reg = ModelRegistry(tmp_path / "models.json")
    assert reg.selection()["adapter"] is None
    reg.select_adapter("none")
    assert reg.selected_adapter(embedded_model) is None
    assert "switched off" in reg.adapter_status(embedded_model).reason
    assert ModelRegistry(tmp_path / "models.json").selection()["adapter"] == "none"  # persisted
    with pytest.raises(ModelValidationError, match="gguf model, not an adapter"):
        reg.select_adapter(embedded_model)  # a model is not an adapter
    reg.select_adapter(None)
    assert reg.adapter_status(embedded_model).adapter == default_adapter_status(embedded_model).adapter


def _results(scores: list[float], name: str) -> dict:
    items = [{"id": f"q{i}", "axis": "level_identification", "format": "mcq", "modality": "text",
              "score": s, "correct": s == 1.0} for i, s in enumerate(scores)]
    return {"meta": {"candidate": name}, "items": items}


def _run(tmp: Path, base_scores, tuned_scores, models: Path) -> Path:
    run = tmp / "run"
    for which, scores in (("base", base_scores), ("adapter", tuned_scores)):
        d = run / "eval" / f"spinebench-{which}"
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps(_results(scores, which)))
    (run / "run_info.json").write_text(json.dumps({"name": "spine-lora"}))
    (run / "spine-lora.gguf").write_bytes(b"GGUF-stand-in")
    _adapter(models, _base(tmp))
    return run


def test_ship_writes_the_pointer_only_for_a_significant_gain(tmp_path):
    models = tmp_path / "models"
    run = _run(tmp_path, [0.0] * 40 + [1.0] * 20, [1.0] * 40 + [1.0] * 20, models)
    card = models / "spine-lora" / "spine-lora.md"
    card.write_text("# spine-lora\n\nmodel card\n")
    d = ship(run, models)
    assert "model card" in card.read_text() and "Decision (alpha 0.05)" in card.read_text()
    ship(run, models)  # twice: the section is replaced, not repeated
    assert card.read_text().count("shipping decision") == 1
    assert d.ship and (models / POINTER).is_file()
    assert json.loads((models / POINTER).read_text())["adapter"] == "spine-lora/spine-lora.gguf"
    assert "Decision" in d.table_path.read_text() and "beats the base" in d.reason
    # rerun with results that do not differ: the pointer goes away, the base stays the default
    run2 = tmp_path / "again"
    run2.mkdir()
    run3 = _run(run2, [1.0, 0.0] * 30, [0.0, 1.0] * 30, models)
    d = ship(run3, models)
    assert not d.ship and not (models / POINTER).exists() and "stays the default" in d.reason


def test_ship_errors_are_clear(tmp_path):
    with pytest.raises(ShipError, match="no such training output folder"):
        ship(tmp_path / "missing", tmp_path / "models")
    with pytest.raises(ShipError, match="no adapter GGUF"):
        ship(tmp_path, tmp_path / "models")
    assert decide({"rows": {}})[0] is False
