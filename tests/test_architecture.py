"""Dependency rules: core/curation/training never import Qt or VTK; core never imports app."""
import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "vtk", "vtkmodules", "shiboken6")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_headless_packages_never_import_qt_or_vtk():
    offenders = []
    for pkg in ("core", "curation", "training"):
        for py in (REPO / pkg).rglob("*.py"):
            bad = _imports(py) & set(FORBIDDEN)
            if bad:
                offenders.append(f"{py.relative_to(REPO)}: {sorted(bad)}")
    assert not offenders, offenders


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe)], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 3 kept, 0 broken" in proc.stdout


def test_loading_core_does_not_pull_qt():
    code = "import sys, core.library, core.studies, core.inference; print(any(m.startswith(('PySide6','vtk')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
