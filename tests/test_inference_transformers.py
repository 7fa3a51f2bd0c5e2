"""TransformersBackend on a tiny random Llama with a PEFT LoRA adapter, built on the fly (no download).

Needs the ``train`` extra (torch, transformers, peft); skipped when it is not installed.
"""
from __future__ import annotations

import threading

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from core.inference.backend import GenerationParams, backend_for_model

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _tiny_model(folder, adapter):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>",
                                                eos_token="<|im_end|>", unk_token="<|endoftext|>",
                                                pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                      max_position_embeddings=512, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(folder)
    lora = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    peft.get_peft_model(model, lora).save_pretrained(adapter)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    _tiny_model(root / "model", root / "adapter")
    b = backend_for_model(root / "model", adapter=root / "adapter", n_gpu_layers=0)
    b.load()
    yield b
    b.unload()


def test_loads_base_plus_adapter_on_cpu(backend):
    info = backend.info()
    assert info.backend == "transformers" and info.chat_template == "hf" and info.lora_path
    assert info.device in ("CPU", "GPU") and info.n_layers == 2 and info.n_ctx == 512
    messages = [{"role": "user", "content": "L4-L5?"}]
    assert backend.render_prompt(messages).endswith("<|im_start|>assistant\n")
    assert backend.count_prompt_tokens(messages) > 5


def test_streams_and_cancels(backend):
    messages = [{"role": "user", "content": "Describe L4-L5."}]
    "".join(backend.chat_stream(messages, GenerationParams(max_tokens=8, temperature=0.0)))
    assert backend.last_stats.generated_tokens >= 1 and backend.last_stats.finish_reason in ("stop", "length")
    started = threading.Event()
    out: list[str] = []

    def consume():
        for piece in backend.chat_stream(messages, GenerationParams(max_tokens=300, temperature=1.0, seed=1)):
            out.append(piece)
            started.set()

    worker = threading.Thread(target=consume)
    worker.start()
    started.wait(60)
    backend.cancel()
    worker.join(60)
    assert not worker.is_alive() and backend.last_stats.generated_tokens < 300
