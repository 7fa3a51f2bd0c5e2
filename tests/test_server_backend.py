"""The department's server as a ChatBackend: address policy, settings, and the bad servers (down, slow, garbage,
over the context, redirecting, refusing the token, untrusted TLS) against stand-in servers on 127.0.0.1; streaming,
Stop mid-stream, a consultation and a report draft against llama-cpp-python's real server started here."""
from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.inference.backend import BackendError, GenerationParams, ModelLoadError, backend_names, create_backend
from core.inference.server_backend import (
    ContextOverflowError,
    ServerAddressError,
    ServerBackend,
    ServerSettings,
    check_server_address,
)
from core.tasks import CancelToken
from tests.llama_server_support import running_llama_server

MODELS = {"data": [{"id": "spine-70b", "object": "model", "max_model_len": 8192}]}


def _chunk(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).encode() + b"\n\n"


class StandIn:
    """A stdlib HTTP(S) server; ``handler(req)`` writes the answer to POSTs; ``seen`` records the requests."""

    def __init__(self, post, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send_json(self, obj, status=200):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def start_stream(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()

            def do_GET(self):
                outer.seen.append({"path": self.path, "headers": dict(self.headers)})
                self.send_json(MODELS)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
                try:
                    post(self, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def standin():
    servers = []

    def make(post, tls=None):
        servers.append(StandIn(post, tls))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def backend_for(url: str, **kw) -> ServerBackend:
    return ServerBackend(ServerSettings(enabled=True, url=url, timeout_s=kw.pop("timeout_s", 10), **kw))


ASK = [{"role": "user", "content": "Is the L4-L5 disc height reduced?"}]


# --- policy and settings ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:8000/v1", "http://10.20.30.40:8000/v1",
                                 "https://192.168.1.5/v1", "http://172.16.0.9:11434", "http://[::1]:8000",
                                 "http://[fd12:3456::1]:8000/v1"])
def test_loopback_and_private_addresses_allowed(url):
    assert check_server_address(url)


@pytest.mark.parametrize("url", ["http://8.8.8.8:8000/v1", "https://1.1.1.1/v1", "http://172.32.0.1:8000",
                                 "http://[2001:4860:4860::8888]:8000"])
def test_public_addresses_refused(url):
    with pytest.raises(ServerAddressError, match="public address"):
        check_server_address(url)
    with pytest.raises(ServerAddressError, match="public address"):
        backend_for(url).load()


def test_not_a_url_refused():
    with pytest.raises(ServerAddressError, match="not an http"):
        check_server_address("ftp://10.0.0.1/v1")
    with pytest.raises(ModelLoadError, match="no server URL"):
        ServerBackend(ServerSettings())


def test_settings_off_by_default_and_persisted(tmp_path):
    path = tmp_path / "server.json"
    assert ServerSettings.load(path) == ServerSettings() and not ServerSettings().enabled
    s = ServerSettings(enabled=True, url="https://gpu.hospital.lan/v1", api_key="secret", n_ctx=32768)
    s.save(path)
    assert ServerSettings.load(path) == s
    assert path.stat().st_mode & 0o077 == 0  # the token is readable by the user only
    path.write_text("{not json")
    assert ServerSettings.load(path) == ServerSettings()


def test_registered_in_the_backend_registry(standin):
    srv = standin(lambda h, b: None)
    assert "server" in backend_names()
    backend = create_backend("server", settings=ServerSettings(enabled=True, url=srv.url))
    info = backend.load()
    assert isinstance(backend, ServerBackend)
    assert (info.model_name, info.n_ctx) == ("spine-70b", 8192)  # from the server's model list
    assert info.device.startswith("server 127.0.0.1") and "answers come from the server" in info.notes[0]


# --- stand-in servers --------------------------------------------------------------------------------------------
def test_streams_pieces_sends_token_and_schema(standin):
    def post(h, body):
        h.start_stream()
        for piece in ("Disc ", "height ", "is reduced."):
            h.wfile.write(_chunk(piece))
            h.wfile.flush()
        h.wfile.write(_chunk(finish="stop") + b"data: [DONE]\n\n")

    srv = standin(post)
    backend = backend_for(srv.url, api_key="s3cret")
    pieces = list(backend.chat_stream(ASK, GenerationParams(max_tokens=20, json_schema={"type": "object"})))
    assert pieces == ["Disc ", "height ", "is reduced."]
    assert backend.last_stats.finish_reason == "stop" and backend.last_stats.ttft_s is not None
    post_req = srv.seen[-1]
    assert post_req["path"] == "/v1/chat/completions"
    assert post_req["headers"]["Authorization"] == "Bearer s3cret"
    assert post_req["body"]["stream"] is True and post_req["body"]["model"] == "spine-70b"
    assert post_req["body"]["response_format"]["json_schema"]["schema"] == {"type": "object"}


def test_schema_form_falls_back_when_the_server_does_not_take_it(standin):
    def post(h, body):
        fmt = body.get("response_format", {})
        if fmt.get("type") == "json_schema":
            h.send_json({"error": {"message": "response_format.type: 'json_schema' is not supported"}}, 400)
            return
        h.start_stream()
        h.wfile.write(_chunk('{"level": "L4-L5"}') + _chunk(finish="stop") + b"data: [DONE]\n\n")

    srv = standin(post)
    backend = backend_for(srv.url)
    assert "".join(backend.chat_stream(ASK, GenerationParams(json_schema={"type": "object"}))) == '{"level": "L4-L5"}'
    assert [r["body"].get("response_format", {}).get("type") for r in srv.seen if "body" in r] == \
        ["json_schema", "json_object"]
    list(backend.chat_stream(ASK, GenerationParams(json_schema={"type": "object"})))
    assert srv.seen[-1]["body"]["response_format"]["type"] == "json_object"  # remembered


def test_server_down():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = backend_for(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ModelLoadError, match="does not answer.*connection refused"):
        backend.load()


def test_slow_server_times_out_and_keeps_the_text(standin):
    def post(h, body):
        h.start_stream()
        h.wfile.write(_chunk("The disc "))
        h.wfile.flush()
        time.sleep(4)

    srv = standin(post)
    backend = backend_for(srv.url, timeout_s=1)
    got = []
    with pytest.raises(BackendError, match="sent nothing for 1 s while answering"):
        for piece in backend.chat_stream(ASK):
            got.append(piece)  # noqa: PERF402 - the pieces before the error are the point
    assert got == ["The disc "]


def test_garbage_answer(standin):
    def post(h, body):
        h.start_stream()
        h.wfile.write(b"<html><body>Proxy login required</body></html>\n")

    srv = standin(post)
    with pytest.raises(BackendError, match="not an OpenAI-compatible stream.*Proxy login"):
        list(backend_for(srv.url).chat_stream(ASK))

    def post_json_garbage(h, body):
        h.start_stream()
        h.wfile.write(b"data: {truncated\n\n")

    srv2 = standin(post_json_garbage)
    with pytest.raises(BackendError, match="not an OpenAI-compatible stream"):
        list(backend_for(srv2.url).chat_stream(ASK))


def test_over_the_context(standin):
    def post(h, body):
        h.send_json({"error": {"message": "the request exceeds the available context size, try increasing it",
                               "type": "exceed_context_size_error", "n_prompt_tokens": 9000, "n_ctx": 8192}}, 400)

    srv = standin(post)
    backend = backend_for(srv.url)
    with pytest.raises(ContextOverflowError, match="longer than the server's context"):
        list(backend.chat_stream(ASK))
    # a prompt that cannot fit is refused before anything is sent
    sent = len(srv.seen)
    with pytest.raises(ContextOverflowError, match="exceed the server's context of 8192 tokens"):
        list(backend.chat_stream([{"role": "user", "content": "word " * 20000}]))
    assert len(srv.seen) == sent


def test_redirect_not_followed_and_bad_token(standin):
    target = standin(lambda h, b: h.send_json({"never": "here"}))

    def redirect(h, body):
        h.send_response(307)
        h.send_header("Location", target.url + "/chat/completions")
        h.send_header("Content-Length", "0")
        h.end_headers()

    srv = standin(redirect)
    with pytest.raises(BackendError, match="redirect .* was not followed"):
        list(backend_for(srv.url).chat_stream(ASK))
    assert not [r for r in target.seen if "body" in r]

    srv2 = standin(lambda h, b: h.send_json({"error": "invalid token"}, 401))
    with pytest.raises(BackendError, match="refused the request \\(HTTP 401\\): check the token") as err:
        list(backend_for(srv2.url, api_key="wrong-token").chat_stream(ASK))
    assert "wrong-token" not in str(err.value)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not found: cannot make a certificate for the TLS test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_connections_go_to_the_checked_address_not_to_a_second_lookup(standin, monkeypatch):
    """DNS rebinding: a name checked as private must not be looked up again by http.client (a second answer could be
    public). The checker alone knows this name here; the request reaching the stand-in shows the connection used the
    checked address, and a checker answer turning public stops the next request."""
    import types

    from core.inference import server_backend

    def post(h, body):
        h.start_stream()
        h.wfile.write(_chunk("pinned") + _chunk(finish="stop") + b"data: [DONE]\n\n")

    srv = standin(post)
    port = int(srv.url.rsplit(":", 1)[1].split("/")[0])
    answer = ["127.0.0.1"]

    def checker_lookup(host, port_, *args, **kwargs):
        assert host == "llm.hospital.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer[0], port_))]
    monkeypatch.setattr(server_backend, "socket", types.SimpleNamespace(
        getaddrinfo=checker_lookup, SOCK_STREAM=socket.SOCK_STREAM, gaierror=socket.gaierror))
    backend = backend_for(f"http://llm.hospital.test:{port}/v1")
    backend.load()
    assert "".join(backend.chat_stream(ASK)) == "pinned"
    answer[0] = "203.0.113.9"  # the name now points outside the hospital
    with pytest.raises(ServerAddressError, match="public address 203.0.113.9"):
        backend._client.chat_completions({"model": "spine-70b", "messages": ASK})


def test_tls_with_the_hospital_ca(standin, tmp_path):
    cert, key = _self_signed(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def post(h, body):
        h.start_stream()
        h.wfile.write(_chunk("secure") + _chunk(finish="stop") + b"data: [DONE]\n\n")

    srv = standin(post, tls=ctx)
    assert srv.url.startswith("https://")
    with pytest.raises(ModelLoadError, match="TLS certificate is not trusted"):
        backend_for(srv.url).load()
    backend = backend_for(srv.url, ca_file=str(cert))
    backend.load()
    assert "".join(backend.chat_stream(ASK)) == "secure"


def test_stop_mid_stream_on_a_stand_in(standin):
    release = threading.Event()

    def post(h, body):
        h.start_stream()
        for n in range(200):
            h.wfile.write(_chunk(f"w{n} "))
            h.wfile.flush()
            if n == 2:
                release.wait(10)  # holds the stream open: only Stop can end the read

    srv = standin(post)
    backend = backend_for(srv.url, timeout_s=30)
    got = []
    stopper = threading.Timer(0.5, backend.cancel)
    stopper.start()
    for piece in backend.chat_stream(ASK):
        got.append(piece)  # noqa: PERF402 - a loop, as a UI reads a stream
    release.set()
    assert got == ["w0 ", "w1 ", "w2 "]
    assert backend.last_stats.finish_reason == "cancelled"


# --- llama-cpp-python's server, started here ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llama_server(tmp_path_factory, embedded_model):
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_llama_server(embedded_model, log, lambda url: backend_for(url, timeout_s=5).load()) as url:
        yield url


def test_real_server_streams(llama_server):
    backend = backend_for(llama_server, n_ctx=4096, timeout_s=120)
    assert backend.load().model_name == "smollm2"
    pieces = list(backend.chat_stream([{"role": "user", "content": "Name one lumbar vertebra."}],
                                      GenerationParams(max_tokens=12, temperature=0.0, seed=0)))
    assert len(pieces) > 1 and "".join(pieces).strip()
    assert backend.last_stats.generated_tokens == len(pieces)
    assert backend.last_stats.finish_reason in ("stop", "length")


def test_real_server_stop_mid_stream(llama_server):
    backend = backend_for(llama_server, n_ctx=4096, timeout_s=120)
    token = CancelToken()
    got = []
    for piece in backend.chat_stream([{"role": "user", "content": "List the lumbar levels and what to check."}],
                                     GenerationParams(max_tokens=200, temperature=0.0), cancel=token):
        got.append(piece)
        if len(got) == 3:
            token.cancel()
    assert len(got) == 3 and backend.last_stats.finish_reason == "cancelled"
    # Stop from another thread while the read is blocked
    got = []
    for piece in backend.chat_stream([{"role": "user", "content": "Describe spinal stenosis."}],
                                     GenerationParams(max_tokens=200, temperature=0.0)):
        got.append(piece)
        if len(got) == 2:
            threading.Thread(target=backend.cancel).start()
    assert 2 <= len(got) < 200 and backend.last_stats.finish_reason == "cancelled"


def test_real_server_over_its_context(llama_server):
    """Told a larger context than the server has, the prompt passes our check; the server gives up mid-stream."""
    backend = backend_for(llama_server, n_ctx=100_000, timeout_s=120)
    with pytest.raises(BackendError, match="stopped the answer half-way.*longer than its context"):
        list(backend.chat_stream([{"role": "user", "content": "vertebra " * 5000}], GenerationParams(max_tokens=8)))


# --- the consultation and a report draft through the server ----------------------------------------------------------
def test_consultation_through_the_server_with_stop(llama_server, tmp_path):
    from core.consult import Consultation, ConversationStore, Measurement, StudyContext

    ctx = StudyContext(modality="MR", study_description="Lumbar spine", levels_in_view=["L4", "L4-L5", "L5"],
                       measurements=[Measurement("disc height", "L4-L5", 6.1, "mm")])
    store = ConversationStore(tmp_path / "conv.db")
    backend = backend_for(llama_server, n_ctx=4096, timeout_s=120)
    backend.load()
    consult = Consultation(backend, store, ctx, study_key="study-1",
                           params=GenerationParams(max_tokens=24, temperature=0.0, seed=0))
    answer = consult.ask("Is the disc height at L4-L5 reduced?", "L4-L5")
    text = answer.consume()
    assert answer.status == "complete" and text.strip()
    follow = consult.ask("What should I check next at this level?", "L4-L5")
    got = []
    for piece in follow:
        got.append(piece)
        if len(got) == 2:
            consult.cancel()
    assert follow.status == "cancelled"
    stored = store.messages(consult.id)
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[-1].status == "cancelled" and stored[-1].content == "".join(got)
    store.close()


def test_consultation_keeps_the_question_when_the_server_goes_down(tmp_path):
    from core.consult import Consultation, ConversationStore, StudyContext

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = ConversationStore(tmp_path / "conv.db")
    backend = ServerBackend(ServerSettings(enabled=True, url=f"http://127.0.0.1:{port}/v1", model="m", n_ctx=4096))
    backend._loaded = True  # it answered before and went down since: the request is the first to find out
    consult = Consultation(backend, store, StudyContext(modality="CT"), study_key="s")
    answer = consult.ask("Any fracture at T12?", "T12")
    with pytest.raises(BackendError, match="not reachable.*connection refused"):
        answer.consume()
    assert answer.status == "error"
    stored = store.messages(consult.id)
    assert next(m.content for m in stored if m.role == "user").endswith("Any fracture at T12?")
    assert next(m.status for m in stored if m.role == "assistant") == "error"
    store.close()


def test_report_draft_through_the_server(llama_server, tmp_path_factory):
    from core.consult.context import Measurement
    from core.report import SpineReport, draft_report
    from tests.report_support import labelled_bundled_ct

    backend = backend_for(llama_server, n_ctx=4096, timeout_s=300)
    with labelled_bundled_ct(tmp_path_factory.mktemp("home"),
                             [Measurement("disc height", "T11-T12", 6.8, "mm")]) as study:
        rep = draft_report(backend, study.context, study.labelling, **study.draft_kwargs())
    assert rep.incomplete is None, rep.incomplete
    assert [r.level for r in rep.levels] == ["T11", "T11-T12", "T12"]
    assert any(s.source == "model" for _, s in rep.statements())
    assert SpineReport.from_json(rep.to_json()).to_dict() == rep.to_dict()


def test_cli_server_settings(tmp_path, monkeypatch, capsys, standin):
    from app.cli import main

    monkeypatch.setenv("SPINEMED_HOME", str(tmp_path / "home"))
    assert main(["models", "server"]) == 0
    assert "(none) (off" in capsys.readouterr().out
    assert main(["models", "server", "--url", "http://8.8.8.8:8000/v1", "--on"]) == 2
    assert "public address" in capsys.readouterr().err
    assert not ServerSettings.load().enabled
    srv = standin(lambda h, b: None)
    assert main(["models", "server", "--url", srv.url, "--token", "t0k", "--on", "--test"]) == 0
    out = capsys.readouterr().out
    assert "on: consultations and reports use it" in out and "reachable: model spine-70b, context 8192" in out
    assert "t0k" not in out
    saved = ServerSettings.load()
    assert (saved.enabled, saved.url, saved.api_key) == (True, srv.url, "t0k")
    assert main(["models", "server", "--off"]) == 0 and not ServerSettings.load().enabled


# --- the workstation's own paths use the server when it is switched on ----------------------------------------------
def _switch_on(url: str) -> None:
    ServerSettings(enabled=True, url=url, timeout_s=120, n_ctx=4096).save()


def test_spinemed_ask_uses_the_switched_on_server(llama_server, spinemed_home, bundled_ct):
    _switch_on(llama_server)
    proc = subprocess.run([sys.executable, "-m", "app.cli", "ask", str(bundled_ct), "--level", "T11-T12",
                           "--max-tokens", "24", "--no-knowledge", "--raw", "Is the T11-T12 disc narrowed?"],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SPINEMED_HOME": str(spinemed_home)}, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "on server 127.0.0.1" in proc.stderr and proc.stdout.strip()


def test_report_cli_backend_is_the_server_unless_a_model_is_named(llama_server, embedded_model):
    from argparse import Namespace

    from app.report.cli import _backend

    _switch_on(llama_server)
    study = Namespace(study_key="study-1", source=None)  # a NIfTI-like study: no header identifiers
    assert isinstance(_backend(Namespace(report_model=None, model=None, threads=1), study), ServerBackend)
    named = _backend(Namespace(report_model=embedded_model, model=None, threads=1), study)
    assert not isinstance(named, ServerBackend)


def test_chat_panel_loads_the_switched_on_server(llama_server, qtbot, tmp_path):
    from app.chat.chat_panel import ChatPanel
    from core.consult import ConversationStore, StudyContext

    _switch_on(llama_server)
    panel = ChatPanel(store=ConversationStore(tmp_path / "library.db"), retriever=None,
                      params=GenerationParams(max_tokens=16, temperature=0.0))
    qtbot.addWidget(panel)
    panel.set_study("study-A", StudyContext(modality="CT", levels_in_view=["T11", "T11-T12", "T12"]))
    with qtbot.waitSignal(panel.model_loaded, timeout=120_000) as loaded:
        panel.load_model()
    info = loaded.args[0]
    assert info.device.startswith("server") and isinstance(panel.backend, ServerBackend)
    assert "smollm2" in panel.model_label.text() and "server 127.0.0.1" in panel.model_label.text()
