"""Import check of compressed DICOM files: the first frame of each is decoded once, so an image that cannot be shown
is reported at import (and its slice becomes a gap in its series) instead of failing when the series is opened.

Decoding costs about 30-100 ms per 512 x 512 JPEG 2000 slice on one core, and pylibjpeg holds the GIL. Measured on
2 busy cores (load average 8, 2026-12-07), 100 JPEG 2000 slices: 9.9 s in this process, 15.7-17.5 s in two spawned
processes (their start-up, importing pydicom and numpy, costs more than they gain). So worker processes are used only
with at least 4 cores and 48 compressed files; the gain there is expected, not measured on this machine.
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from core.studies.dicom_header import DicomHeader
from core.studies.dicom_pixels import decode_first_frame
from core.studies.errors import StudyLoadError, unexpected_reason
from core.tasks import Cancelled, CancelToken, ProgressFn, check, report

_PROCESS_MIN_FILES = 48
_PROCESS_MIN_CORES = 4


def check_first_frame(h: DicomHeader) -> tuple[str, str] | None:
    """``(reason, internal)`` when the first frame cannot be decoded, else None; runs in worker processes too."""
    try:
        decode_first_frame(h)
    except StudyLoadError as exc:
        return exc.reason, exc.internal
    except Exception as exc:  # noqa: BLE001 - any failure of a third-party decoder means this file cannot be shown
        return unexpected_reason(exc), type(exc).__name__
    return None


def verify_first_frames(headers: Sequence[DicomHeader], progress: ProgressFn | None = None,
                        cancel: CancelToken | None = None) -> dict[int, tuple[str, str]]:
    """Decode the first frame of each compressed file not yet checked; failures by index into ``headers``.

    Files that pass are marked ``verified`` (the header cache keeps that while the file is unchanged).
    """
    todo = [n for n, h in enumerate(headers) if h.pixel_offset is None and not h.verified]
    failures: dict[int, tuple[str, str]] = {}
    done = False
    if len(todo) >= _PROCESS_MIN_FILES and (os.cpu_count() or 1) >= _PROCESS_MIN_CORES:
        try:
            failures = _in_processes(headers, todo, progress, cancel)
            done = True
        except (BrokenProcessPool, OSError):
            failures = {}  # no child processes on this system: check in this process instead
    if not done:
        for k, n in enumerate(todo):
            check(cancel)
            report(progress, k / max(1, len(todo)), f"Checking compressed images {k}/{len(todo)}")
            failure = check_first_frame(headers[n])
            if failure:
                failures[n] = failure
    for n in todo:
        if n not in failures:
            headers[n].verified = True
    report(progress, 1.0, f"Checked {len(todo)} compressed images")
    return failures


def _in_processes(headers, todo, progress, cancel) -> dict[int, tuple[str, str]]:
    failures: dict[int, tuple[str, str]] = {}
    ctx = multiprocessing.get_context("spawn")  # forking a process that runs Qt and threads can deadlock the child
    with ProcessPoolExecutor(max_workers=min(8, os.cpu_count() or 2), mp_context=ctx) as pool:
        futures = {pool.submit(check_first_frame, headers[n]): n for n in todo}
        pending, finished = set(futures), 0
        try:
            while pending:
                ready, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                for fut in ready:
                    failure = fut.result()
                    if failure:
                        failures[futures[fut]] = failure
                finished += len(ready)
                report(progress, finished / len(todo), f"Checking compressed images {finished}/{len(todo)}")
                if cancel is not None and cancel.cancelled:
                    raise Cancelled()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return failures
