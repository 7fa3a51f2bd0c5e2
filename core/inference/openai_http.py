"""A minimal client for an OpenAI-compatible HTTP endpoint (llama.cpp server, vLLM, ...) that the user names.

Requests carry patient-derived text, so they go to the URL the user gave and nowhere else: ``http.client`` (no
redirects followed, no proxy from the environment), and a 3xx answer is an error naming the URL and the redirect
target. JSON in, JSON out (``POST <base>/chat/completions``, ``GET <base>/models``), a timeout on every request and
one exception type, :class:`EndpointError`, whose message says what went wrong and where.
"""
from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from core.inference.backend import BackendError

_BODY_KEPT = 2000  # characters of an error response kept on the exception
_BODY_SHOWN = 300  # ... and shown in its message


class EndpointError(BackendError):
    """A request to the endpoint failed. ``kind``: "connection" (refused, unreachable, dropped), "timeout",
    "redirect" (3xx, not followed), "http" (4xx/5xx) or "json" (the answer is not JSON)."""

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

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.base = base_url(url)
        parts = urlsplit(self.base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url}: not an http(s) URL")
        self._parts = parts
        self.api_key = api_key
        self.timeout = timeout

    def chat_completions(self, body: dict[str, Any]) -> Any:
        """``POST <base>/chat/completions`` with ``body``; the decoded JSON answer."""
        return self.request_json("POST", "/chat/completions", body)

    def models(self) -> Any:
        """``GET <base>/models``; the decoded JSON answer."""
        return self.request_json("GET", "/models")

    def request_json(self, method: str, path: str, body: Any = None) -> Any:
        """``method <base><path>`` with an optional JSON body; the decoded JSON answer, else :class:`EndpointError`."""
        url = self.base + path
        cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(self._parts.hostname, self._parts.port, timeout=self.timeout)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode("utf-8") if body is not None else None
        try:
            conn.request(method, self._parts.path + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            location = resp.getheader("Location")
        except ConnectionRefusedError:
            raise EndpointError(f"{url}: connection refused (is the server running and listening there?)",
                                url=url, kind="connection") from None
        except TimeoutError:
            raise EndpointError(f"{url}: no answer within {self.timeout:g} s", url=url, kind="timeout") from None
        except (OSError, http.client.HTTPException) as exc:
            raise EndpointError(f"{url}: request failed ({str(exc) or type(exc).__name__})", url=url,
                                kind="connection") from exc
        finally:
            conn.close()
        text = raw[:_BODY_KEPT].decode("utf-8", "replace")
        if 300 <= resp.status < 400:
            raise EndpointError(f"{url}: HTTP {resp.status} redirect to {location or '(no Location)'} was not "
                                "followed; give the endpoint's own URL", url=url, kind="redirect",
                                status=resp.status, body=text)
        if resp.status >= 400 or resp.status < 200:
            raise EndpointError(f"{url}: HTTP {resp.status} {text[:_BODY_SHOWN]}", url=url, kind="http",
                                status=resp.status, body=text)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise EndpointError(f"{url}: not a JSON response ({exc}): {text[:_BODY_SHOWN]!r}", url=url, kind="json",
                                status=resp.status, body=text) from None
