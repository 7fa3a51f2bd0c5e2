"""The department's GPU server as a ChatBackend: any OpenAI-compatible ``/v1/chat/completions`` with streaming
(llama.cpp's server, vLLM, Ollama, llama-cpp-python's server).

    settings = ServerSettings.load()                   # <data>/server.json; off until the user names a URL
    backend = create_backend("server", settings=settings)   # or ServerBackend(settings)
    backend.load()                                     # GET /v1/models: reachable, which model, its context
    for piece in backend.chat_stream(messages, params, cancel=token): ...

Requests carry study context, de-identified first (``core.inference.deidentify``: the open study's header
identifiers, and names, dates and record numbers found by pattern, are removed from every message), and they go only
where the user pointed and only inside the hospital: the host must
resolve to loopback or private (RFC 1918 / RFC 4193 / link-local) addresses, checked before every request, and the
connection goes to an address that check returned (no second lookup that DNS rebinding could turn public); a public
address is refused. TLS (https) verifies the certificate, with the hospital's CA file when one is given; a bearer
token goes in the Authorization header; redirects are never followed (``core.inference.openai_http``). Errors name
the server and say what happened: down, slow (no token within the timeout), garbage (not an event stream / not
JSON), or a question longer than the server's context. Stop (a cancel token or :meth:`ServerBackend.cancel` from
another thread) closes the stream at once; the text received so far stays with the caller.

Token counts are estimated (the OpenAI API has no tokenizer endpoint): about 3 characters per token, which over-counts
English and so keeps prompts inside the context; a server that still finds a prompt too long answers with the
over-context error.
"""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core import paths
from core.inference.backend import (
    BackendError,
    BackendInfo,
    GenerationParams,
    GenerationStats,
    Message,
    ModelLoadError,
)
from core.inference.deidentify import Identifiers, scrub_messages
from core.inference.openai_http import EndpointError, OpenAIHttpClient, base_url, chat_messages
from core.tasks import CancelToken

CHARS_PER_TOKEN = 3.0
_CONTEXT_WORDS = ("context", "too long", "maximum", "exceed")


class ServerAddressError(BackendError):
    """The server's URL is not allowed (a public address, not http(s), unresolvable)."""


class ContextOverflowError(BackendError):
    """The prompt does not fit in the server's context."""


@dataclass
class ServerSettings:
    enabled: bool = field(default=False, metadata={"help": (
        "Send consultations and reports to the server instead of the local model. Off by default.")})
    url: str = field(default="", metadata={"help": (
        "The server's OpenAI-compatible address, e.g. http://10.1.2.3:8000/v1 or https://gpu.hospital.local/v1. "
        "Loopback and private hospital addresses only.")})
    model: str = field(default="", metadata={"help": (
        "Model name the server serves (its /v1/models list); empty: the first one it lists.")})
    api_key: str = field(default="", metadata={"help": (
        "Bearer token if the server requires one (sent in the Authorization header only).")})
    ca_file: str = field(default="", metadata={"help": (
        "The hospital's CA certificate (PEM) for an https server with an internal certificate; empty: the system's.")})
    timeout_s: float = field(default=120.0, metadata={"help": (
        "Seconds to wait for the server to connect, and for each piece of a streamed answer.")})
    n_ctx: int = field(default=0, metadata={"help": (
        "The server's context length in tokens; 0: read from the server when it says, else 4096.")})
    vision: bool = field(default=False, metadata={"help": (
        "The served model takes images (a vision-language model): key images go with the question.")})

    @classmethod
    def path(cls) -> Path:
        return paths.data_dir() / "server.json"

    @classmethod
    def load(cls, path: Path | None = None) -> ServerSettings:
        path = path or cls.path()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()  # no or damaged settings: the server stays off
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path | None = None) -> None:
        path = path or self.path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".server-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(self), fh, indent=2)
        os.chmod(tmp, 0o600)  # it may hold a token
        os.replace(tmp, path)


def _allowed(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if addr.is_loopback or addr.is_link_local:
        return True
    if isinstance(addr, ipaddress.IPv4Address):
        return any(addr in ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
    return addr in ipaddress.ip_network("fc00::/7")


def check_server_address(url: str) -> list[str]:
    """The addresses ``url``'s host resolves to, all loopback or private; else :class:`ServerAddressError`."""
    parts = urlsplit(base_url(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerAddressError(f"{url}: not an http(s) URL (e.g. http://10.1.2.3:8000/v1)")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ServerAddressError(f"{url}: the host {parts.hostname!r} cannot be resolved ({exc})") from None
    addresses = sorted({info[4][0] for info in infos})
    public = [a for a in addresses if not _allowed(ipaddress.ip_address(a.split("%")[0]))]
    if public:
        raise ServerAddressError(
            f"{url}: {parts.hostname} resolves to the public address {', '.join(public)}; study data goes only to "
            "servers on this machine or the hospital network (loopback, 10/8, 172.16/12, 192.168/16, fc00::/7)")
    return addresses


class ServerBackend:
    """A ChatBackend talking to an OpenAI-compatible server (see the module docstring)."""

    name = "server"

    def __init__(self, settings: ServerSettings | None = None, *, url: str | None = None, model: str | None = None,
                 api_key: str | None = None, timeout: float | None = None, **_: Any) -> None:
        s = settings or ServerSettings(enabled=True)
        self.settings = ServerSettings(**{**asdict(s), **{k: v for k, v in (
            ("url", url), ("model", model), ("api_key", api_key), ("timeout_s", timeout)) if v is not None}})
        if not self.settings.url:
            raise ModelLoadError("no server URL: name the department's server in the model settings")
        context = None
        if self.settings.ca_file:
            try:
                context = ssl.create_default_context(cafile=self.settings.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ModelLoadError(f"{self.settings.ca_file}: not a usable CA certificate ({exc})") from None
        try:
            self._client = OpenAIHttpClient(self.settings.url, api_key=self.settings.api_key or None,
                                            timeout=self.settings.timeout_s, ssl_context=context,
                                            resolve=check_server_address)
        except ValueError as exc:
            raise ServerAddressError(str(exc)) from None
        self.base = self._client.base
        self.host = urlsplit(self.base).netloc
        self.last_stats: GenerationStats | None = None
        self._loaded = False
        self._cancel = CancelToken()
        self.identifiers = Identifiers()  # the open study's; names, dates and IDs by pattern are removed regardless
        self._schema_form: int | None = None  # which structured-output form the server took (see _schema_forms)
        self._info = BackendInfo(backend=self.name, model_path=self.base, model_name=self.settings.model,
                                 n_ctx=self.settings.n_ctx or 4096, device=f"server {self.host}",
                                 chat_template="server", multimodal=self.settings.vision)

    # --- ChatBackend ----------------------------------------------------------------------------------------------
    @property
    def is_loaded(self) -> bool:
        return self._loaded

    def info(self) -> BackendInfo:
        return self._info

    def load(self) -> BackendInfo:
        """Check the address and that the server answers; learn the model name and its context when it says."""
        check_server_address(self.base)
        try:
            listing = self._client.models()
        except EndpointError as exc:
            raise ModelLoadError(f"the model server does not answer: {exc}") from exc
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            raise ModelLoadError(f"{self.base}/models: not an OpenAI-compatible model list: {str(listing)[:200]}")
        models = [m for m in data if isinstance(m, dict) and m.get("id")]
        names = [str(m["id"]) for m in models]
        if not self.settings.model:
            if not names:
                raise ModelLoadError(f"{self.base}: the server lists no model; name one in the server settings")
            self.settings.model = names[0]
        elif names and self.settings.model not in names:
            raise ModelLoadError(f"{self.base}: the server has no model {self.settings.model!r} (it serves "
                                 f"{', '.join(names)})")
        entry = next((m for m in models if m["id"] == self.settings.model), {})
        n_ctx = self.settings.n_ctx or _context_of(entry)
        self._info.model_name = self.settings.model
        self._info.n_ctx = n_ctx or 4096
        self._info.notes = [(f"answers come from the server {self.host} (model {self.settings.model}); only "
                             "de-identified study context is sent: no name, ID or birth date, and names, dates and "
                             "record numbers removed from descriptions and questions")]
        if not (self.settings.n_ctx or n_ctx):
            self._info.notes.append("the server does not say its context length: 4096 tokens assumed")
        self._loaded = True
        return self._info

    def unload(self) -> None:
        self._loaded = False

    def cancel(self) -> None:
        """Stop the answer in flight (any thread): the stream is closed, the text so far was already yielded."""
        self._cancel.cancel()
        self._client.abort()

    def count_tokens(self, text: str) -> int:
        return int(len(text) / CHARS_PER_TOKEN) + 1

    def count_prompt_tokens(self, messages: list[Message]) -> int:
        return sum(self.count_tokens(str(m.get("content", ""))) + 4 + 256 * len(m.get("images") or [])
                   for m in messages) + 3

    def set_identifiers(self, identifiers: Identifiers) -> None:
        """The open study's identifiers (core.inference.deidentify): removed from every message sent."""
        self.identifiers = identifiers

    def _messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        return chat_messages(scrub_messages(messages, self.identifiers), self.settings.vision,
                             f"the model on {self.host} was not declared vision-capable in the server settings: "
                             "it cannot receive images")

    def chat_stream(self, messages: list[Message], params: GenerationParams | None = None,
                    cancel: CancelToken | None = None) -> Iterator[str]:
        params = params or GenerationParams()
        if not self._loaded:
            self.load()
        check_server_address(self.base)
        body: dict[str, Any] = {"model": self.settings.model, "messages": self._messages(messages),
                                "max_tokens": params.max_tokens, "temperature": params.temperature,
                                "top_p": params.top_p, "stream": True,
                                "stream_options": {"include_usage": True}}
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        forms = _schema_forms(params.json_schema) if params.json_schema is not None else [None]
        if self._schema_form is not None and params.json_schema is not None:
            forms = forms[self._schema_form:]
        self._cancel = CancelToken()
        stats = GenerationStats(prompt_tokens=self.count_prompt_tokens(messages))
        if stats.prompt_tokens + params.max_tokens > self._info.n_ctx:
            raise ContextOverflowError(
                f"the model server {self.host}: the question with its study context and conversation (about "
                f"{stats.prompt_tokens} tokens) and room for the answer ({params.max_tokens}) exceed the server's "
                f"context of {self._info.n_ctx} tokens; start a new conversation or ask a shorter question")
        self.last_stats = stats
        start = time.perf_counter()
        try:
            for n, form in enumerate(forms):
                if form is None:
                    body.pop("response_format", None)
                else:
                    body["response_format"] = form
                try:
                    yield from self._stream(body, stats, start, cancel)
                    if params.json_schema is not None:
                        self._schema_form = len(_schema_forms({})) - len(forms) + n
                    return
                except EndpointError as exc:
                    # a server that does not take this form of structured output says so in the error; try the next
                    # form (vLLM / llama.cpp: json_schema; llama-cpp-python: json_object + schema; else none)
                    rejected = (form is not None and exc.kind == "http" and "response_format" in exc.body
                                and stats.generated_tokens == 0)
                    if not rejected:
                        raise
                    if forms[n + 1] is None:
                        self._info.notes.append(f"the server {self.host} takes no JSON schema; answers are checked "
                                                "after generation only")
        except EndpointError as exc:
            raise self._explain(exc, stats) from exc
        finally:
            stats.total_s = time.perf_counter() - start

    def _stream(self, body: dict[str, Any], stats: GenerationStats, start: float,
                cancel: CancelToken | None) -> Iterator[str]:
        def stopped() -> bool:
            return self._cancel.cancelled or (cancel is not None and cancel.cancelled)

        try:
            for event in self._client.stream_events("/chat/completions", body):
                if stopped():
                    stats.finish_reason = "cancelled"
                    return
                for piece in self._pieces(event, stats):
                    if stats.ttft_s is None:
                        stats.ttft_s = time.perf_counter() - start
                    stats.generated_tokens += 1
                    yield piece
        except EndpointError as exc:
            if stopped():  # the stream was closed by Stop: not an error
                stats.finish_reason = "cancelled"
                return
            if exc.kind == "truncated" and stats.finish_reason:
                return  # the answer was complete; only the [DONE] marker was missing
            raise
        if stopped():
            stats.finish_reason = "cancelled"

    def _pieces(self, event: Any, stats: GenerationStats) -> list[str]:
        url = f"{self.base}/chat/completions"
        if isinstance(event, dict) and "__whole__" in event:  # the server answered in one piece
            whole = event["__whole__"]
            try:
                choice = whole["choices"][0]
                text = choice["message"].get("content") or ""
            except (KeyError, IndexError, TypeError, AttributeError):
                raise EndpointError(f"{url}: unexpected answer {str(whole)[:300]}", url=url, kind="json") from None
            stats.finish_reason = str(choice.get("finish_reason") or "stop")
            self._usage(whole, stats)
            return [text] if text else []
        if not isinstance(event, dict):
            raise EndpointError(f"{url}: unexpected event {str(event)[:300]}", url=url, kind="json")
        if "error" in event:
            err = event["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            raise EndpointError(f"{url}: the server reported an error: {msg}", url=url, kind="http", status=400,
                                body=str(msg))
        choices = event.get("choices")
        self._usage(event, stats)
        if choices == [] and "usage" in event:
            return []
        try:
            choice = choices[0]
            delta = choice.get("delta") or {}
        except (TypeError, IndexError, AttributeError):
            raise EndpointError(f"{url}: unexpected event {str(event)[:300]}", url=url, kind="json") from None
        if choice.get("finish_reason"):
            stats.finish_reason = str(choice["finish_reason"])
        content = delta.get("content") if isinstance(delta, dict) else None
        return [content] if isinstance(content, str) and content else []

    @staticmethod
    def _usage(event: dict, stats: GenerationStats) -> None:
        usage = event.get("usage")
        if isinstance(usage, dict) and usage.get("prompt_tokens"):
            stats.prompt_tokens = int(usage["prompt_tokens"])

    def _explain(self, exc: EndpointError, stats: GenerationStats) -> BackendError:
        """The user-facing error for a failed request."""
        where = f"the model server {self.host}"
        body = exc.body.lower()
        if exc.kind == "http" and exc.status in (400, 413, 422) and any(w in body for w in _CONTEXT_WORDS) \
                and ("token" in body or "context" in body):
            return ContextOverflowError(
                f"{where}: the question with its study context and conversation is longer than the server's "
                f"context ({self._info.n_ctx} tokens); start a new conversation or ask a shorter question "
                f"(server: {exc.body[:200]})")
        if exc.kind == "connection":
            return BackendError(f"{where} is not reachable: {exc}")
        if exc.kind == "timeout":
            during = "while answering" if stats.generated_tokens else "before the first word"
            return BackendError(f"{where} sent nothing for {self.settings.timeout_s:g} s {during} (busy or stalled); "
                                "the text so far is kept, try again")
        if exc.kind == "truncated":
            return BackendError(f"{where} stopped the answer half-way (the stream closed early; often a question "
                                f"longer than its context of {self._info.n_ctx} tokens); the text so far is kept: {exc}")
        if exc.kind == "json":
            return BackendError(f"{where} answered with something that is not an OpenAI-compatible stream: {exc}")
        if exc.kind == "http" and exc.status in (401, 403):
            return BackendError(f"{where} refused the request (HTTP {exc.status}): check the token in the server "
                                "settings")
        return BackendError(f"{where}: {exc}")


def _schema_forms(schema: dict | None) -> list[dict | None]:
    """The ways servers take a JSON schema, in the order tried; None: no structured output."""
    return [{"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
            {"type": "json_object", "schema": schema}, None]


def _context_of(entry: dict) -> int:
    """Context length from a /v1/models entry: vLLM ``max_model_len``, llama.cpp ``meta.n_ctx_train``/``n_ctx``."""
    for key in ("max_model_len", "context_length", "n_ctx"):
        if isinstance(entry.get(key), int):
            return int(entry[key])
    meta = entry.get("meta")
    if isinstance(meta, dict):
        for key in ("n_ctx", "n_ctx_train"):
            if isinstance(meta.get(key), int):
                return int(meta[key])
    return 0
