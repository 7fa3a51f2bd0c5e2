"""The models a benchmark run talks to: local GGUF / HF (+ adapter) through core.inference, or an OpenAI-compatible
HTTP endpoint the user names (as candidate or as judge).

``OpenAIBackend`` implements the parts of ``core.inference.backend.ChatBackend`` the runner uses (load, chat_stream,
info, unload, last_stats). It sends requests only to the URL it is given, through ``core.inference.openai_http`` (no
redirect followed: a 3xx is an error, so no request goes to another host), with ``POST <base>/chat/completions``
(non-streaming), an optional bearer token read from an environment variable the user names, and images as
``data:image/png;base64`` parts when ``vision`` is on.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.inference.backend import (
    BackendError,
    BackendInfo,
    GenerationParams,
    GenerationStats,
    Message,
    ModelLoadError,
    backend_for_model,
)
from core.inference.openai_http import OpenAIHttpClient, base_url, chat_messages
from core.tasks import CancelToken

KINDS = ("auto", "gguf", "hf", "openai")


@dataclass(frozen=True)
class ModelSpec:
    """What to load: ``kind`` gguf / hf / openai (auto: .gguf file -> gguf, folder -> hf, http URL -> openai)."""

    kind: str
    model: str  # GGUF path, HF folder, or the model name on the endpoint
    adapter: str | None = None
    mmproj: str | None = None
    url: str | None = None  # OpenAI-compatible base URL
    api_key_env: str | None = None  # name of the environment variable holding the bearer token
    vision: bool = False  # endpoint accepts images
    n_ctx: int = 4096
    n_threads: int = 1

    def resolved(self) -> ModelSpec:
        kind = self.kind
        if kind == "auto":
            if self.url or self.model.startswith(("http://", "https://")):
                kind = "openai"
            else:
                kind = "hf" if Path(self.model).is_dir() else "gguf"
        url = self.url
        if kind == "openai" and not url and self.model.startswith(("http://", "https://")):
            url = self.model
        return ModelSpec(kind, self.model, self.adapter, self.mmproj, url, self.api_key_env, self.vision,
                         self.n_ctx, self.n_threads)

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        if self.kind in ("gguf", "hf") and Path(self.model).exists():
            p = Path(self.model)
            d["model_name"] = p.name
            d["size_bytes"] = p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*")
                                                                         if f.is_file())
        return d


def make_backend(spec: ModelSpec) -> Any:
    spec = spec.resolved()
    if spec.kind == "openai":
        if not spec.url:
            raise BackendError("an OpenAI-compatible backend needs --url (e.g. http://127.0.0.1:8000/v1)")
        key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        if spec.api_key_env and not key:
            raise BackendError(f"environment variable {spec.api_key_env} (API key) is not set")
        return OpenAIBackend(spec.url, spec.model, api_key=key, vision=spec.vision)
    path = Path(spec.model)
    if not path.exists():
        raise BackendError(f"{path}: no such model file or folder")
    if spec.kind == "hf" and not path.is_dir():
        raise BackendError(f"{path}: the hf backend takes a Hugging Face model folder")
    if spec.kind == "gguf" and path.is_dir():
        raise BackendError(f"{path}: the gguf backend takes a .gguf file")
    return backend_for_model(path, adapter=spec.adapter, mmproj=spec.mmproj, n_ctx=spec.n_ctx,
                             n_threads=spec.n_threads)


class OpenAIBackend:
    name = "openai"

    def __init__(self, url: str, model: str, *, api_key: str | None = None, vision: bool = False,
                 timeout: float = 600.0) -> None:
        self.base = base_url(url)
        try:
            self._client = OpenAIHttpClient(self.base, api_key=api_key, timeout=timeout)
        except ValueError as exc:
            raise BackendError(f"{url}: not an http(s) URL") from exc
        self.model = model
        self.api_key = api_key
        self.vision = vision
        self.timeout = timeout
        self.last_stats: GenerationStats | None = None
        self._loaded = False
        self._info = BackendInfo(backend=self.name, model_path=self.base, model_name=model, multimodal=vision,
                                 chat_template="server")

    # --- HTTP -------------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        """JSON from ``<base><path>``; failures raise ``EndpointError`` (a BackendError) naming the URL."""
        return self._client.request_json(method, path, body)

    # --- ChatBackend subset -----------------------------------------------------------------------------------
    @property
    def is_loaded(self) -> bool:
        return self._loaded

    def load(self) -> BackendInfo:
        """Checks the server answers (``GET /models``) and records the model names it lists."""
        try:
            listing = self._request("GET", "/models")
        except BackendError as exc:
            raise ModelLoadError(f"OpenAI-compatible endpoint not reachable: {exc}") from exc
        names = [m.get("id", "") for m in listing.get("data", []) if isinstance(m, dict)]
        if names and self.model not in names:
            self._info.notes.append(f"the endpoint lists {names}; {self.model!r} was requested")
        self._loaded = True
        return self._info

    def info(self) -> BackendInfo:
        return self._info

    def unload(self) -> None:
        self._loaded = False

    def cancel(self) -> None:  # a non-streaming request cannot be interrupted
        pass

    def _messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        return chat_messages(messages, self.vision,
                             "this endpoint was not declared vision-capable: it cannot receive images")

    def chat_stream(self, messages: list[Message], params: GenerationParams | None = None,
                    cancel: CancelToken | None = None) -> Iterator[str]:
        params = params or GenerationParams()
        body: dict[str, Any] = {"model": self.model, "messages": self._messages(messages),
                                "max_tokens": params.max_tokens, "temperature": params.temperature,
                                "top_p": params.top_p, "stream": False}
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        start = time.perf_counter()
        data = self._request("POST", "/chat/completions", body)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"{self.base}/chat/completions: unexpected response {str(data)[:300]}") from exc
        usage = data.get("usage") or {}
        self.last_stats = GenerationStats(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                                          generated_tokens=int(usage.get("completion_tokens") or 0),
                                          total_s=time.perf_counter() - start,
                                          finish_reason=str(choice.get("finish_reason") or ""))
        if text:
            yield text
