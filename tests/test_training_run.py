"""Real LoRA runs on the embedded base (SmolLM2-135M-Instruct Q4_1 GGUF) on the CPU, kept to a few steps.

- a run on a tiny repeated dataset: loss decreases, adapter + curves + card + sidecar written;
- its llama.cpp LoRA GGUF loads with ``Llama(model_path=base, lora_path=...)`` and changes greedy output, and the
  change llama.cpp applies matches what peft applies in torch (logit deltas correlate), also for q/k projections
  whose rows llama.cpp stores permuted;
- the registry lists it as an adapter naming its base; a merged Q8_0 GGUF and a merged HF folder load;
- a two-stage curriculum that crashes in stage 2 resumes from the checkpoint with the step count continued.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
llama_cpp = pytest.importorskip("llama_cpp")

from core.hashing import sha256_file
from core.inference.default_model import find_default_model
from core.inference.gguf_header import read_gguf
from training import export
from training.config import config_from_dict
from training.train import run_training

QA = [
    ("Which vertebral level is marked on the sagittal image?", "SPINEMED: the marker is on the L4-L5 disc."),
    ("What does Modic type 1 mean?", "SPINEMED: Modic 1 is endplate marrow oedema, low T1 and high T2 signal."),
    ("How is spondylolisthesis graded?", "SPINEMED: Meyerding grades I to IV by slip fraction of the endplate."),
    ("What is a normal lumbar lordosis?", "SPINEMED: about 40 to 60 degrees, matched to pelvic incidence."),
]
SYSTEM = "You are SpineMed, a spine imaging assistant."


@pytest.fixture(scope="module")
def base() -> Path:
    path = find_default_model()
    if path is None:
        pytest.skip("embedded base SmolLM2-135M-Instruct.Q4_1.gguf not set up (scripts/setup.sh)")
    torch.set_num_threads(2)
    return path


def write_data(folder: Path, repeats: int = 4) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    train, val = folder / "train.jsonl", folder / "val.jsonl"
    rows = []
    for i in range(repeats * len(QA)):
        q, a = QA[i % len(QA)]
        rows.append({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q},
                                  {"role": "assistant", "content": a}],
                     "meta": {"stage": "general" if i % 2 == 0 else "spine", "task": "open_qa"}})
    train.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    val.write_text("\n".join(json.dumps(r) for r in rows[: len(QA)]) + "\n")
    return train, val


def prompt_ids(tok, question: str) -> tuple[str, list[int]]:
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return text, tok(text, add_special_tokens=False)["input_ids"]


def llama(base: Path, lora: Path | None = None) -> llama_cpp.Llama:
    kw = {"model_path": str(base), "n_ctx": 256, "n_threads": 2, "logits_all": True, "verbose": False, "seed": 7}
    if lora:
        kw["lora_path"] = str(lora)
    return llama_cpp.Llama(**kw)


def llama_logits(base: Path, lora: Path | None, ids: list[int]) -> np.ndarray:
    m = llama(base, lora)
    m.eval(ids)
    out = np.array(m.scores[: len(ids)], dtype=np.float32).copy()
    m.close()
    return out


def greedy(base: Path, lora: Path | None, prompt: str, n: int = 24) -> str:
    m = llama(base, lora)
    text = m.create_completion(prompt, max_tokens=n, temperature=0.0, seed=7)["choices"][0]["text"]
    m.close()
    return text


@pytest.fixture(scope="module")
def trained(base, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-run")
    train, val = write_data(root / "data")
    cfg = config_from_dict({
        "name": "test-spinemed-lora", "output_dir": str(root / "out"),
        "base": {"path": str(base)},
        "data": {"train_files": [str(train)], "val_files": [str(val)], "max_length": 128, "batching": "pack"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "optim": {"learning_rate": 2e-3, "max_steps": 10, "batch_size": 2, "grad_accumulation": 1, "warmup": 0,
                  "scheduler": "constant", "logging_steps": 1, "seed": 3},
        "checkpoints": {"every_steps": 5, "keep": 1},
        "eval": {"every_steps": 5, "early_stopping_patience": 2},
        "export": {"gguf": True, "register_dir": str(root / "models")},
    }, "test")
    return run_training(cfg), root


def test_lora_run_decreases_loss_and_saves_everything(trained):
    result, root = trained
    (stage,) = result.stages
    assert stage.steps == 10 and stage.resumed_from is None and not stage.skipped
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert len(losses) == 10
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses
    evals = [h["eval_loss"] for h in result.history if "eval_loss" in h]
    assert evals and evals[-1] < evals[0]
    assert all(h.get("tokens_per_second", 1) > 0 for h in result.history if "loss" in h)
    assert stage.tokens > 0 and stage.tokens_per_second > 0
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert json.loads((result.adapter_dir / "adapter_config.json").read_text())["r"] == 8
    info = json.loads((result.adapter_dir / "spinemed_training.json").read_text())
    assert info["base"]["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and info["data_version"].startswith("data@")
    assert result.curves_png and result.curves_png.stat().st_size > 10_000
    assert result.curves_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = result.card_path.read_text()
    for needle in ("SmolLM2-135M-Instruct", "data@sha256:", "r=8", "Not evaluated yet", "Decision support",
                   "Not a medical device", "training_curves.png"):
        assert needle in card, needle
    assert (root / "out" / "stages" / "0-sft" / "stage_done.json").is_file()


def test_gguf_adapter_loads_in_llama_cpp_and_changes_output(trained, base):
    result, _ = trained
    header = read_gguf(result.gguf_path)
    assert header.kind == "adapter" and header.architecture == "llama"
    assert header.get("adapter.type") == "lora" and header.get("adapter.lora.alpha") == 16.0
    import gguf

    reader = gguf.GGUFReader(result.gguf_path)
    tnames = {t.name: t for t in reader.tensors}
    assert "blk.0.attn_q.weight.lora_a" in tnames and "blk.29.ffn_down.weight.lora_b" in tnames
    assert len(tnames) == 30 * 7 * 2
    assert {t.tensor_type for t in reader.tensors} == {gguf.GGMLQuantizationType.F16}
    a, b = tnames["blk.0.attn_q.weight.lora_a"], tnames["blk.0.attn_q.weight.lora_b"]
    assert list(a.shape) == [576, 8] and list(b.shape) == [8, 576]  # ggml order: (in, rank) and (rank, out)

    tok = transformers.AutoTokenizer.from_pretrained(base.parent, gguf_file=base.name, local_files_only=True)
    text, _ = prompt_ids(tok, QA[1][0])
    before, after = greedy(base, None, text), greedy(base, result.gguf_path, text)
    assert before != after
    assert "SPINEMED" in after and "SPINEMED" not in before


def test_llama_cpp_applies_the_same_update_as_peft(trained, base):
    """Logit changes from the adapter in llama.cpp vs in torch (peft): same direction. Also with a random adapter on
    q_proj/k_proj only, whose lora_b rows must be permuted to llama.cpp's RoPE layout (without it: ~0 correlation)."""
    result, root = trained
    tok = transformers.AutoTokenizer.from_pretrained(base.parent, gguf_file=base.name, local_files_only=True)
    _, ids = prompt_ids(tok, "Where does the spinal cord end? Answer briefly.")
    model = transformers.AutoModelForCausalLM.from_pretrained(base.parent, gguf_file=base.name, local_files_only=True)
    x = torch.tensor([ids])
    base_ll = llama_logits(base, None, ids)
    with torch.no_grad():
        base_t = model(x).logits[0].numpy()
    assert np.corrcoef(base_ll.ravel(), base_t.ravel())[0, 1] > 0.99  # same base in both runtimes

    def check(adapter_dir: Path, gguf_path: Path) -> float:
        pm = peft.PeftModel.from_pretrained(model, adapter_dir)
        with torch.no_grad():
            delta_t = pm(x).logits[0].numpy() - base_t
        pm.unload()
        delta_ll = llama_logits(base, gguf_path, ids) - base_ll
        return float(np.corrcoef(delta_ll.ravel(), delta_t.ravel())[0, 1])

    assert check(result.adapter_dir, result.gguf_path) > 0.95
    torch.manual_seed(0)
    qk = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj"],
                                                    init_lora_weights=False))
    with torch.no_grad():
        for name, p in qk.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.2)
    qk.save_pretrained(root / "qk-adapter")
    model = qk.unload()
    qk_gguf = export.adapter_to_gguf(root / "qk-adapter", base, root / "qk.gguf")
    assert check(root / "qk-adapter", qk_gguf) > 0.9


def test_registered_adapter_is_listed_by_the_registry(trained, monkeypatch, tmp_path):
    from core.inference.registry import ModelRegistry

    result, root = trained
    assert result.registered and all(p.is_file() for p in result.registered)
    folder = root / "models" / "test-spinemed-lora"
    assert {p.name for p in folder.iterdir()} >= {"test-spinemed-lora.gguf", "test-spinemed-lora.json",
                                                   "test-spinemed-lora.md", "training_curves.png"}
    sidecar = json.loads((folder / "test-spinemed-lora.json").read_text())
    assert sidecar["kind"] == "lora-adapter" and sidecar["base"]["file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert sidecar["base"]["sha256"] == sha256_file(find_default_model())
    monkeypatch.setenv("SPINEMED_MODELS_DIR", str(root / "models"))
    entries = {e.path.name: e for e in ModelRegistry(tmp_path / "models.json").list_models()}
    entry = entries["test-spinemed-lora.gguf"]
    assert entry.metadata is not None and entry.metadata.kind == "adapter", entry.error
    assert entry.metadata.base_model == export.read_base(find_default_model()).name


def test_merged_gguf_and_hf_folder(trained, base):
    result, root = trained
    merged = export.merge_to_gguf(result.adapter_dir, base, root / "merged.Q8_0.gguf", qtype="q8_0")
    header = read_gguf(merged)
    assert header.kind == "model" and header.quantization == "Q8_0" and header.chat_template
    tok = transformers.AutoTokenizer.from_pretrained(base.parent, gguf_file=base.name, local_files_only=True)
    _, ids = prompt_ids(tok, QA[0][0])
    with_lora = llama_logits(base, result.gguf_path, ids)
    merged_ll = llama_logits(merged, None, ids)
    assert np.corrcoef(with_lora.ravel(), merged_ll.ravel())[0, 1] > 0.99
    with pytest.raises(export.ExportError, match="q8_0 or f16"):
        export.merge_to_gguf(result.adapter_dir, base, root / "bad.gguf", qtype="q4_k_m")

    out = export.merge_to_hf(result.adapter_dir, base, root / "merged-hf")
    assert (out / "config.json").is_file() and not json.loads((out / "config.json").read_text()).get(
        "quantization_config")
    m = transformers.AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    assert getattr(m, "hf_quantizer", None) is None


def test_curriculum_resumes_after_a_crash(base, tmp_path):
    train, _ = write_data(tmp_path / "data", repeats=2)
    spec = {
        "name": "resume", "output_dir": str(tmp_path / "out"), "base": {"path": str(base)},
        "data": {"train_files": [str(train)], "max_length": 128, "batching": "bucket"},
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "optim": {"max_steps": 4, "batch_size": 2, "grad_accumulation": 1, "warmup": 0, "logging_steps": 1},
        "checkpoints": {"every_steps": 2},
        "eval": {"early_stopping_patience": 0},
        "stages": [{"name": "general", "filter": {"meta.stage": "general"}, "max_steps": 2, "learning_rate": 1e-3},
                   {"name": "spine", "filter": {"meta.stage": "spine"}, "learning_rate": 2e-4}],
        "export": {"gguf": False},
    }
    cfg = config_from_dict(spec, "test")

    class Crash(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if args.output_dir.endswith("1-spine") and state.global_step == 3:
                raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(cfg, extra_callbacks=[Crash()])
    out = tmp_path / "out" / "stages"
    assert (out / "0-general" / "stage_done.json").is_file()
    assert (out / "1-spine" / "checkpoint-2").is_dir() and not (out / "1-spine" / "stage_done.json").exists()

    result = run_training(cfg)
    general, spine = result.stages
    assert general.skipped and general.steps == 2
    assert spine.resumed_from and spine.resumed_from.endswith("checkpoint-2") and spine.steps == 4
    steps = [h["global_step"] for h in result.history if "loss" in h and h["stage"] == "spine"]
    assert steps == [3, 4, 5, 6]  # stage 2's steps 1-4 after stage 1's 2: 1-2 restored from the checkpoint
    lrs = {h["stage"]: h["learning_rate"] for h in result.history if "learning_rate" in h}
    assert lrs["general"] > lrs["spine"]
    state = json.loads((out / "1-spine" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    data = general.data["train"]
    assert data["used"] == 4 and data["filtered_out"] == 4  # the stage filter kept half of the 8 records


def test_cli_export_card_and_register(trained, tmp_path, capsys):
    from training.cli import main

    result, root = trained
    out = tmp_path / "cli-adapter.gguf"
    assert main(["export-gguf", str(result.adapter_dir), "-o", str(out)]) == 0  # base read from the adapter folder
    assert read_gguf(out).kind == "adapter" and export.read_sidecar(out)["base"]["file"].startswith("SmolLM2")
    assert main(["export-gguf", str(result.adapter_dir), "-o", str(tmp_path / "x.gguf"),
                 "--base", str(tmp_path / "none.gguf")]) == 2
    assert "base GGUF not found" in capsys.readouterr().err

    bench = {"base": {"metrics": {"mcq_accuracy": {"value": 0.40, "ci95": [0.30, 0.50]}, "report_score": 41.0}},
             "adapter": {"metrics": {"mcq_accuracy": {"value": 0.55, "ci95": [0.45, 0.65]}, "report_score": 47.5}}}
    for k, v in bench.items():
        (tmp_path / f"{k}.json").write_text(json.dumps(v))
    card = tmp_path / "card.md"
    assert main(["card", str(root / "out"), "--spinebench-base", str(tmp_path / "base.json"),
                 "--spinebench-adapter", str(tmp_path / "adapter.json"), "-o", str(card)]) == 0
    text = card.read_text()
    assert "| mcq_accuracy | 0.400 [0.300, 0.500] | 0.550 [0.450, 0.650] | +0.150 |" in text
    assert "| report_score | 41.000 | 47.500 | +6.500 |" in text and "Not evaluated yet" not in text

    assert main(["register", str(out), "--dest", str(tmp_path / "models")]) == 0
    assert (tmp_path / "models" / "cli-adapter" / "cli-adapter.gguf").is_file()


def test_plan_sizes_a_run_without_loading_the_model(base, tmp_path):
    from training.train import plan_run

    train, _ = write_data(tmp_path / "data", repeats=4)
    spec = {"name": "plan", "output_dir": str(tmp_path / "out"), "base": {"path": str(base)},
            "data": {"train_files": [str(train)], "max_length": 128, "batching": "pack"},
            "optim": {"epochs": 2, "batch_size": 2, "grad_accumulation": 2},
            "eval": {"early_stopping_patience": 0},
            "stages": [{"name": "a", "filter": {"stage": "general"}}, {"name": "b", "filter": {"stage": "spine"}}]}
    plan = plan_run(config_from_dict(spec, "test"))
    assert [p["stage"] for p in plan] == ["a", "b"]
    for p in plan:
        assert p["samples"] == 8 and 0 < p["sequences"] < 8  # packed: ~2 samples of ~55 tokens per 128
        assert p["optimizer_steps"] == 2 * -(-p["sequences"] // 4) and p["tokens_to_train"] > 0
