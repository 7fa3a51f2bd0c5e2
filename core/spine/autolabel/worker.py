"""The child side of out-of-process labelling: ``python -m core.spine.autolabel.worker FOLDER [--backend NAME]``.

Reads the volume from FOLDER (:mod:`core.spine.autolabel.exchange`), runs :func:`core.spine.autolabel.auto_label`
and writes outcome.json. Progress goes to stdout as JSON lines; anything else the backend prints goes to stderr so
it cannot garble them. Cancel arrives as SIGTERM or as the end of stdin (the parent closed it, or died): both set
the backend's CancelToken (so TotalSegmentator's own subprocess is stopped too); an orphaned worker also removes
FOLDER. Exit codes: 0 labelled, 3 AutoLabelError (the message is in outcome.json), 4 cancelled, anything else a
crash (traceback on stderr). Run it with stdin a pipe that stays open: its end means "cancel".
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from core.spine.autolabel import AutoLabelError, auto_label
from core.spine.autolabel.exchange import (
    EXIT_CANCELLED,
    EXIT_LABEL_ERROR,
    EXIT_OK,
    progress_line,
    read_volume,
    write_outcome,
)
from core.tasks import Cancelled, CancelToken


def _protocol_stream():
    """A private handle on stdout for progress lines; fd 1 itself then points at stderr."""
    sys.stdout.flush()
    stream = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return stream


def _watch_for_cancel(token: CancelToken) -> None:
    def on_eof() -> None:  # the raw fd, not sys.stdin: a daemon thread must hold no lock at interpreter exit
        try:
            while os.read(fd, 1024):
                pass
        except OSError:
            pass
        token.cancel()

    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # no stdin at all: only SIGTERM cancels
        fd = -1
    if fd >= 0:
        threading.Thread(target=on_eof, daemon=True, name="cancel-on-stdin-eof").start()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: token.cancel())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.spine.autolabel.worker")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--backend", default=None)
    args = parser.parse_args(argv)
    parent = os.getppid()
    protocol = _protocol_stream()
    token = CancelToken()
    _watch_for_cancel(token)

    def progress(fraction: float, message: str = "") -> None:
        try:
            protocol.write(progress_line(fraction, message) + "\n")
        except (OSError, ValueError):  # the parent stopped reading: it is going away
            token.cancel()

    volume = read_volume(args.folder)
    try:
        labelling = auto_label(volume, args.backend, progress=progress, cancel=token)
    except AutoLabelError as exc:
        write_outcome(args.folder, {"error": str(exc), "kind": "AutoLabelError"})
        return EXIT_LABEL_ERROR
    except Cancelled:
        if os.getppid() != parent:  # the GUI died without cleaning up: nobody else will remove the folder
            shutil.rmtree(args.folder, ignore_errors=True)
        return EXIT_CANCELLED
    write_outcome(args.folder, {"labelling": labelling.to_dict()})
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
