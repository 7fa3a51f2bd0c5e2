"""Training data: chat template of the base, loss on assistant tokens only, multi-turn, packing, filters, errors.

The masking tests use the embedded base's own tokenizer (read from the GGUF by transformers); the packing test checks
on a tiny random Llama that a packed row gives exactly the logits of its samples run one by one.
"""
from __future__ import annotations

import itertools
import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from core.inference.default_model import find_default_model
from training.data import (
    IGNORE,
    TEMPLATES,
    DataError,
    SFTCollator,
    encode_chat,
    encode_records,
    matches,
    pack_examples,
    read_records,
    set_chat_template,
)

MULTI = [
    {"role": "system", "content": "You are SpineMed, a spine imaging assistant."},
    {"role": "user", "content": "Which level is marked on the sagittal T2?"},
    {"role": "assistant", "content": "The marker is on the L4-L5 disc.\nIt is dark on T2 (desiccated)."},
    {"role": "user", "content": "Pfirrmann grade?"},
    {"role": "assistant", "content": "Grade IV: dark disc, lost distinction between nucleus and annulus."},
]


@pytest.fixture(scope="module")
def smol_tokenizer():
    base = find_default_model()
    if base is None:
        pytest.skip("embedded base SmolLM2-135M-Instruct.Q4_1.gguf not set up (scripts/setup.sh)")
    return transformers.AutoTokenizer.from_pretrained(base.parent, gguf_file=base.name, local_files_only=True)


def _trained_segments(tok, ex):
    segs, cur = [], []
    for i, lab in zip(ex["input_ids"], ex["labels"]):
        if lab != IGNORE:
            assert lab == i
            cur.append(i)
        elif cur:
            segs.append(cur)
            cur = []
    if cur:
        segs.append(cur)
    return [tok.decode(s) for s in segs]


def test_loss_only_on_assistant_replies_multi_turn(smol_tokenizer):
    tok = smol_tokenizer
    ex = encode_chat(tok, MULTI)
    # the base's own ChatML template renders the sample
    assert tok.decode(ex["input_ids"]) == tok.apply_chat_template(MULTI, tokenize=False)
    replies = [m["content"] for m in MULTI if m["role"] == "assistant"]
    assert _trained_segments(tok, ex) == [r + "<|im_end|>" for r in replies]
    n_trained = sum(1 for x in ex["labels"] if x != IGNORE)
    assert 0 < n_trained < len(ex["input_ids"]) / 2


def test_default_system_prompt_of_the_base_template_is_masked(smol_tokenizer):
    # SmolLM2's template adds its own system prompt when the sample has none: it must not be trained on
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"}]
    ex = encode_chat(smol_tokenizer, msgs)
    assert "SmolLM" in smol_tokenizer.decode(ex["input_ids"])
    assert _trained_segments(smol_tokenizer, ex) == ["Hello, how can I help?<|im_end|>"]


def test_chat_template_override_for_a_base_without_one(smol_tokenizer):
    tok = smol_tokenizer  # its template is swapped here and restored at the end
    saved = tok.chat_template
    try:
        tok.chat_template = None
        with pytest.raises(DataError, match="no chat template"):
            set_chat_template(tok, None)
        set_chat_template(tok, "gemma")
        text = tok.apply_chat_template(MULTI, tokenize=False)
        assert text.count("<start_of_turn>model\n") == 2 and "You are SpineMed" in text.split("<start_of_turn>")[1]
        ex = encode_chat(tok, MULTI)
        segs = _trained_segments(tok, ex)
        # this tokenizer has no <end_of_turn> token, so the boundary token ".<" is shared: each reply is covered
        replies = [m["content"] for m in MULTI if m["role"] == "assistant"]
        assert len(segs) == 2 and all(s.startswith(r[:-1]) and len(s) <= len(r) + 2 for s, r in zip(segs, replies))
        set_chat_template(tok, "chatml")
        assert tok.chat_template == TEMPLATES["chatml"]
    finally:
        tok.chat_template = saved


def test_records_filters_and_stats(tmp_path, smol_tokenizer):
    rows = [
        {"messages": MULTI[:3], "meta": {"task": "mcq"}},
        {"messages": MULTI, "meta": {"task": "consultation"}},
        {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Level?"}]},
                      {"role": "assistant", "content": "L3."}], "images": ["k.png"], "meta": {"task": "mcq"}},
        {"messages": [{"role": "user", "content": "long " * 400}, {"role": "assistant", "content": "ok"}],
         "meta": {"task": "open_qa"}},
    ]
    f = tmp_path / "train.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    records = read_records([f])
    assert len(records) == 4 and records[0].where == f"{f}:1"
    assert matches(records[0], {"meta.task": ["mcq", "open_qa"]}) and matches(records[0], {"task": "mcq"})
    assert not matches(records[1], {"meta.task": ["mcq", "open_qa"]})
    from training.data import DataStats

    stats = DataStats()
    out = encode_records(smol_tokenizer, records, max_length=256, stats=stats, flt={"meta.task": ["mcq", "open_qa"]})
    assert len(out) == 1 and out[0]["length"] == len(out[0]["input_ids"])
    assert (stats.records, stats.used, stats.filtered_out, stats.skipped_images, stats.dropped_overlong) == (4, 1, 1, 1, 1)
    trunc = encode_records(smol_tokenizer, records[3:], max_length=256, overlong="truncate")
    assert trunc == []  # truncation removed the only assistant tokens: nothing left to learn, dropped
    with pytest.raises(DataError, match="image sample"):
        encode_records(smol_tokenizer, records[2:3], max_length=256, skip_image_samples=False)


@pytest.mark.parametrize("line, message", [
    ("{not json", "not valid JSON"),
    ('{"messages": []}', "non-empty \\\"messages\\\" list"),
    ('{"messages": [{"role": "doctor", "content": "x"}]}', "role of system, user or assistant"),
    ('{"messages": [{"role": "user", "content": "x"}]}', "no assistant message"),
    ('{"messages": [{"role": "user", "content": [{"type": "image"}]}, {"role": "assistant", "content": "y"}]}',
     "1 image part\\(s\\) in the messages but 0 path"),
])
def test_bad_records_name_file_and_line(tmp_path, line, message):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n' + line)
    with pytest.raises(DataError, match=rf"bad.jsonl:2: .*{message}"):
        read_records([f])
    with pytest.raises(DataError, match="no such training file"):
        read_records([tmp_path / "missing.jsonl"])


def test_datasets_folder_is_read(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([{"messages": MULTI[:3], "images": [], "meta": {"task": "mcq"}}])
    ds.save_to_disk(str(tmp_path / "train"))
    (rec,) = read_records([tmp_path / "train"])
    assert rec.meta == {"task": "mcq"} and rec.messages[2]["role"] == "assistant"


def _tiny_llama():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return transformers.LlamaForCausalLM(cfg).eval()


def test_packing_keeps_samples_independent():
    g = torch.Generator().manual_seed(1)
    examples = []
    for n in (9, 5, 12, 3, 7):
        ids = torch.randint(3, 64, (n,), generator=g).tolist()
        labels = [IGNORE] * 2 + ids[2:]
        examples.append({"input_ids": ids, "labels": labels, "length": n})
    packed = pack_examples(examples, max_length=16)
    assert all(p["length"] <= 16 for p in packed)
    assert sum(p["length"] for p in packed) == sum(e["length"] for e in examples)
    assert sum(sum(1 for x in p["position_ids"] if x == 0) for p in packed) == len(examples)
    assert len(packed) < len(examples)
    batch = SFTCollator(pad_token_id=0)(packed)
    assert "attention_mask" not in batch and batch["position_ids"].shape == batch["input_ids"].shape
    assert int(batch["spinemed_num_tokens"]) == sum(e["length"] for e in examples)
    model = _tiny_llama()
    model.config.use_cache = False  # as in training (Trainer sets it): a KV cache disables the packed-sequence mask
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
        for r, p in enumerate(packed):
            starts = [i for i, x in enumerate(p["position_ids"]) if x == 0] + [p["length"]]
            for a, b in itertools.pairwise(starts):
                alone = model(input_ids=torch.tensor([p["input_ids"][a:b]])).logits[0]
                torch.testing.assert_close(out[r, a:b], alone, atol=1e-5, rtol=1e-4)


def test_padding_collator_masks_padding():
    feats = [{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = SFTCollator(pad_token_id=0)(feats)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert int(batch["spinemed_num_tokens"]) == 4
