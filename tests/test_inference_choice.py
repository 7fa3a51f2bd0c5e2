"""Which model answers (core.inference.choice): the named file, else the department server when switched on, else
the registry's choice with its adapter; and the one line the status bar shows for each."""
from __future__ import annotations

from core.inference.backend import BackendInfo
from core.inference.choice import choose_model, describe_model
from core.inference.registry import ModelRegistry
from core.inference.server_backend import ServerBackend, ServerSettings


def test_the_server_when_switched_on_unless_a_file_is_named(embedded_model):
    on = ServerSettings(enabled=True, url="http://127.0.0.1:9/v1")
    choice = choose_model(None, settings=on)
    assert choice.server is on and isinstance(choice.create(), ServerBackend)
    assert choice.loading_text() == "connecting to the department server"
    named = choose_model(embedded_model, settings=on)
    assert named.server is None and named.path == embedded_model
    assert named.loading_text() == f"loading {embedded_model.name}"


def test_the_registry_choice_per_study_with_its_adapter(embedded_model, tmp_path):
    copy = tmp_path / "other.gguf"
    copy.write_bytes(embedded_model.read_bytes())
    registry = ModelRegistry()
    registry.select(copy, study_key="study-B")
    off = ServerSettings()
    assert choose_model(None, "study-B", settings=off, registry=registry).path == copy
    plain = choose_model(None, "study-A", settings=off, registry=registry)
    assert plain.path == registry.selected(None) and plain.options["adapter"] == registry.selected_adapter(plain.path)
    assert choose_model(None, "study-A", settings=off, registry=registry, adapter=None).options["adapter"] is None


def test_status_line_names_model_adapter_device_or_server():
    assert describe_model(None) == "Model: not loaded"
    cpu = BackendInfo("llama-cpp", "/m/SmolLM2.gguf", n_ctx=4096)
    assert describe_model(cpu) == "Model: SmolLM2.gguf · no adapter · CPU · ctx 4096"
    gpu = BackendInfo("llama-cpp", "/m/qwen-7b.gguf", n_ctx=8192, device="GPU", gpu_layers_requested=-1,
                      gpu_layers_offloaded=29, n_layers=28, lora_path="/a/spinemed-lora.gguf",
                      mmproj_path="/m/mmproj-qwen.gguf")
    assert describe_model(gpu) == ("Model: qwen-7b.gguf · adapter spinemed-lora · projector mmproj-qwen.gguf · "
                                   "GPU · 29/29 layers · ctx 8192")
    fallback = BackendInfo("llama-cpp", "/m/a.gguf", gpu_layers_requested=20)
    assert "CPU (GPU requested, not available)" in describe_model(fallback)
    server = BackendInfo("server", "http://10.1.2.3:8000/v1", model_name="spine-70b", device="server 10.1.2.3:8000")
    assert describe_model(server) == "Server 10.1.2.3:8000 · spine-70b · only de-identified study context is sent"


def test_a_model_is_offloaded_by_the_layers_that_fit_the_gpu(embedded_model, monkeypatch):
    """The GPU path runs here too: with no GPU (nvidia-smi absent) 0 layers; with a GPU of 8 GiB (its memory as
    nvidia-smi would report it) every layer of the 135M model; a number the user gives is kept."""
    from core.inference import model_fit
    from core.inference.gguf_header import read_gguf

    off = ServerSettings()
    monkeypatch.setattr(model_fit, "detect_vram", lambda: None)
    assert choose_model(embedded_model, settings=off).create().n_gpu_layers == 0
    monkeypatch.setattr(model_fit, "detect_vram", lambda: 8 * 1024**3)
    n_layers = model_fit.memory_fit(read_gguf(embedded_model)).n_layers
    assert n_layers > 20
    assert choose_model(embedded_model, settings=off).create().n_gpu_layers == n_layers
    monkeypatch.setattr(model_fit, "detect_vram", lambda: 600 * 1024**2)  # a small GPU: only some layers fit
    some = choose_model(embedded_model, settings=off).create().n_gpu_layers
    assert 0 < some < n_layers
    assert choose_model(embedded_model, settings=off, n_gpu_layers=3).create().n_gpu_layers == 3


def test_a_truncated_model_gets_no_gpu_layers_and_is_refused_when_it_loads(embedded_model, tmp_path):
    import pytest

    from core.inference.backend import BackendError

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(embedded_model.read_bytes()[:4096])
    backend = choose_model(cut, settings=ServerSettings()).create()
    assert backend.n_gpu_layers == 0
    with pytest.raises(BackendError, match="cut.gguf"):
        backend.load()
