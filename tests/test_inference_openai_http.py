"""The shared OpenAI-compatible HTTP client against stand-in servers on 127.0.0.1: a normal answer, a redirect that
must not be followed, HTTP errors, a non-JSON answer, a refused connection; and the two clients built on it."""
from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from core.inference.backend import BackendError
from core.inference.openai_http import EndpointError, OpenAIHttpClient, base_url
from curation.generate.llm import OpenAIJsonGenerator
from spinebench.clients import OpenAIBackend

ANSWER = {"choices": [{"message": {"content": "{\"answer\": \"L4\"}"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 7, "completion_tokens": 5}}


class _Server:
    """A stdlib HTTP server in a thread; ``reply`` is (status, headers, body bytes); ``seen`` records each request."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.reply: tuple[int, dict[str, str], bytes] = (200, {}, b"{}")
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                    "body": self.rfile.read(length)})
                status, headers, body = server.reply
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def json(self, obj, status: int = 200) -> None:
        self.reply = (status, {"Content-Type": "application/json"}, json.dumps(obj).encode())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def endpoint() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture
def elsewhere() -> Iterator[_Server]:
    """Where a redirect points: it must never get a request."""
    srv = _Server()
    srv.json(ANSWER)
    yield srv
    srv.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_base_url_forms():
    assert base_url("http://h:8000") == "http://h:8000/v1"
    assert base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert base_url("http://h:8000/v1/chat/completions") == "http://h:8000/v1"
    with pytest.raises(ValueError, match="not an http"):
        OpenAIHttpClient("ftp://h/v1")


def test_json_answer(endpoint):
    endpoint.json(ANSWER)
    client = OpenAIHttpClient(endpoint.url + "/v1/", api_key="secret", timeout=5)
    out = client.chat_completions({"model": "m", "messages": [{"role": "user", "content": "Which level? é"}]})
    assert out == ANSWER
    (req,) = endpoint.seen
    assert (req["method"], req["path"]) == ("POST", "/v1/chat/completions")
    assert json.loads(req["body"])["messages"][0]["content"] == "Which level? é"
    assert req["headers"]["Authorization"] == "Bearer secret"
    assert req["headers"]["Content-Type"] == "application/json"
    endpoint.json({"data": [{"id": "m"}]})
    assert client.models() == {"data": [{"id": "m"}]}
    assert (endpoint.seen[-1]["method"], endpoint.seen[-1]["path"]) == ("GET", "/v1/models")


@pytest.mark.parametrize("status", [302, 307])
def test_redirect_is_an_error_and_not_followed(endpoint, elsewhere, status):
    target = elsewhere.url + "/v1/chat/completions"
    endpoint.reply = (status, {"Location": target}, b"")
    client = OpenAIHttpClient(endpoint.url, timeout=5)
    with pytest.raises(EndpointError) as info:
        client.chat_completions({"model": "m", "messages": []})
    err = info.value
    assert (err.kind, err.status, err.retryable) == ("redirect", status, False)
    assert endpoint.url + "/v1/chat/completions" in str(err) and target in str(err)
    assert len(endpoint.seen) == 1
    assert elsewhere.seen == []


def test_server_error_with_body(endpoint):
    endpoint.reply = (500, {"Content-Type": "text/plain"}, b"model crashed: out of memory")
    with pytest.raises(EndpointError, match="HTTP 500 model crashed: out of memory") as info:
        OpenAIHttpClient(endpoint.url, timeout=5).chat_completions({"model": "m", "messages": []})
    err = info.value
    assert (err.kind, err.status, err.body, err.retryable) == ("http", 500, "model crashed: out of memory", True)
    assert isinstance(err, BackendError) and err.url == endpoint.url + "/v1/chat/completions"
    endpoint.reply = (400, {}, b"bad request")
    with pytest.raises(EndpointError) as info:
        OpenAIHttpClient(endpoint.url, timeout=5).chat_completions({})
    assert (info.value.status, info.value.retryable) == (400, False)


def test_non_json_answer(endpoint):
    endpoint.reply = (200, {"Content-Type": "text/html"}, b"<html>login page</html>")
    with pytest.raises(EndpointError, match="not a JSON response") as info:
        OpenAIHttpClient(endpoint.url, timeout=5).chat_completions({"model": "m", "messages": []})
    assert (info.value.kind, info.value.retryable) == ("json", False)
    assert "login page" in str(info.value)


def test_connection_refused():
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    with pytest.raises(EndpointError, match="connection refused") as info:
        OpenAIHttpClient(url, timeout=5).chat_completions({"model": "m", "messages": []})
    assert (info.value.kind, info.value.retryable) == ("connection", True)
    assert url + "/chat/completions" in str(info.value)


def test_both_clients_refuse_redirects(endpoint, elsewhere):
    endpoint.reply = (302, {"Location": elsewhere.url + "/v1/chat/completions"}, b"")
    gen = OpenAIJsonGenerator(endpoint.url + "/v1", "m", backoff_s=0.0)
    result = gen.generate([{"role": "user", "content": "q"}], {"type": "object"})
    assert result.parsed is None and "redirect" in result.error and "not" in result.error
    assert len(endpoint.seen) == 1  # not retried
    with pytest.raises(BackendError, match="redirect"):
        list(OpenAIBackend(endpoint.url, "m", timeout=5).chat_stream([{"role": "user", "content": "q"}]))
    assert elsewhere.seen == []


def test_generator_errors_keep_their_form(endpoint):
    endpoint.reply = (503, {}, b"busy")
    gen = OpenAIJsonGenerator(endpoint.url, "m", retries=1, backoff_s=0.0)
    assert gen.url == endpoint.url + "/v1/chat/completions"
    result = gen.generate([{"role": "user", "content": "q"}], {"type": "object"})
    assert result.error == "HTTP 503: busy" and len(endpoint.seen) == 2  # retried once
    endpoint.json(ANSWER)
    result = gen.generate([{"role": "user", "content": "q"}], {"type": "object"})
    assert result.parsed == {"answer": "L4"} and (result.prompt_tokens, result.completion_tokens) == (7, 5)
    refused = OpenAIJsonGenerator(f"http://127.0.0.1:{_closed_port()}", "m", retries=0)
    assert refused.generate([{"role": "user", "content": "q"}], {}).error.startswith("connection failed: ")
