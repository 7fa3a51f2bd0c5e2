"""Generator backends that return JSON items: the local GGUF model, any OpenAI-compatible HTTP endpoint, and the
runtime's public chat API.

- :class:`LlamaJsonGenerator` loads a GGUF with llama-cpp-python and decodes under the item's JSON schema
  (``response_format={"type": "json_object", "schema": ...}``, compiled to a llama.cpp grammar), so the output always
  parses unless it is cut by ``max_tokens``. It uses llama-cpp-python directly because the runtime's public
  ``ChatBackend.chat_stream`` has no grammar / response-format parameter yet.
- :class:`OpenAIJsonGenerator` posts to ``<base_url>/v1/chat/completions`` of a llama.cpp or vLLM server on the
  user's own network (``core.inference.openai_http``: stdlib ``http.client``, only that URL, no redirect followed),
  with retries (exponential backoff on connection errors, 408, 429 and 5xx), a shared rate limit, and the schema sent
  the way the server understands it (``schema_mode``).
- :class:`ChatBackendGenerator` wraps any ``core.inference`` backend (public API, unconstrained): the first JSON
  object in the reply is parsed.

Every generator has a ``name`` that goes into the provenance of the items it drafts.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.inference.openai_http import EndpointError, OpenAIHttpClient

Message = dict[str, Any]


@dataclass
class GenResult:
    parsed: dict[str, Any] | None
    raw: str
    error: str = ""
    elapsed_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class JsonGenerator(Protocol):
    name: str

    def generate(self, messages: list[Message], schema: dict[str, Any], *, max_tokens: int = 400,
                 seed: int = 0, temperature: float = 0.3) -> GenResult: ...


def extract_json(text: str) -> dict[str, Any] | None:
    """The first complete JSON object in ``text`` (models wrap JSON in prose or code fences), or None."""
    start = text.find("{")
    while start >= 0:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    try:
                        value = json.loads(text[start:i + 1], strict=False)
                    except ValueError:
                        break
                    return value if isinstance(value, dict) else None
        start = text.find("{", start + 1)
    return None


def _parse(raw: str, finish_reason: str | None) -> tuple[dict[str, Any] | None, str]:
    try:  # strict=False: llama.cpp's JSON grammar lets raw newlines into strings
        value = json.loads(raw, strict=False)
        if isinstance(value, dict):
            return value, ""
        return None, "output is JSON but not an object"
    except ValueError:
        value = extract_json(raw)
        if value is not None:
            return value, ""
        if finish_reason == "length":
            return None, "output cut at max_tokens before the JSON was complete"
        return None, "output is not valid JSON"


class LlamaJsonGenerator:
    """Schema-constrained JSON from a local GGUF through the workstation's llama.cpp backend (core.inference).

    One model, calls serialised by a lock; the schema becomes a grammar (``GenerationParams.json_schema``).
    """

    def __init__(self, model_path: Path | str, *, n_ctx: int = 2048, n_threads: int = 1, n_gpu_layers: int = 0) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"{self.model_path}: model file not found")
        self.n_ctx, self.n_threads, self.n_gpu_layers = n_ctx, n_threads, n_gpu_layers
        self.name = f"llama-cpp:{self.model_path.name}"
        self._backend = None
        self._lock = threading.Lock()

    def _load(self):
        if self._backend is None:
            from core.inference.backend import backend_for_model

            backend = backend_for_model(self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads,
                                        n_gpu_layers=self.n_gpu_layers)
            backend.load()
            self._backend = backend
        return self._backend

    def generate(self, messages: list[Message], schema: dict[str, Any], *, max_tokens: int = 400,
                 seed: int = 0, temperature: float = 0.3) -> GenResult:
        from core.inference.backend import GenerationParams

        start = time.perf_counter()
        params = GenerationParams(max_tokens=max_tokens, temperature=temperature, seed=seed, repeat_penalty=1.1,
                                  json_schema=schema)
        with self._lock:
            backend = self._load()
            try:
                raw = "".join(backend.chat_stream(messages, params))
            except (ValueError, RuntimeError) as exc:  # prompt longer than the context, grammar errors
                return GenResult(None, "", f"generation failed: {exc}", time.perf_counter() - start)
            stats = backend.last_stats
        parsed, error = _parse(raw, stats.finish_reason or None)
        return GenResult(parsed, raw, error, time.perf_counter() - start, stats.prompt_tokens, stats.generated_tokens)

    def close(self) -> None:
        with self._lock:
            if self._backend is not None:
                self._backend.unload()
            self._backend = None


class RateLimiter:
    """At most ``rate`` request starts per second across threads (None: unlimited)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class OpenAIJsonGenerator:
    """JSON items from an OpenAI-compatible chat endpoint (llama.cpp server, vLLM) on the user's own network.

    ``schema_mode``: ``"llama-cpp"`` sends ``response_format={"type": "json_object", "schema": ...}`` (llama-cpp-python
    server); ``"openai"`` sends ``{"type": "json_schema", "json_schema": {"name", "schema"}}`` (vLLM, OpenAI style);
    ``"none"`` sends no constraint (the reply is searched for a JSON object)."""

    def __init__(self, base_url: str, model: str, *, schema_mode: str = "llama-cpp", api_key: str | None = None,
                 timeout_s: float = 300.0, retries: int = 3, backoff_s: float = 1.0,
                 rate_per_s: float | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"{base_url!r}: expected an http(s) URL of an OpenAI-compatible server")
        if schema_mode not in ("llama-cpp", "openai", "none"):
            raise ValueError(f"unknown schema_mode {schema_mode!r}")
        self._client = OpenAIHttpClient(base_url, api_key=api_key, timeout=timeout_s)
        self.url = self._client.base + "/chat/completions"
        self.model = model
        self.name = f"openai-compatible:{model}"
        self.schema_mode = schema_mode
        self.api_key = api_key
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.limiter = RateLimiter(rate_per_s)

    def _body(self, messages, schema, max_tokens, seed, temperature) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                "temperature": temperature, "seed": seed}
        if self.schema_mode == "llama-cpp":
            body["response_format"] = {"type": "json_object", "schema": schema}
        elif self.schema_mode == "openai":
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "item", "schema": schema}}
        return body

    def generate(self, messages: list[Message], schema: dict[str, Any], *, max_tokens: int = 400,
                 seed: int = 0, temperature: float = 0.3) -> GenResult:
        body = self._body(messages, schema, max_tokens, seed, temperature)
        start = time.perf_counter()
        last_error = ""
        for attempt in range(self.retries + 1):
            self.limiter.wait()
            try:
                out = self._client.chat_completions(body)
                choice = out["choices"][0]
                raw = choice["message"].get("content") or ""
                parsed, error = _parse(raw, choice.get("finish_reason"))
                usage = out.get("usage") or {}
                return GenResult(parsed, raw, error, time.perf_counter() - start, usage.get("prompt_tokens", 0),
                                 usage.get("completion_tokens", 0))
            except EndpointError as exc:
                last_error = _endpoint_error(exc)
                if not exc.retryable:
                    break  # a client error, a redirect or a non-JSON answer will not get better by retrying
            except (KeyError, IndexError, TypeError, AttributeError) as exc:
                last_error = f"unexpected response: {exc}"
                break
            if attempt < self.retries:
                time.sleep(self.backoff_s * (2 ** attempt))
        return GenResult(None, "", last_error, time.perf_counter() - start)


def _endpoint_error(exc: EndpointError) -> str:
    if exc.kind == "http":
        return f"HTTP {exc.status}: {exc.body[:200]}"
    if exc.kind == "json":
        return f"unexpected response: {exc}"
    if exc.kind in ("connection", "timeout"):
        return f"connection failed: {exc}"
    return str(exc)  # a redirect, not followed


class ChatBackendGenerator:
    """Any loaded ``core.inference`` ChatBackend through its public streaming API (no constrained decoding)."""

    def __init__(self, backend) -> None:
        self.backend = backend
        info = backend.load()
        self.name = f"{info.backend}:{info.model_name or Path(info.model_path).name}"
        self._lock = threading.Lock()

    def generate(self, messages: list[Message], schema: dict[str, Any], *, max_tokens: int = 400,
                 seed: int = 0, temperature: float = 0.3) -> GenResult:
        from core.inference.backend import GenerationParams

        instruction = ("Answer with one JSON object only, following this JSON schema:\n"
                       + json.dumps(schema, separators=(",", ":")))
        msgs = [dict(m) for m in messages]
        msgs[-1]["content"] = msgs[-1]["content"] + "\n\n" + instruction
        start = time.perf_counter()
        with self._lock:
            raw = "".join(self.backend.chat_stream(msgs, GenerationParams(max_tokens=max_tokens, seed=seed,
                                                                          temperature=temperature)))
            stats = self.backend.last_stats
        parsed, error = _parse(raw, stats.finish_reason if stats else None)
        return GenResult(parsed, raw, error, time.perf_counter() - start,
                         stats.prompt_tokens if stats else 0, stats.generated_tokens if stats else 0)


class GeneratorPool:
    """Round-robin over several generators of the same model (e.g. one llama.cpp / vLLM server per GPU): each call
    goes to the next one, so ``workers`` concurrent jobs spread over the servers."""

    def __init__(self, generators: list[JsonGenerator]) -> None:
        if not generators:
            raise ValueError("an empty generator pool")
        self.generators = generators
        self.name = generators[0].name
        self._next = 0
        self._lock = threading.Lock()

    def generate(self, messages: list[Message], schema: dict[str, Any], *, max_tokens: int = 400,
                 seed: int = 0, temperature: float = 0.3) -> GenResult:
        with self._lock:
            gen = self.generators[self._next % len(self.generators)]
            self._next += 1
        return gen.generate(messages, schema, max_tokens=max_tokens, seed=seed, temperature=temperature)
