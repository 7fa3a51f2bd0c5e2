"""The TotalSegmentator abdomen CT (T11-S1, tests/data) exports to every format: its whole-trunk sagittal key image is
taller than an A4 page and once made reportlab raise LayoutError (issue 18); a failed export now loses nothing."""
import json
import subprocess
from pathlib import Path

import pytest

from core.inference.backend import backend_for_model
from core.report import ReportStore, draft_report, export_formats, export_report
from core.report.export.keyimage import render_key_image
from core.report.export.pdf import fit_image
from core.report.model import SpineReport
from core.report.study import ReportStudy
from core.spine.labelmap import labelling_from_labelmap

DATA = Path(__file__).parent / "data" / "totalseg_example_ct"


@pytest.fixture(scope="module")
def abdomen(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("SPINEMED_HOME", str(home))
    try:
        st = ReportStudy.open(DATA / "ct.nii.gz")
        st.labelling = labelling_from_labelmap(DATA / "seg_vertebrae_totalseg.nii.gz", "totalseg", st.series_uid)
        broken = home / "broken.gguf"  # a model file that cannot load: the template part of the draft is kept
        broken.write_bytes(b"not a gguf model")
        rep = draft_report(backend_for_model(broken), st.context, st.labelling, **st.draft_kwargs())
        yield st, rep
    finally:
        mp.undo()


def test_fit_image_keeps_the_aspect_and_the_frame():
    assert fit_image(900, 450, 500, 700) == (500, 250)  # wide: the frame's width
    w, h = fit_image(900, 2700, 500, 700)  # tall: scaled down to the frame's height
    assert h == 700 and w == pytest.approx(700 / 3)


def test_the_abdomen_ct_key_image_is_taller_than_a_page(abdomen):
    st, rep = abdomen
    assert [r.level for r in rep.levels][:3] == ["T11", "T11-T12", "T12"] and rep.level("L5-S1") is not None
    key = render_key_image(st.volume, rep)
    # at the A4 text width (178 mm) it would be more than 265 mm tall: more than the frame (A4 less margins)
    assert key.height / key.width * 178 > 265


def test_the_abdomen_ct_report_exports_to_every_format(abdomen, tmp_path):
    st, rep = abdomen
    assert rep.incomplete and "could not be loaded" in rep.incomplete
    for ext in export_formats():
        out = export_report(rep, tmp_path / f"report{ext}", volume=st.volume)
        assert out.is_file() and out.stat().st_size > 500, ext
    pages = subprocess.run(["pdfinfo", str(tmp_path / "report.pdf")], capture_output=True, text=True, check=True)
    assert int(next(line.split()[-1] for line in pages.stdout.splitlines() if line.startswith("Pages:"))) >= 2
    images = subprocess.run(["pdfimages", "-list", str(tmp_path / "report.pdf")], capture_output=True, text=True,
                            check=True).stdout.splitlines()[2:]
    assert len(images) == 1  # the key image is in the PDF, whole
    text = subprocess.run(["pdftotext", str(tmp_path / "report.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Mid-sagittal view" in text and "L5-S1" in text
    back = SpineReport.from_json((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert [r.level for r in back.levels] == [r.level for r in rep.levels]


def test_a_failed_export_names_the_file_and_loses_nothing(abdomen, tmp_path, monkeypatch, capsys):
    """Any writer failure (here reportlab's own, forced) is an ExportError naming the file; the CLI keeps the draft
    beside the output when it is not stored in the library."""
    from reportlab.platypus.doctemplate import LayoutError

    from app.report.cli import _keep_draft
    from core.report import ExportError

    st, rep = abdomen

    def fail(*_a, **_k):
        raise LayoutError("Flowable <Image> too large on page 1")

    monkeypatch.setattr("core.report.export.pdf.write_pdf", fail)
    with pytest.raises(ExportError, match=r"report\.pdf.*LayoutError"):
        export_report(rep, tmp_path / "report.pdf", volume=st.volume)
    assert not list(tmp_path.glob("*.pdf")) and not list(tmp_path.glob(".report-*"))
    kept = _keep_draft(rep, tmp_path / "report.pdf")
    assert kept == tmp_path / "report.draft.json"
    assert json.loads(kept.read_text(encoding="utf-8"))["report_id"] == rep.report_id


def test_the_editor_saves_unsaved_edits_before_exporting(abdomen, tmp_path, qtbot):
    from app.report.report_editor import ReportEditor

    st, rep = abdomen
    store = ReportStore(tmp_path / "library.db")
    editor = ReportEditor(store)
    qtbot.addWidget(editor)
    editor.set_study(st.series_uid, st.context, st.labelling, st.volume)
    editor.set_report(SpineReport.from_json(rep.to_json()), dirty=True)
    editor.edit_statement("technique.1", "Edited technique line.")
    worker = editor.export_to(tmp_path / "out.pdf")
    qtbot.waitUntil(lambda: not worker.is_running, timeout=60000)
    assert (tmp_path / "out.pdf").is_file()
    saved = store.load(rep.report_id)
    assert saved.statement("technique.1").text == "Edited technique line." and not editor.dirty
