"""Shared fixtures: an isolated SpineMed home per test, and the real samples in ../shared when present."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "spine-samples"
BUNDLED_CT = REPO / "resources" / "samples" / "ct_dicom_T11-T12"


@pytest.fixture(autouse=True)
def spinemed_home(tmp_path, monkeypatch):
    home = tmp_path / "spinemed-home"
    monkeypatch.setenv("SPINEMED_HOME", str(home))
    return home


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"shared spine samples not found at {SAMPLES} (only present beside the project checkout)")
    return SAMPLES


@pytest.fixture
def bundled_ct() -> Path:
    return BUNDLED_CT


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The embedded GGUF that set-up installs; its absence is a broken install, so it fails rather than skips."""
    from core.inference.default_model import find_default_model

    path = find_default_model()
    assert path is not None, "embedded model missing from the model folders: run scripts/setup.sh"
    return path
