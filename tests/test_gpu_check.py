"""scripts/gpu_check.sh on a machine without an NVIDIA GPU: it says "no GPU", exits 0 and builds nothing."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def _run(tmp_path: Path, path_dirs: list[Path]) -> subprocess.CompletedProcess:
    # PATH holds only what the no-GPU branch needs, so no real nvidia-smi of the test machine can be found
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("bash", "dirname", "cat", "head", "sed", "mktemp", "rm"):
        found = shutil.which(tool)
        if found and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    env = {"PATH": os.pathsep.join(str(p) for p in [*path_dirs, bin_dir]), "HOME": str(tmp_path),
           "GPU_VENV": str(tmp_path / "gpu-venv")}
    return subprocess.run(["bash", str(SCRIPT)], check=False, env=env, capture_output=True, text=True, timeout=60)


def test_no_nvidia_smi_means_no_gpu(tmp_path):
    proc = _run(tmp_path, [])
    assert proc.returncode == 0, proc.stderr
    assert "no GPU" in proc.stdout
    assert not (tmp_path / "gpu-venv").exists()


def test_nvidia_smi_without_a_gpu_means_no_gpu(tmp_path):
    """A driver tool that fails (no device, driver not loaded) is the no-GPU path too, not an error."""
    fake = tmp_path / "fake"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver'"
                   " >&2\nexit 9\n")
    smi.chmod(0o755)
    proc = _run(tmp_path, [fake])
    assert proc.returncode == 0, proc.stderr
    assert "no GPU" in proc.stdout
    assert not (tmp_path / "gpu-venv").exists()


def test_a_listed_gpu_takes_the_gpu_path(tmp_path):
    """With a GPU listed the script goes on to build (here it stops at once: no python3 on PATH), so the no-GPU
    answer really depends on what nvidia-smi reports."""
    fake = tmp_path / "fake"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA RTX A6000, 49140 MiB, 550.54'\n")
    smi.chmod(0o755)
    proc = _run(tmp_path, [fake])
    assert "no GPU" not in proc.stdout
    assert "GPU: NVIDIA RTX A6000" in proc.stdout
    assert proc.returncode != 0
