"""llama-cpp-python's OpenAI-compatible server on 127.0.0.1 with the embedded model, for tests of the HTTP paths."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.inference.backend import BackendError

ALIAS = "smollm2"


@contextlib.contextmanager
def running_llama_server(model: Path, log: Path, ready: Callable[[str], object],
                         wait_s: float = 90.0) -> Iterator[str]:
    """Start the server on a free loopback port; yield its /v1 URL once ``ready(url)`` stops raising BackendError;
    stop it afterwards. Its log goes to a file (llama.cpp logs would fill a pipe)."""
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python's server extra (fastapi, uvicorn, "
                                                      "sse-starlette, starlette-context, pydantic-settings) missing")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
                                 "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "4096",
                                 "--model_alias", ALIAS], stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + wait_s
        while True:
            try:
                ready(url)
                break
            except BackendError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"llama_cpp.server did not come up on {url}: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
