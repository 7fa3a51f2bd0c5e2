"""A minimal client for an OpenAI-compatible HTTP endpoint (llama.cpp server, vLLM, ...) that the user names.

Requests carry patient-derived text, so they go to the URL the user gave and nowhere else: ``http.client`` (no
redirects followed, no proxy from the environment), and a 3xx answer is an error naming the URL and the redirect
target. JSON in, JSON out (``POST <base>/chat/completions``, ``GET <base>/models``), a timeout on every request and
one exception type, :class:`EndpointError`, whose message says what went wrong and where. With ``resolve`` (a
function from the base URL to the addresses it may use, raising when none is allowed), every connection goes to an
address that function returned, not to a second lookup of the name: a name that resolves to a private address when
checked and to a public one a moment later (DNS rebinding) cannot take the request elsewhere. TLS still checks the
certificate against the host name.
:meth:`OpenAIHttpClient.stream_events` reads a streamed answer (server-sent events, ``data: {json}`` lines) and can be
interrupted from another thread (:meth:`OpenAIHttpClient.abort`).
"""
from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from core.inference.backend import BackendError

_BODY_KEPT = 2000  # characters of an error response kept on the exception
_BODY_SHOWN = 300  # ... and shown in its message


class EndpointError(BackendError):
    """A request to the endpoint failed. ``kind``: "connection" (refused, unreachable, dropped), "timeout",
    "redirect" (3xx, not followed), "http" (4xx/5xx), "tls" (certificate not trusted), "truncated" (a stream
    closed before ``[DONE]``) or "json" (the answer is not
    JSON or not an event stream)."""

    def __init__(self, message: str, *, url: str, kind: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.url = url
        self.kind = kind
        self.status = status
        self.body = body

    @property
    def retryable(self) -> bool:
        """Worth trying again: the server was not reachable / did not answer, or said busy (408, 429, 5xx)."""
        if self.kind in ("connection", "timeout"):
            return True
        return self.kind == "http" and self.status is not None and (self.status in (408, 429) or self.status >= 500)


def chat_messages(messages: list[dict[str, Any]], vision: bool, refusal: str) -> list[dict[str, Any]]:
    """Messages in the OpenAI chat layout: a message with ``images`` (PNG bytes) becomes image_url parts (data URLs)
    followed by its text; images to an endpoint not declared vision-capable raise BackendError(``refusal``)."""
    out = []
    for m in messages:
        images = m.get("images") or []
        if images and not vision:
            raise BackendError(refusal)
        if images:
            parts: list[dict[str, Any]] = [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(p).decode()}}
                for p in images]
            parts.append({"type": "text", "text": m["content"]})
            out.append({"role": m["role"], "content": parts})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


def base_url(url: str) -> str:
    """'http://h:8000' / 'http://h:8000/v1/' / '.../v1/chat/completions' -> 'http://h:8000/v1'."""
    url = url.rstrip("/")
    for tail in ("/chat/completions", "/completions"):
        url = url.removesuffix(tail)
    return url if url.endswith("/v1") else url + "/v1"


class OpenAIHttpClient:
    """JSON requests to one OpenAI-compatible server; ``base`` is the user's URL normalised to end in ``/v1``.

    Raises ValueError for a URL that is not http(s) with a host name. An optional bearer token (``api_key``) goes
    in the Authorization header and never into a message.
    """

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 600.0,
                 ssl_context: ssl.SSLContext | None = None,
                 resolve: Callable[[str], list[str]] | None = None) -> None:
        self.base = base_url(url)
        parts = urlsplit(self.base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url}: not an http(s) URL")
        self._parts = parts
        self.api_key = api_key
        self.timeout = timeout
        self.ssl_context = ssl_context  # https only; None: the system's CAs, certificate and host name verified
        self.resolve = resolve  # base URL -> the addresses connections may go to (see the module docstring)
        self._streams: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._parts.hostname, self._parts.port, timeout=timeout, context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection(self._parts.hostname, self._parts.port, timeout=timeout)
        if self.resolve is not None:
            addresses = self.resolve(self.base)

            def pinned(address: tuple[str, int], timeout: float, source: Any = None) -> socket.socket:
                last: OSError | None = None
                for host in addresses:  # the checked addresses only; http.client keeps the name for Host and TLS
                    try:
                        return socket.create_connection((host, address[1]), timeout, source)
                    except OSError as exc:
                        last = exc
                raise last or OSError(f"no address for {address[0]}")
            conn._create_connection = pinned  # type: ignore[attr-defined]
        return conn

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": accept}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def abort(self) -> None:
        """Close every stream in flight (from any thread): a blocked read returns at once."""
        with self._lock:
            streams = list(self._streams)
        for conn in streams:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stream_events(self, path: str, body: Any) -> Iterator[Any]:
        """``POST <base><path>`` and yield each decoded ``data:`` event of the server-sent event stream, until
        ``data: [DONE]``; a stream that ends without it raises a "truncated" :class:`EndpointError`. ``timeout`` applies to every read, so a server that stops
        sending mid-answer raises a "timeout" :class:`EndpointError` instead of hanging."""
        url = self.base + path
        conn = self._connection(self.timeout)
        with self._lock:
            self._streams.add(conn)
        try:
            try:
                conn.request("POST", self._parts.path + path, body=json.dumps(body).encode("utf-8"),
                             headers=self._headers("text/event-stream"))
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise self._failure(url, exc) from None
            if resp.status < 200 or resp.status >= 300:
                try:
                    raw = resp.read()
                except (OSError, http.client.HTTPException):
                    raw = b""
                self._check_status(url, resp, raw)
            ctype = (resp.getheader("Content-Type") or "").lower()
            if "json" in ctype and "event-stream" not in ctype:  # a server that ignored stream=true
                raw = resp.read()
                try:
                    yield {"__whole__": json.loads(raw)}
                except ValueError:
                    text = raw[:_BODY_KEPT].decode("utf-8", "replace")
                    raise EndpointError(f"{url}: not a JSON response: {text[:_BODY_SHOWN]!r}", url=url, kind="json",
                                        status=resp.status, body=text) from None
                return
            while True:
                try:
                    line = resp.readline()
                except (OSError, http.client.HTTPException) as exc:
                    raise self._failure(url, exc) from None
                if not line:
                    raise EndpointError(f"{url}: the server closed the stream before the end of the answer (no "
                                        "[DONE]); its log says why", url=url, kind="truncated", status=resp.status)
                line = line.strip()
                if not line or line.startswith(b":"):
                    continue  # keep-alive comments and event separators
                if not line.startswith(b"data:"):
                    if line.startswith((b"event:", b"id:", b"retry:")):
                        continue
                    text = line[:_BODY_SHOWN].decode("utf-8", "replace")
                    raise EndpointError(f"{url}: not an event stream (got {text!r})", url=url, kind="json",
                                        status=resp.status, body=text)
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                try:
                    yield json.loads(data)
                except ValueError:
                    text = data[:_BODY_SHOWN].decode("utf-8", "replace")
                    raise EndpointError(f"{url}: an event of the stream is not JSON: {text!r}", url=url, kind="json",
                                        status=resp.status, body=text) from None
        finally:
            with self._lock:
                self._streams.discard(conn)
            conn.close()

    def _failure(self, url: str, exc: BaseException) -> EndpointError:
        if isinstance(exc, ConnectionRefusedError):
            return EndpointError(f"{url}: connection refused (is the server running and listening there?)",
                                 url=url, kind="connection")
        if isinstance(exc, TimeoutError):
            return EndpointError(f"{url}: no answer within {self.timeout:g} s", url=url, kind="timeout")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return EndpointError(f"{url}: the server's TLS certificate is not trusted ({exc.verify_message}); give "
                                 "the hospital's CA certificate in the server settings", url=url, kind="tls")
        return EndpointError(f"{url}: request failed ({str(exc) or type(exc).__name__})", url=url, kind="connection")

    def _check_status(self, url: str, resp: http.client.HTTPResponse, raw: bytes) -> None:
        text = raw[:_BODY_KEPT].decode("utf-8", "replace")
        if 300 <= resp.status < 400:
            location = resp.getheader("Location")
            raise EndpointError(f"{url}: HTTP {resp.status} redirect to {location or '(no Location)'} was not "
                                "followed; give the endpoint's own URL", url=url, kind="redirect",
                                status=resp.status, body=text)
        if resp.status >= 400 or resp.status < 200:
            raise EndpointError(f"{url}: HTTP {resp.status} {text[:_BODY_SHOWN]}", url=url, kind="http",
                                status=resp.status, body=text)

    def chat_completions(self, body: dict[str, Any]) -> Any:
        """``POST <base>/chat/completions`` with ``body``; the decoded JSON answer."""
        return self.request_json("POST", "/chat/completions", body)

    def models(self) -> Any:
        """``GET <base>/models``; the decoded JSON answer."""
        return self.request_json("GET", "/models")

    def request_json(self, method: str, path: str, body: Any = None) -> Any:
        """``method <base><path>`` with an optional JSON body; the decoded JSON answer, else :class:`EndpointError`."""
        url = self.base + path
        conn = self._connection(self.timeout)
        data = json.dumps(body).encode("utf-8") if body is not None else None
        try:
            conn.request(method, self._parts.path + path, body=data, headers=self._headers("application/json"))
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._failure(url, exc) from None
        finally:
            conn.close()
        self._check_status(url, resp, raw)
        text = raw[:_BODY_KEPT].decode("utf-8", "replace")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise EndpointError(f"{url}: not a JSON response ({exc}): {text[:_BODY_SHOWN]!r}", url=url, kind="json",
                                status=resp.status, body=text) from None
