"""Where SpineMed keeps its files: the study library, models, imported archives.

The data folder follows the OS convention (platformdirs: ~/.local/share/SpineMed on Linux,
%LOCALAPPDATA%\\SpineMed on Windows); ``SPINEMED_HOME`` overrides it (tests point it at a temporary folder).
Model search folders: ``SPINEMED_MODELS_DIR`` (colon-separated), ``<data>/models``, the checkout's ``models/``
(filled by scripts/setup.sh) and ``resources/models/`` (adapters shipped with the code).
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

REPO_ROOT = Path(__file__).resolve().parents[1]
RESOURCES = REPO_ROOT / "resources"


def data_dir() -> Path:
    env = os.environ.get("SPINEMED_HOME")
    path = Path(env) if env else Path(platformdirs.user_data_dir("SpineMed", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def library_db_path() -> Path:
    return data_dir() / "library.db"


def imports_dir() -> Path:
    """Where archives (zip) are extracted on import, so the library's file paths stay valid."""
    path = data_dir() / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_dirs() -> list[Path]:
    dirs: list[Path] = []
    env = os.environ.get("SPINEMED_MODELS_DIR")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [data_dir() / "models", REPO_ROOT / "models", RESOURCES / "models"]
    seen, unique = set(), []
    for d in dirs:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(d)
    return unique
