"""Dependency rules: core/spinebench/curation/training never import Qt or VTK; core never imports app; each idea has
one home (docs/architecture.md)."""
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
    for pkg in ("core", "spinebench", "curation", "training"):
        for py in (REPO / pkg).rglob("*.py"):
            bad = _imports(py) & set(FORBIDDEN)
            if bad:
                offenders.append(f"{py.relative_to(REPO)}: {sorted(bad)}")
    assert not offenders, offenders


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe)], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 4 kept, 0 broken" in proc.stdout


def test_loading_core_does_not_pull_qt():
    code = "import sys, core.library, core.studies, core.inference; print(any(m.startswith(('PySide6','vtk')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# Each of these ideas had several disagreeing versions; each now has one home (docs/architecture.md).
ONE_HOME = {
    "labelling_from_labelmap": "core/spine/labelmap.py",
    "open_study": "core/library/opener.py",
    "load_volume": "core/library/opener.py",
    "find_levels": "core/spine/anatomy.py",
    "normalise_level": "core/spine/anatomy.py",
    "Measurement": "core/spine/measure/measurement.py",
    "ImportReport": "core/library/library.py",
    "radiograph_header": "core/xray/header.py",
}


def _definitions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for pkg in ("app", "core", "spinebench", "curation", "training"):
        for py in (REPO / pkg).rglob("*.py"):
            tree = ast.parse(py.read_text(), filename=str(py))
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in ONE_HOME:
                    found.setdefault(node.name, []).append(py.relative_to(REPO).as_posix())
    return found


def test_each_idea_is_defined_in_its_one_home():
    found = _definitions()
    assert {name: homes for name, homes in found.items() if homes != [ONE_HOME[name]]} == {}
    assert set(found) == set(ONE_HOME)  # every home still defines it


def test_no_level_regex_outside_anatomy():
    pattern = "([CTLS])(\\d{1,2})"  # the level-name regex, as written in source
    offenders = [py.relative_to(REPO).as_posix() for pkg in ("app", "core", "spinebench", "curation", "training")
                 for py in (REPO / pkg).rglob("*.py") if pattern in py.read_text()]
    assert offenders == ["core/spine/anatomy.py"]


def test_radiograph_tools_read_the_header_only_through_radiograph_header():
    offenders = [py.relative_to(REPO).as_posix() for py in (REPO / "core" / "xray").rglob("*.py")
                 if "dcmread(paths[0]" in py.read_text()]
    assert offenders == ["core/xray/header.py"]
