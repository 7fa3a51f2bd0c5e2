"""`spinemed ask` and `spinemed chat` as a user runs them: a real process, the bundled sample, the embedded model."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def run(spinemed_home, embedded_model):
    env = {**os.environ, "SPINEMED_HOME": str(spinemed_home), "QT_QPA_PLATFORM": "", "DISPLAY": ""}

    def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "app.cli", *args], check=False, cwd=REPO, env=env, input=stdin,
                              capture_output=True, text=True, timeout=300)
    return _run


def test_ask_streams_an_answer_to_stdout_without_qt(run, bundled_ct):
    proc = run("ask", str(bundled_ct), "--level", "T11-T12", "--levels", "T11,T11-T12,T12", "--max-tokens", "24",
               "--temperature", "0", "Is the disc space at this level preserved?")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()  # the answer, and only the answer, on stdout
    assert "on CPU" in proc.stderr and "conversation 1" in proc.stderr
    code = ("import sys, app.cli; app.cli.build_parser(); "
            "print(any(m.startswith(('PySide6', 'vtk')) for m in sys.modules))")
    probe = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True, text=True)
    assert probe.stdout.strip() == "False"

    # Continue the same conversation by series uid from the library.
    listing = run("library").stdout
    uid = next(line.split()[0] for line in listing.splitlines() if line.startswith("    "))
    proc = run("ask", uid, "--conversation", "1", "--level", "T12", "--max-tokens", "16", "And T12?")
    assert proc.returncode == 0, proc.stderr
    assert "conversation 1" in proc.stderr


def test_chat_loop_with_commands(run, bundled_ct, tmp_path):
    out = tmp_path / "consultation.md"
    script = f"What is at this level?\n/level T12\nAnd here?\n/regen\n/export {out}\n/nonsense\n/quit\n"
    proc = run("chat", str(bundled_ct), "--level", "T11-T12", "--max-tokens", "16", stdin=script)
    assert proc.returncode == 0, proc.stderr
    assert "decision support, not a diagnosis" in proc.stderr and "unknown command /nonsense" in proc.stderr
    md = out.read_text()
    assert md.count("### Question") == 2 and "level T12" in md and "level T11-T12" in md
