"""SHA-256 of files, read in 1 MiB blocks (model files are hundreds of MB): one helper for set-up checks, adapter
sidecars, dataset and benchmark fingerprints."""
from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
