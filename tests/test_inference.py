"""core.inference with the real embedded GGUF model: header/registry, validation errors, streaming, cancel, KV reuse."""
from __future__ import annotations

import base64
import json
import shutil
import struct
import threading

import pytest

from core.inference.backend import (
    BackendError,
    GenerationParams,
    ModelLoadError,
    backend_for_model,
    backend_name_for,
    backend_names,
    create_backend,
    default_threads,
)
from core.inference.gguf_header import read_gguf
from core.inference.registry import ModelRegistry, ModelValidationError, read_metadata, validate_model
from tests.conftest import loaded_backend

SHORT = GenerationParams(max_tokens=24, temperature=0.0)


@pytest.fixture(scope="module")
def model_path(embedded_model):
    return embedded_model


@pytest.fixture(scope="module")
def backend(model_path):
    with loaded_backend(model_path, n_ctx=2048) as b:
        yield b


def _messages(question: str) -> list[dict]:
    return [{"role": "system", "content": "You answer questions about spine imaging briefly."},
            {"role": "user", "content": question}]


# --- metadata, registry, validation ---------------------------------------------------------------------------
def test_gguf_header_of_embedded_model(model_path):
    h = read_gguf(model_path)
    assert (h.architecture, h.kind, h.quantization, h.context_length) == ("llama", "model", "Q4_1", 8192)
    assert 130e6 < h.parameter_count < 140e6 and h.block_count == 30
    assert h.chat_template and "<|im_start|>" in h.chat_template
    assert h.required_size == h.file_size == model_path.stat().st_size
    assert h.array_lengths["tokenizer.ggml.tokens"] == 49152


def test_registry_lists_embedded_model_with_licence_and_persists_selection(model_path, tmp_path):
    reg = ModelRegistry()
    entry = next(e for e in reg.list_models() if e.path.resolve() == model_path.resolve())
    meta = entry.metadata
    assert entry.usable and meta.license == "apache-2.0" and meta.license_file and meta.license_file.is_file()
    assert "135M params" in meta.summary() and "Q4_1" in meta.summary() and "chat template" in meta.summary()
    assert reg.selected() == model_path  # no choice yet: the embedded default

    copy = tmp_path / "mine" / "copy.gguf"
    copy.parent.mkdir()
    shutil.copy(model_path, copy)
    reg.add_path(copy.parent)
    reg.select(copy, study_key="study-1")
    again = ModelRegistry()
    assert any(e.path == copy and e.source == "added by user" for e in again.list_models())
    assert again.selected("study-1") == copy and again.selected("study-2") == model_path
    again.select(copy)
    assert ModelRegistry().selected("study-2") == copy
    again.select(None, study_key="study-1")
    again.select(None)
    assert ModelRegistry().selected("study-1") == model_path


def test_truncated_gguf_is_rejected_before_load_naming_the_file(model_path, tmp_path):
    broken = tmp_path / "half-downloaded.gguf"
    with model_path.open("rb") as src:
        broken.write_bytes(src.read(40 * 2**20))
    with pytest.raises(ModelValidationError, match="half-downloaded.gguf.*truncated"):
        validate_model(broken)
    with pytest.raises(ModelLoadError, match="half-downloaded.gguf.*truncated"):
        backend_for_model(broken).load()
    with pytest.raises(ModelValidationError, match="half-downloaded.gguf"):
        ModelRegistry().add_path(broken)
    assert ModelRegistry().user_paths() == []
    header_only = tmp_path / "cut-in-header.gguf"
    with model_path.open("rb") as src:
        header_only.write_bytes(src.read(5000))
    with pytest.raises(ModelValidationError, match="cut-in-header.gguf: truncated or corrupt GGUF header"):
        validate_model(header_only)


def test_text_file_renamed_gguf_is_rejected(tmp_path):
    fake = tmp_path / "notes.gguf"
    fake.write_text("these are my notes, not a model\n" * 10)
    with pytest.raises(ModelValidationError, match=r"notes.gguf: not a GGUF model file \(starts with b'thes'"):
        validate_model(fake)
    with pytest.raises(ModelLoadError, match="notes.gguf: not a GGUF"):
        backend_for_model(fake).load()
    entry = next(e for e in _listing_with(tmp_path) if e.path == fake)
    assert entry.metadata is None and "not a GGUF" in entry.error


def _listing_with(folder):
    reg = ModelRegistry()
    reg.add_path(folder)
    return reg.list_models()


def _write_safetensors(path, tensors: dict[str, tuple[int, ...]], truncate: int = 0) -> None:
    header, offset = {}, 0
    for name, shape in tensors.items():
        n = 4
        for d in shape:
            n *= d
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * (offset - truncate))


def test_hugging_face_folders_metadata_and_validation(tmp_path):
    model = tmp_path / "tiny-hf"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                                                   "max_position_embeddings": 2048, "torch_dtype": "float32"}))
    (model / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    (model / "LICENSE").write_text("Apache-2.0")
    _write_safetensors(model / "model.safetensors", {"a": (4, 8), "b": (8,)})
    meta = read_metadata(model, validate=True)
    assert (meta.format, meta.kind, meta.architecture, meta.parameter_count, meta.context_length) == (
        "hf", "model", "LlamaForCausalLM", 40, 2048)
    assert meta.has_chat_template and meta.license_file == model / "LICENSE"
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "x"}))
    _write_safetensors(adapter / "adapter_model.safetensors", {"lora_A": (2, 8)})
    assert read_metadata(adapter).kind == "adapter" and read_metadata(adapter).base_model == "x"
    with pytest.raises(ModelValidationError, match="not a model"):
        validate_model(adapter)
    _write_safetensors(model / "model.safetensors", {"a": (4, 8), "b": (8,)}, truncate=16)
    with pytest.raises(ModelValidationError, match="model.safetensors: truncated safetensors"):
        validate_model(model)


def test_backend_registry():
    assert {"llama-cpp", "transformers"} <= set(backend_names())
    with pytest.raises(BackendError, match="unknown model backend 'vllm'"):
        create_backend("vllm")
    assert default_threads() == 1 or default_threads() >= 1
    assert backend_name_for("x.gguf") == "llama-cpp"


def test_transformers_backend_needs_the_train_extra_and_a_model_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="not a Hugging Face model folder"):
        backend_for_model(tmp_path).load()
    (tmp_path / "config.json").write_text("{}")
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(ModelLoadError, match="'train' extra"):
            backend_for_model(tmp_path).load()


# --- llama.cpp backend --------------------------------------------------------------------------------------------
def test_info_reports_cpu_threads_and_gguf_template(backend):
    info = backend.info()
    assert info.device == "CPU" and info.gpu_layers_offloaded == 0 and info.device_label() == "CPU"
    assert info.chat_template == "gguf" and info.n_ctx == 2048 and info.n_layers == 30 and not info.notes
    assert info.n_threads == default_threads()


def test_gpu_request_on_a_cpu_build_is_visible_never_silent(model_path):
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python build has GPU offload")
    b = backend_for_model(model_path, n_ctx=256, n_gpu_layers=12)
    info = b.load()
    b.unload()
    assert info.device == "CPU" and info.gpu_layers_requested == 12 and info.gpu_layers_offloaded == 0
    assert info.device_label() == "CPU (GPU requested, not available)"
    assert any("GPU" in n and "CPU" in n for n in info.notes)
    with pytest.raises(ModelLoadError, match="no GPU support"):
        backend_for_model(model_path, n_ctx=256, n_gpu_layers=12, require_gpu=True).load()


def test_adapter_and_projector_files_are_checked_by_kind(model_path):
    with pytest.raises(ModelLoadError, match="expected a GGUF adapter, this file is a GGUF model"):
        backend_for_model(model_path, adapter=model_path).load()
    with pytest.raises(ModelLoadError, match="expected a GGUF mmproj, this file is a GGUF model"):
        backend_for_model(model_path, mmproj=model_path).load()


def test_key_images_become_data_uris_for_multimodal_handlers():
    from core.inference.llama_backend import to_llama_messages

    png = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
    out = to_llama_messages([{"role": "user", "content": "What level?", "images": [png]}], multimodal=True)
    image, text = out[0]["content"]
    assert text == {"type": "text", "text": "What level?"}
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",", 1)[1]) == png
    with pytest.raises(BackendError, match="cannot receive key images"):
        to_llama_messages([{"role": "user", "content": "x", "images": [png]}], multimodal=False)


def test_tokens_stream_incrementally(backend):
    pieces = list(backend.chat_stream(_messages("Name the five lumbar vertebrae."), SHORT))
    stats = backend.last_stats
    assert len(pieces) >= 5 and all(isinstance(p, str) for p in pieces)
    assert stats.ttft_s is not None and stats.ttft_s < stats.total_s and stats.generated_tokens >= len(pieces) - 1
    assert stats.finish_reason in ("stop", "length") and stats.prompt_tokens > 10


def test_cancel_from_another_thread_stops_within_a_token(backend):
    got_three = threading.Event()
    pieces: list[str] = []

    def consume():
        for piece in backend.chat_stream(_messages("Write a long essay on spinal anatomy."),
                                         GenerationParams(max_tokens=400, temperature=0.8, seed=1)):
            pieces.append(piece)
            if len(pieces) == 3:
                got_three.set()

    worker = threading.Thread(target=consume)
    worker.start()
    assert got_three.wait(60)
    backend.cancel()
    worker.join(60)
    assert not worker.is_alive()
    stats = backend.last_stats
    assert stats.finish_reason == "cancelled" and stats.generated_tokens <= 6 and len(pieces) <= 5


def test_second_turn_reuses_the_kv_cache_of_the_first(backend):
    turn1 = _messages("What is spondylolisthesis?")
    answer = "".join(backend.chat_stream(turn1, SHORT))
    prompt1 = backend.tokenize_prompt(turn1)
    turn2 = [*turn1, {"role": "assistant", "content": answer}, {"role": "user", "content": "At which level?"}]
    assert backend.render_prompt(turn2).startswith(backend.render_prompt(turn1))
    "".join(backend.chat_stream(turn2, SHORT))
    assert backend.last_stats.reused_prompt_tokens >= len(prompt1)
    assert backend.last_stats.prompt_tokens > len(prompt1)
