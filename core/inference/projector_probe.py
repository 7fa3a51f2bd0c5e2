"""Test-loading a vision projector (mmproj GGUF) in a child process before the workstation's own process loads it.

libmtmd, llama.cpp's multimodal library, uses the tensors a projector names without checking that they are there: a
projector missing, say, its patch embedding kills the process with a segmentation fault, which Python cannot catch.
The workstation must not die, with the user's unsaved work, because of one bad file. So a projector is first loaded
with its model in a child Python process (``python -m core.inference.projector_probe MODEL MMPROJ [HANDLER]``,
CPU only); a child that crashes or refuses gives a message naming the file and the problem. A pair that loaded once
(same paths, sizes and modification times) is not probed again in this process.

    problem = probe_projector(model_path, mmproj_path)   # None when it loads, else the message
"""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

PROBE_MODULE = "core.inference.projector_probe"
_loaded_once: set[tuple] = set()


def _key(*paths: Path) -> tuple:
    return tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)


def probe_projector(model: Path | str, mmproj: Path | str, *, chat_handler: str | None = None,
                    timeout_s: float = 600.0) -> str | None:
    """Load ``mmproj`` with ``model`` in a child process: None when it loads, else what went wrong, naming the
    projector. The child runs on the CPU with a small context, so it needs the model's memory once more, briefly."""
    model, mmproj = Path(model), Path(mmproj)
    try:
        key = (*_key(model, mmproj), chat_handler)
    except OSError as exc:
        return f"{mmproj}: cannot be read ({exc.strerror or exc})"
    if key in _loaded_once:
        return None
    try:
        done = subprocess.run([sys.executable, "-m", PROBE_MODULE, str(model), str(mmproj)]
                              + ([chat_handler] if chat_handler else []),
                              check=False, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"{mmproj}: loading this projector did not finish within {timeout_s:.0f} s"
    if done.returncode == 0:
        _loaded_once.add(key)
        return None
    said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        return (f"{mmproj}: llama.cpp's multimodal library crashed ({name}) loading this projector with "
                f"{model.name}: the file is damaged, incomplete, or of a kind this llama.cpp build does not support")
    return said[-1] if said else f"{mmproj}: this projector could not be loaded (exit status {done.returncode})"


def _main(argv: list[str]) -> int:
    from core.inference.backend import ModelLoadError
    from core.inference.llama_backend import LlamaCppBackend

    model, mmproj, *handler = argv
    backend = LlamaCppBackend(model, mmproj_path=mmproj, chat_handler=handler[0] if handler else None, n_ctx=256,
                              n_gpu_layers=0, n_threads=1, probe_projector=False)
    try:
        backend.load()
    except ModelLoadError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    backend.unload()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
