"""Size limits checked before a loader allocates: what a file really holds, and what this computer can hold.

A damaged header can declare billions of voxels in a file of a few kilobytes. Loaders call these checks with the
sizes the header declares before any array is made, so such a file is refused with a reason instead of exhausting
memory. Memory is judged from the memory available now and, when the process runs under an address-space cap
(``RLIMIT_AS``), from the room left under it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from core.studies.errors import StudyLoadError

# Deflate (zlib, gzip, PNG) cannot expand data by more than about 1032:1; a little margin for headers.
MAX_DEFLATE_RATIO = 1100
# Share of the memory available that one image may take (the viewer and the 3D view need copies of it too).
_MEMORY_SHARE = 0.6


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover - the loop always returns


def bytes_pair(a: int, b: int) -> tuple[str, str]:
    """Two sizes for one message, exact when rounding would show them equal ("196.6 KB of 196.6 KB")."""
    ha, hb = human_bytes(a), human_bytes(b)
    return (f"{a:,} bytes", f"{b:,} bytes") if ha == hb and a != b else (ha, hb)


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as fp:
            for line in fp:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _address_space_room() -> int | None:
    """Bytes left under RLIMIT_AS (None when there is no cap or it cannot be read)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm") as fp:
            used = int(fp.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        used = 0
    return max(0, soft - used)


_recent: tuple[float, int] = (-1.0, 0)


def memory_budget() -> int:
    """Bytes one image may take now: a share of the available memory, capped by an address-space limit.

    Remembered for half a second: a scan asks once per file, and memory does not change that fast.
    """
    global _recent
    now = time.monotonic()
    if now - _recent[0] > 0.5:
        limits = [v for v in (_mem_available(), _address_space_room()) if v is not None]
        available = min(limits) if limits else 4 << 30
        _recent = (now, int(available * _MEMORY_SHARE))
    return _recent[1]


def check_memory(path: str | Path, nbytes: int, what: str) -> None:
    """Refuse before allocating ``nbytes`` for ``what`` (e.g. "a 512 x 512 x 40000 image") when it cannot fit."""
    budget = memory_budget()
    if nbytes > budget:
        raise StudyLoadError(path, f"{what} needs {human_bytes(nbytes)} of memory, more than this computer has "
                                   f"free ({human_bytes(budget / _MEMORY_SHARE)}): the header is probably damaged")


def check_deflate_ratio(path: str | Path, declared: int, compressed: int, what: str) -> None:
    """A compressed stream of ``compressed`` bytes cannot hold ``declared`` bytes beyond deflate's maximum ratio."""
    if declared > max(compressed, 1) * MAX_DEFLATE_RATIO:
        raise StudyLoadError(path, f"{what} declares {human_bytes(declared)} of pixel data, which a compressed file "
                                   f"of {human_bytes(compressed)} cannot hold: the header is damaged")
