"""Automatic labelling out of the calling process: :func:`auto_label_in_subprocess`.

The GUI must survive a backend that crashes, leaks memory or will not stop, so it runs ``auto_label`` in a child
Python (``python -m core.spine.autolabel.worker``): the volume goes through a temporary folder
(:mod:`core.spine.autolabel.exchange`), progress comes back as JSON lines on the child's stdout, cancel closes the
child's stdin and terminates it (then kills it after a grace period), and the labelling comes back as JSON. Errors
read the same as in-process: the backend is chosen here first (unknown name, backend not installed), an
AutoLabelError in the child is raised again with its message, and a crash becomes :class:`WorkerCrashed` (an
AutoLabelError) with the tail of the child's error output. Nothing here uses the network.
"""
from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import core
from core.spine.autolabel.base import AutoLabelError, choose_backend
from core.spine.autolabel.exchange import (
    EXIT_CANCELLED,
    EXIT_LABEL_ERROR,
    EXIT_OK,
    STDERR,
    parse_progress,
    read_outcome,
    write_volume,
)
from core.spine.labelling import SpineLabelling
from core.studies.volume import Volume
from core.tasks import Cancelled, CancelToken, ProgressFn, check, report

WORKER_MODULE = "core.spine.autolabel.worker"
GRACE_S = 5.0  # after a cancel, how long the child may take to stop by itself before it is killed
POLL_S = 0.05
_TAIL_LINES = 8
_EOF = object()


class WorkerCrashed(AutoLabelError):
    """The labelling process ended without an answer (an exception, a signal, no result file)."""

    def __init__(self, message: str, returncode: int | None, stderr_tail: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


def auto_label_in_subprocess(volume: Volume, backend: str | None = None, progress: ProgressFn | None = None,
                             cancel: CancelToken | None = None, timeout: float | None = None,
                             grace_s: float = GRACE_S) -> SpineLabelling:
    """Like :func:`core.spine.autolabel.auto_label`, in a child process; raises Cancelled or AutoLabelError."""
    check(cancel)
    chosen = choose_backend(volume, backend)  # the in-process errors, before any process starts
    folder = Path(tempfile.mkdtemp(prefix="spinemed-autolabel-"))
    try:
        report(progress, 0.0, "Starting the labelling process")
        write_volume(volume, folder)
        check(cancel)
        with open(folder / STDERR, "wb") as stderr:
            child = _Child(folder, chosen.name, stderr)
            try:
                child.follow(progress, cancel, timeout, grace_s)
            finally:
                child.stop(grace_s)
        if child.proc.returncode == EXIT_CANCELLED or (cancel is not None and cancel.cancelled):
            raise Cancelled()
        return _result(folder, child.proc.returncode)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Child:
    """The worker process, and a thread queueing the lines of its stdout."""

    def __init__(self, folder: Path, backend: str, stderr) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(folder), "--backend", backend],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=folder, env=_child_env(),
            text=True, encoding="utf-8", errors="replace", creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
        self.lines: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True, name="autolabel-progress")
        self.reader.start()

    def _read(self) -> None:
        try:
            for line in self.proc.stdout:
                self.lines.put(line)
        except (OSError, ValueError):
            pass
        self.lines.put(_EOF)

    def follow(self, progress: ProgressFn | None, cancel: CancelToken | None, timeout: float | None,
               grace_s: float) -> None:
        """Relay progress until the child ends; raise Cancelled, or AutoLabelError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        exited_at, eof = None, False
        while True:
            try:
                item = self.lines.get(timeout=POLL_S)
            except queue.Empty:
                item = None
            if item is _EOF:
                eof = True
            elif item is not None:
                parsed = parse_progress(item)
                if parsed is not None:
                    report(progress, *parsed)
            if cancel is not None and cancel.cancelled:
                self.stop(grace_s)
                raise Cancelled()
            if deadline is not None and time.monotonic() > deadline:
                self.stop(grace_s)
                raise AutoLabelError(f"automatic labelling did not finish within {timeout:g} s and was stopped")
            if self.proc.poll() is not None:  # ended; without EOF something it started still holds its stdout
                exited_at = exited_at or time.monotonic()
                if eof or time.monotonic() - exited_at > 1.0:
                    return

    def stop(self, grace_s: float) -> None:
        """Ask the child to stop (stdin closed, SIGTERM), kill it after ``grace_s``, reap it, close the pipes."""
        proc = self.proc
        if proc.poll() is None:
            _close(proc.stdin)  # the worker takes the end of its stdin as a cancel (on every platform)
            if os.name == "posix":  # SIGTERM: the worker turns it into a cancel; on Windows terminate() kills
                proc.terminate()
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _close(proc.stdin)
        self.reader.join(timeout=1.0)
        if not self.reader.is_alive():  # else a grandchild still holds the pipe; the daemon reader keeps it
            _close(proc.stdout)


def _close(stream) -> None:
    try:
        if stream is not None:
            stream.close()
    except OSError:
        pass


def _child_env() -> dict[str, str]:
    """This environment, with the folder holding the ``core`` package first on the child's import path."""
    root = str(Path(core.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=root + (os.pathsep + path if path else ""), PYTHONIOENCODING="utf-8")


def _result(folder: Path, returncode: int | None) -> SpineLabelling:
    """The labelling in outcome.json, or the child's AutoLabelError again, or WorkerCrashed."""
    outcome = read_outcome(folder) or {}
    if returncode == EXIT_OK and "labelling" in outcome:
        return SpineLabelling.from_dict(outcome["labelling"])
    if returncode == EXIT_LABEL_ERROR and outcome.get("kind") == "AutoLabelError" and outcome.get("error"):
        raise AutoLabelError(outcome["error"])
    tail = _tail(folder / STDERR)
    if returncode is not None and returncode < 0:
        how = f"killed by signal {-returncode}"
    elif returncode == EXIT_OK:
        how = "it ended without a result"
    else:
        how = f"exit code {returncode}"
    last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
    message = f"the labelling process failed ({how})" + (f": {last}" if last else "")
    if tail:
        message += f"\n--- last lines of its error output ---\n{tail}"
    raise WorkerCrashed(message, returncode, tail)


def _tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-_TAIL_LINES:])[-2000:]
