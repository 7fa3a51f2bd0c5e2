"""The OpenAI-compatible backend against a real server: llama-cpp-python's own server, started here on 127.0.0.1
with the embedded model, serving as candidate and as judge; and a stand-in vision endpoint that records the image
it is sent."""
from __future__ import annotations

import base64
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest

from core.inference.backend import BackendError, GenerationParams
from spinebench.clients import ModelSpec, OpenAIBackend, base_url, make_backend
from spinebench.runner import RunConfig, evaluate_item, run
from spinebench.schema import load_benchmark
from tests.llama_server_support import running_llama_server

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "resources" / "spinebench" / "v2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedded_model):
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_llama_server(embedded_model, log, lambda url: OpenAIBackend(url, "smollm2", timeout=5).load()) as url:
        yield url


def test_base_url_forms():
    assert base_url("http://h:8000") == "http://h:8000/v1"
    assert base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert base_url("http://h:8000/v1/chat/completions") == "http://h:8000/v1"


def test_chat_through_the_endpoint(server):
    backend = OpenAIBackend(server, "smollm2")
    info = backend.load()
    assert (info.backend, info.multimodal) == ("openai", False)
    text = "".join(backend.chat_stream([{"role": "user", "content": "Name one lumbar vertebra."}],
                                       GenerationParams(max_tokens=12, temperature=0.0, seed=0)))
    assert text and backend.last_stats.generated_tokens > 0
    with pytest.raises(BackendError, match="vision"):
        list(backend.chat_stream([{"role": "user", "content": "x", "images": [b"png"]}]))


def test_benchmark_run_with_endpoint_as_candidate_and_judge(server, tmp_path):
    spec = ModelSpec("openai", "smollm2", url=server)
    cfg = RunConfig(bench=BENCH, out=tmp_path / "api", candidate=spec, judge=spec, limit=4, judge_retry=False,
                    axes=("level_identification", "report_generation"),
                    max_tokens={"mcq": 16, "open": 16, "report": 48, "dialogue": 16, "judge": 32})
    results = run(cfg, log=lambda s: None)
    records = [json.loads(x) for x in (tmp_path / "api" / "responses.jsonl").read_text().splitlines()]
    assert len(records) == 4 and not any(r.get("error") for r in records)
    assert all(r["responses"][0] for r in records)
    report = next(r for r in records if r["format"] == "report")
    assert report["judge"]["raw"]
    assert results["meta"]["candidate"]["kind"] == "openai" and results["meta"]["candidate_info"]["backend"] == "openai"
    assert results["summary"]["flags"]["image_withheld"] >= 1


def test_vision_endpoint_receives_the_item_image(tmp_path):
    """A stand-in endpoint (stdlib HTTP server) records what it gets: the PNG of an image item as a data URI."""
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, obj):
            body = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._send({"data": [{"id": "vlm"}]})

        def do_POST(self):
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self._send({"choices": [{"message": {"content": "Answer: B"}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 3}})

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
        spec = ModelSpec("openai", "vlm", url=url, vision=True)
        bench = load_benchmark(BENCH)
        item = next(i for i in bench.items if i.images)
        backend = make_backend(spec)
        assert backend.load().multimodal
        rec = evaluate_item(item, bench, backend, None, True, RunConfig(bench=BENCH, out=tmp_path, candidate=spec))
    finally:
        srv.shutdown()
    parts = seen[0]["messages"][1]["content"]
    assert parts[0]["type"] == "image_url"
    sent = base64.b64decode(parts[0]["image_url"]["url"].removeprefix("data:image/png;base64,"))
    assert sent == (BENCH / item.images[0]).read_bytes() and parts[1]["type"] == "text"
    assert (rec["extracted"], rec["image_withheld"]) == ("B", False)
