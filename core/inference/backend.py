"""The one interface every model runtime implements, and the registry of runtimes by name.

    backend = create_backend("llama-cpp", model_path=path, n_ctx=4096)   # or backend_for_model(path)
    info = backend.load()                      # BackendInfo: device ("CPU" / "GPU"), layers offloaded, template...
    for piece in backend.chat_stream(messages, GenerationParams(max_tokens=200), cancel=token):
        print(piece, end="")
    backend.last_stats                         # GenerationStats of that call: TTFT, tokens, prompt reuse
    backend.unload()

``messages`` are OpenAI-style dicts: ``{"role": "system"|"user"|"assistant", "content": str}``; a user message may
carry ``"images": [png_bytes, ...]`` for a multimodal model. Streaming stops early when ``cancel`` (a
:class:`core.tasks.CancelToken`) is set or :meth:`ChatBackend.cancel` is called from another thread.

Backends are registered as ``"module:Class"`` strings, so importing this module never imports llama.cpp or torch.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core.tasks import CancelToken

Message = dict[str, Any]


class BackendError(RuntimeError):
    """A model could not be loaded or run; the message says which file and why."""


class ModelLoadError(BackendError):
    pass


def default_threads() -> int:
    """1 on small CPUs: with 2-4 shared cores, more threads collapse generation speed under contention."""
    cores = os.cpu_count() or 1
    return 1 if cores <= 4 else min(8, cores // 2)


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 512
    temperature: float = 0.2
    top_p: float = 0.95
    top_k: int = 40
    repeat_penalty: float = 1.1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # JSON schema the answer must follow. llama.cpp turns it into a grammar so every sampled token stays inside it;
    # backends without grammar support ignore it (callers validate the answer).
    json_schema: dict | None = None


@dataclass
class BackendInfo:
    backend: str
    model_path: str
    model_name: str = ""
    architecture: str = ""
    n_ctx: int = 0
    n_threads: int | None = None
    device: str = "CPU"  # where the layers actually run: "CPU" or "GPU"
    gpu_offload_supported: bool = False
    gpu_layers_requested: int = 0
    gpu_layers_offloaded: int = 0
    n_layers: int | None = None
    lora_path: str | None = None
    mmproj_path: str | None = None
    chat_template: str = ""  # "gguf", "hf", or "fallback: <name>" when the model has none
    multimodal: bool = False
    notes: list[str] = field(default_factory=list)  # things the user must see, e.g. a GPU request that fell back

    def device_label(self) -> str:
        """Short text for the UI: "CPU", "GPU · 31/31 layers", "CPU (GPU requested, not available)",
        "server 10.1.2.3:8000"."""
        if self.device.startswith("server"):
            return self.device
        if self.device == "GPU" and self.gpu_layers_offloaded:
            total = f"/{self.n_layers + 1}" if self.n_layers else ""
            return f"GPU · {self.gpu_layers_offloaded}{total} layers"
        if self.gpu_layers_requested:
            return "CPU (GPU requested, not available)"
        return "CPU"


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    reused_prompt_tokens: int | None = None  # tokens of the prompt already in the KV cache (prefix match)
    generated_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    finish_reason: str = ""  # "stop", "length", "cancelled"

    @property
    def decode_tokens_per_s(self) -> float | None:
        if self.ttft_s is None or self.generated_tokens < 2:
            return None
        decode = self.total_s - self.ttft_s
        return (self.generated_tokens - 1) / decode if decode > 0 else None


@runtime_checkable
class ChatBackend(Protocol):
    name: str
    last_stats: GenerationStats | None

    def load(self) -> BackendInfo: ...

    def chat_stream(
        self, messages: list[Message], params: GenerationParams | None = None, cancel: CancelToken | None = None
    ) -> Iterator[str]: ...

    def cancel(self) -> None: ...

    def unload(self) -> None: ...

    def info(self) -> BackendInfo: ...

    @property
    def is_loaded(self) -> bool: ...

    def count_prompt_tokens(self, messages: list[Message]) -> int:
        """Tokens the chat template makes of ``messages`` (with the assistant generation prompt)."""
        ...

    def count_tokens(self, text: str) -> int: ...


_BACKENDS: dict[str, str | Callable[..., ChatBackend]] = {
    "llama-cpp": "core.inference.llama_backend:LlamaCppBackend",
    "transformers": "core.inference.transformers_backend:TransformersBackend",
    "server": "core.inference.server_backend:ServerBackend",  # the department's OpenAI-compatible server
}


def register_backend(name: str, factory: str | Callable[..., ChatBackend]) -> None:
    """Register a runtime: a callable returning a backend, or a lazy ``"module:Class"`` reference."""
    _BACKENDS[name] = factory


def backend_names() -> list[str]:
    return list(_BACKENDS)


def backend_class(name: str) -> Callable[..., ChatBackend]:
    try:
        factory = _BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown model backend {name!r} (known: {', '.join(_BACKENDS)})") from None
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory


def create_backend(name: str, **options: Any) -> ChatBackend:
    return backend_class(name)(**options)


def backend_name_for(path: Path | str) -> str:
    """"llama-cpp" for a GGUF file, "transformers" for a Hugging Face model folder."""
    path = Path(path)
    if path.is_dir():
        return "transformers"
    return "llama-cpp"


def backend_for_model(
    path: Path | str,
    *,
    adapter: Path | str | None = None,
    mmproj: Path | str | None = None,
    n_ctx: int | None = None,
    n_gpu_layers: int = 0,
    n_threads: int | None = None,
    **options: Any,
) -> ChatBackend:
    """A (not yet loaded) backend for a GGUF file or an HF folder, with the common options mapped to each runtime:
    ``adapter`` is a LoRA GGUF (llama.cpp) or a PEFT folder (transformers); ``mmproj`` is llama.cpp only."""
    name = backend_name_for(path)
    if name == "llama-cpp":
        kwargs: dict[str, Any] = {"model_path": Path(path), "lora_path": adapter, "mmproj_path": mmproj,
                                  "n_gpu_layers": n_gpu_layers, "n_threads": n_threads}
        if n_ctx is not None:
            kwargs["n_ctx"] = n_ctx
    else:
        if mmproj:
            raise BackendError(f"{path}: a vision projector (mmproj) needs a GGUF model and the llama.cpp backend")
        kwargs = {"model_dir": Path(path), "adapter_dir": adapter, "n_ctx": n_ctx, "n_threads": n_threads,
                  "device": "cuda" if n_gpu_layers else "auto"}
    return create_backend(name, **kwargs, **options)
