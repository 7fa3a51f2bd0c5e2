"""``spinemed report STUDY -o ...``: a headless draft with the embedded model on the bundled CT, saved in the library,
exported by extension; exporting a stored report by id; exit codes for missing levels and a read-only folder."""
from __future__ import annotations

import json

import pytest

from app.cli import main as cli_main
from core.report import ReportStore, SpineReport
from tests.conftest import BUNDLED_CT, SAMPLES

pytest_plugins = ["tests.report_support"]  # the read_only_folder fixture
LABELMAP = SAMPLES / "ts_ct_dicom_T11-T12" / "seg_total_v2.nii.gz"


@pytest.fixture
def ready(embedded_model):
    if not LABELMAP.is_file():
        pytest.skip(f"label map of the sample not found at {LABELMAP}")


def test_cli_drafts_saves_and_exports_by_extension(ready, tmp_path, spinemed_home, capsys, read_only_folder):
    out_txt, out_json = tmp_path / "out" / "report.txt", tmp_path / "out" / "report.json"
    code = cli_main(["report", str(BUNDLED_CT), "--labelmap", str(LABELMAP), "--numbering", "totalseg",
                     "-o", str(out_txt), "-o", str(out_json), "--threads", "1", "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"written {out_txt}" in captured.out and f"written {out_json}" in captured.out
    report = SpineReport.from_json(out_json.read_text())
    assert [r.level for r in report.levels] == ["T11", "T11-T12", "T12"]
    assert "Decision support only" in out_txt.read_text() and "NOT SIGNED" in out_txt.read_text()
    store = ReportStore(spinemed_home / "library.db")
    versions = store.versions(report.report_id)
    assert [(v.version, v.author) for v in versions] == [(1, "spinemed report (command line)")]

    # a stored report exported again by id, without drafting
    again = tmp_path / "again.json"
    assert cli_main(["report", str(BUNDLED_CT), "--report-id", report.report_id, "-o", str(again), "-q"]) == 0
    assert json.loads(again.read_text())["report_id"] == report.report_id

    # a read-only output folder: exit 4 and the path in the message
    target = read_only_folder / "report.pdf"
    assert cli_main(["report", str(BUNDLED_CT), "--report-id", report.report_id, "-o", str(target), "-q"]) == 4
    assert str(target) in capsys.readouterr().err


def test_cli_refuses_without_levels_when_asked(tmp_path, capsys):
    code = cli_main(["report", str(BUNDLED_CT), "--require-levels", "-o", str(tmp_path / "r.txt"), "-q"])
    assert code == 3 and "label the levels first" in capsys.readouterr().err
    assert not (tmp_path / "r.txt").exists()


def test_cli_bad_study_and_unknown_report(tmp_path, capsys):
    assert cli_main(["report", str(tmp_path / "missing"), "-o", str(tmp_path / "r.txt"), "-q"]) == 2
    assert "missing: neither an existing path" in capsys.readouterr().err
    assert cli_main(["report", str(BUNDLED_CT), "--report-id", "nope", "-o", str(tmp_path / "r.txt"), "-q"]) == 2
