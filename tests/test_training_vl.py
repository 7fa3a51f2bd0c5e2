"""Vision-language path: a tiny randomly initialised Qwen2.5-VL built from a config here (no download), one
training step with image+text samples through the same entry point (`spinemed-train train`, launched by
`accelerate launch` with the default single-process CPU config).

The tokenizer is the embedded base's (read from its GGUF) with the Qwen vision tokens added; the image processor is
``Qwen2VLImageProcessorPil`` constructed with its defaults (smaller pixel bounds). The combined
``Qwen2_5_VLProcessor`` cannot be built offline here: its constructor requires a video processor, and
``Qwen2VLVideoProcessor`` needs torchvision, which is not installed (it is not in the `train` extra, and installing
it risks pulling another torch build). So the training code expands the image tokens itself
(``grid_t * grid_h * grid_w / merge_size**2`` per image, as the processor does) from the tokenizer + image processor.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from core.inference.default_model import find_default_model
from training.data import IGNORE, VisionCollator, VisionSFTDataset, read_records

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
            "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|>"
            "<|vision_end|>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def tiny_vl(tmp_path_factory) -> Path:
    base = find_default_model()
    if base is None:
        pytest.skip("embedded base not set up: its tokenizer is reused for the tiny vision model")
    root = tmp_path_factory.mktemp("tiny-qwen25vl")
    model_dir = root / "model"
    tok = transformers.AutoTokenizer.from_pretrained(base.parent, gguf_file=base.name, local_files_only=True)
    tok.add_special_tokens({"additional_special_tokens": ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>"]})
    tok.chat_template = TEMPLATE
    tok.save_pretrained(model_dir)
    transformers.Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112).save_pretrained(model_dir)
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|image_pad|>", "<|vision_end|>")}
    text = {"vocab_size": len(tok), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024,
            "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}}
    vision = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
              "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
              "fullatt_block_indexes": [0]}
    cfg = transformers.Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                                        vision_start_token_id=ids["<|vision_start|>"],
                                        vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    transformers.Qwen2_5_VLForConditionalGeneration(cfg).save_pretrained(model_dir)

    from PIL import Image

    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(((64, 80), (60, 60))):
        Image.fromarray((rng.random((h, w, 3)) * 255).astype("uint8")).save(root / f"key{i}.png")
    rows = [
        {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which level?"}]},
                      {"role": "assistant", "content": "The marker is on L4."}], "images": ["key0.png"]},
        {"messages": [{"role": "user", "content": "Text only: what is L5-S1?"},
                      {"role": "assistant", "content": "The lumbosacral disc."}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Compare"}, {"type": "image"},
                                                   {"type": "image"}]},
                      {"role": "assistant", "content": "Both show L3."}, {"role": "user", "content": "Sure?"},
                      {"role": "assistant", "content": "Yes, counted from S1."}],
         "images": ["key0.png", "key1.png"]},
    ]
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def test_image_tokens_expanded_and_only_replies_trained(tiny_vl):
    tok = transformers.AutoTokenizer.from_pretrained(tiny_vl / "model", local_files_only=True)
    proc = transformers.AutoImageProcessor.from_pretrained(tiny_vl / "model", local_files_only=True)
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    records = read_records([tiny_vl / "train.jsonl"])
    ds = VisionSFTDataset(records, tok, proc, image_id, max_length=512)
    items = [ds[i] for i in range(len(ds))]
    for item, rec in zip(items, records):
        expected = sum(int(g.prod()) // 4 for g in item.get("image_grid_thw", []))
        assert item["input_ids"].count(image_id) == expected and (expected > 0) == bool(rec.images)
        trained = [t for t, lab in zip(item["input_ids"], item["labels"]) if lab != IGNORE]
        assert image_id not in trained
        replies = "".join(m["content"] + "<|im_end|>" for m in rec.messages if m["role"] == "assistant")
        assert tok.decode(trained) == replies
    batch = VisionCollator(tok.pad_token_id)(items)
    assert batch["pixel_values"].shape[0] == sum(int(g.prod()) for it in items for g in it.get("image_grid_thw", []))
    assert batch["image_grid_thw"].shape == (3, 3) and batch["input_ids"].shape[0] == 3


def test_one_training_step_through_accelerate_launch(tiny_vl):
    cfg = tiny_vl / "vl.yaml"
    out = tiny_vl / "out"
    cfg.write_text(f"""\
name: tiny-vl
output_dir: {out}
base: {{path: {tiny_vl / 'model'}, kind: auto}}
data: {{train_files: [{tiny_vl / 'train.jsonl'}], max_length: 512, batching: bucket}}
lora: {{r: 4, alpha: 8}}
optim: {{max_steps: 1, batch_size: 3, grad_accumulation: 1, warmup: 0, learning_rate: 1.0e-3, logging_steps: 1}}
checkpoints: {{every_steps: 1}}
eval: {{early_stopping_patience: 0}}
export: {{gguf: false}}
""")
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(
        [str(accelerate), "launch", "--config_file", str(REPO / "resources/training/accelerate/cpu.yaml"),
         "-m", "training.cli", "train", str(cfg)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stage sft: 1 steps" in proc.stdout
    history = json.loads((out / "log_history.json").read_text())
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 1 and np.isfinite(losses[0])
    adapter = out / "adapter"
    keys = json.loads((adapter / "adapter_config.json").read_text())
    assert keys["r"] == 4
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert names and all("language_model" in n for n in names)  # lora.target_scope: language (no vision tower)
    assert (out / "stages" / "0-sft" / "checkpoint-1" / "trainer_state.json").is_file()
    assert (out / "tiny-vl.md").is_file()
