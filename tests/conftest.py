"""Shared fixtures: an isolated SpineMed home per test, and the real samples in ../shared when present."""
from __future__ import annotations

import contextlib
import os
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
def screenshot_path(tmp_path):
    """Where a test saves its picture: its temporary folder, or SPINEMED_SCREENSHOTS_DIR when `make screenshots`
    refreshes README's pictures (tests never write to tracked files)."""
    def path(name: str) -> Path:
        folder = Path(os.environ.get("SPINEMED_SCREENSHOTS_DIR") or tmp_path / "screenshots")
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    return path


@pytest.fixture
def bundled_ct() -> Path:
    return BUNDLED_CT


@contextlib.contextmanager
def loaded_backend(path: Path, **options):
    """A backend for ``path`` (backend_for_model options), loaded, and unloaded afterwards."""
    from core.inference.backend import backend_for_model

    backend = backend_for_model(path, **options)
    backend.load()
    try:
        yield backend
    finally:
        backend.unload()


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The embedded GGUF that set-up installs; its absence is a broken install, so it fails rather than skips."""
    from core.inference.default_model import find_default_model

    path = find_default_model()
    assert path is not None, "embedded model missing from the model folders: run scripts/setup.sh"
    return path


# --- process exit -----------------------------------------------------------------------------------------------
# A session that used Qt closes and deletes its windows and joins its worker threads before Python's teardown, the
# same way the workstation leaves (app/shutdown.py): objects left to interpreter exit are deleted in no defined order.
def pytest_sessionfinish(session, exitstatus):
    import sys

    if "PySide6.QtWidgets" in sys.modules:
        from app.shutdown import release_qt

        for problem in release_qt():
            print(f"\nQt teardown: {problem}", file=sys.stderr)
