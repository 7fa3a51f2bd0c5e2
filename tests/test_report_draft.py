"""A real draft with the embedded model (SmolLM2-135M, llama.cpp, 1 thread) on the bundled CT (T11-T12) with the levels
of its TotalSegmentator label map, exported to every format and read back: PDF (pdftotext, and pdftoppm to a PNG saved
as docs/screenshots/report_pdf_page1.png), DOCX (python-docx), text, JSON (schema), DICOM SR (pydicom + highdicom,
including the referenced series). Bad input: no labels, a model failing mid-draft, cancel.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from core.consult.context import Measurement
from core.inference.backend import BackendError
from core.report import NeedsLabellingError, ReportStore, SpineReport, draft_report, export_report
from core.report.constrained import generate_json
from core.report.export.text import render_text
from core.report.model import DISCLAIMER
from core.report.study import ReportStudy
from core.tasks import Cancelled, CancelToken
from tests.conftest import BUNDLED_CT, loaded_backend
from tests.report_support import labelled_bundled_ct

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "_artifacts" / "report"
LEVELS = ["T11", "T11-T12", "T12"]
MEASUREMENTS = [Measurement("disc height", "T11-T12", 6.8, "mm"),
                Measurement("disc height", "L4-L5", 9.1, "mm"),  # not in view: must not be reported
                Measurement("kyphosis", "T10-L2", 12.0, "deg")]  # a range: general findings


@pytest.fixture(scope="module")
def backend(embedded_model):
    with loaded_backend(embedded_model, n_threads=1) as b:
        yield b


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    with labelled_bundled_ct(tmp_path_factory.mktemp("home"), MEASUREMENTS) as st:
        yield st


@pytest.fixture(scope="module")
def drafted(backend, study):
    steps = []
    rep = draft_report(backend, study.context, study.labelling, progress=lambda f, m: steps.append((f, m)),
                       **study.draft_kwargs())
    return rep, steps


def _model_texts(rep: SpineReport) -> list[str]:
    return [s.text for _, s in rep.statements() if s.source == "model"]


def test_real_draft_parses_and_covers_exactly_the_levels_in_view(drafted):
    rep, steps = drafted
    assert rep.incomplete is None, rep.incomplete
    assert [r.level for r in rep.levels] == LEVELS == rep.study.levels_in_view
    assert [r.kind for r in rep.levels] == ["vertebra", "disc", "vertebra"]
    back = SpineReport.from_json(rep.to_json())  # validated against the report schema
    assert back.to_dict() == rep.to_dict()
    for row in rep.levels:
        aspects = {s.aspect for s in row.statements if s.source == "model"}
        expected = {"body", "alignment", "canal", "cord"} if row.kind == "vertebra" else \
            {"disc", "canal", "foramina", "facets", "cord"}
        assert aspects == expected, row.level
    disc = rep.level("T11-T12")
    assert disc.get("pfirrmann").source == "template" and disc.get("pfirrmann").grade == "not assessable"
    assert disc.get("modic").source == "template"
    for scale in ("meyerding", "canal_stenosis"):  # no slip or canal diameter measured: no grade (issue 18)
        assert disc.get(scale).source == "template" and disc.get(scale).grade == "not assessable"
        assert "not assessed (needs the " in disc.get(scale).text
    assert rep.sections["impression"] and rep.sections["advice"] and rep.sections["treatment"]
    assert rep.sections["risk"] and not rep.sections["postop"]  # no surgery in this study
    ids = [s.id for _, s in rep.statements()]
    assert len(ids) == len(set(ids))
    assert rep.passages and all(rep.passage(p) for _, s in rep.statements() for p in s.basis.passages)
    assert any(n.startswith("The drafting model saw no images") for n in rep.notes)
    assert steps[-1] == (1.0, "Draft ready for review") and "Drafting T11-T12 (2/3)" in [m for _, m in steps]


def test_measured_values_only_come_from_measurements(drafted):
    rep, _ = drafted
    measured = [s for s in rep.level("T11-T12").statements if s.source == "measurement"]
    assert [s.text for s in measured] == ["Disc height: 6.8 mm (measured)."]
    assert measured[0].basis.measurements == ["m1"] and rep.measurement("m1").value == 6.8
    for text in _model_texts(rep):  # the grammar leaves the model no digits outside the levels in view
        assert not re.search(r"\d", re.sub(r"T11-T12|T11|T12", "", text)), text
    assert any("L4-L5 is not a level in view" in n for n in rep.notes)
    assert "L4-L5" not in json.dumps({k: v for k, v in rep.to_dict().items() if k != "notes"})
    assert rep.sections["general"][0].text == "Kyphosis (T10-L2): 12 deg (measured)."


def _pdf_text(path: Path) -> str:
    out = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(out.split())  # table cells wrap: compare with single spaces


def _docx_text(path: Path) -> tuple[str, int]:
    import docx

    doc = docx.Document(str(path))
    parts = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        parts += [cell.text for row in table.rows for cell in row.cells]
    parts += [p.text for p in doc.sections[0].footer.paragraphs]
    return "\n".join(parts), len(doc.inline_shapes)


def _sr_texts(ds) -> list[str]:
    out = []

    def walk(seq):
        for item in seq:
            if "TextValue" in item:
                out.append(item.TextValue)
            if "UID" in item:
                out.append(item.UID)
            if "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(ds.ContentSequence)
    return out


@pytest.mark.skipif(shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None, reason="poppler missing")
def test_draft_exports_to_every_format_and_reads_back(drafted, study, tmp_path, screenshot_path):
    import highdicom as hd

    rep, _ = drafted
    paths = {ext: export_report(rep, tmp_path / f"report{ext}", volume=study.volume)
             for ext in (".pdf", ".docx", ".txt", ".json", ".dcm")}
    must = ["Decision support only", "NOT SIGNED", "T11", "T11-T12", "T12", "6.8 mm",
            "Pfirrmann grade: not assessable on CT"]
    pdf = _pdf_text(paths[".pdf"])
    for text in must + ["Mid-sagittal view", "Diagnostic basis", "Meyerding HW"]:
        assert text in pdf, text
    assert pdf.count("Decision support only") >= 2  # at the top and in every page footer
    docx_text, images = _docx_text(paths[".docx"])
    for text in must:
        assert text in docx_text, text
    assert images == 1  # the key image
    txt = paths[".txt"].read_text(encoding="utf-8")
    assert txt == render_text(rep) and all(text in txt for text in must)
    back = SpineReport.from_json(paths[".json"].read_text(encoding="utf-8"))
    assert back.to_dict() == rep.to_dict() and DISCLAIMER in paths[".json"].read_text()

    ds = pydicom.dcmread(paths[".dcm"])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33" and ds.Modality == "SR"
    assert ds.CompletionFlag == "COMPLETE" and ds.VerificationFlag == "UNVERIFIED"
    sr = hd.sr.ComprehensiveSR.from_dataset(ds)
    evidence = sr.get_evidence()
    assert len(evidence) == 20 and len({e[1] for e in evidence}) == 1
    series_uid = evidence[0][1]
    texts = _sr_texts(ds)
    assert series_uid in texts  # the diagnostic basis names the referenced series
    assert any(t.startswith(DISCLAIMER[:40]) for t in texts) and "NOT SIGNED - draft for review" in texts
    assert any("no DICOM Series Instance UID" in t and series_uid in t for t in texts)  # generated, and said so
    assert _has_num(ds, 6.8)  # the measurement as a NUM content item

    # the PDF rendered for a person to look at (also kept as the README screenshot)
    subprocess.run(["pdftoppm", "-r", "80", "-png", "-f", "1", "-l", "2", str(paths[".pdf"]),
                    str(tmp_path / "page")], check=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 2
    for page in pages:
        shutil.copy(page, ARTIFACTS / page.name)
    shutil.copy(pages[0], screenshot_path("report_pdf_page1.png"))
    from PIL import Image

    pixels = np.asarray(Image.open(pages[0]).convert("L"))
    assert pixels.shape[0] > 900 and (pixels < 128).mean() > 0.02  # text and the key image, not a blank page


def _has_num(ds, value: float) -> bool:
    def walk(seq):
        for item in seq:
            if "MeasuredValueSequence" in item and abs(float(item.MeasuredValueSequence[0].NumericValue) - value) < 1e-6:
                return True
            if "ContentSequence" in item and walk(item.ContentSequence):
                return True
        return False

    return walk(ds.ContentSequence)


def test_sr_references_the_real_uids_of_a_dicom_series_and_signature(drafted, tmp_path):
    """The anonymised sample, given UIDs, as a PACS would send it: the SR must reference exactly those."""
    import highdicom as hd

    study_uid, series_uid = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    folder = tmp_path / "with_uids"
    folder.mkdir()
    instance_uids = set()
    for n, f in enumerate(sorted(BUNDLED_CT.iterdir())):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.PatientID, ds.PatientName = "TEST-1", "Test^Patient"
        instance_uids.add(ds.SOPInstanceUID)
        ds.save_as(folder / f"{n:03d}.dcm")
    st = ReportStudy.open(folder)
    assert st.series_uid == series_uid
    rep = SpineReport.from_json(drafted[0].to_json())
    rep.study.series_uid, rep.study.study_uid = series_uid, study_uid
    rep.sign("Dr Jane Test", accept_remaining=True)
    ds = pydicom.dcmread(export_report(rep, tmp_path / "signed.dcm", volume=st.volume))
    assert ds.StudyInstanceUID == study_uid and ds.PatientID == "TEST-1"
    assert ds.VerificationFlag == "VERIFIED" and ds.PreliminaryFlag == "FINAL"
    assert str(ds.VerifyingObserverSequence[0].VerifyingObserverName) == "Test^Jane^^Dr"
    evidence = hd.sr.ComprehensiveSR.from_dataset(ds).get_evidence()
    assert {e[1] for e in evidence} == {series_uid} and {e[2] for e in evidence} == instance_uids
    texts = _sr_texts(ds)
    assert series_uid in texts and not any("generated" in t for t in texts)
    assert any(t.startswith("Signed by Dr Jane Test") for t in texts)


def test_signed_report_exports_say_so_and_stay_locked(drafted, study, tmp_path):
    rep = SpineReport.from_json(drafted[0].to_json())
    store = ReportStore(tmp_path / "library.db")
    store.save(rep, "SpineMed draft")
    first = rep.levels[0].statements[0]
    rep.reject(first.id)
    store.sign(rep, "Dr Test", accept_remaining=True)
    txt = export_report(rep, tmp_path / "signed.txt").read_text()
    assert "Signed by Dr Test at" in txt and "NOT SIGNED" not in txt and "[draft - not reviewed]" not in txt
    assert re.search(rf"(?<![\w.-]){re.escape(first.id)}(?![\w-])", txt) is None  # rejected: left out
    pdf = _pdf_text(export_report(rep, tmp_path / "signed.pdf", volume=study.volume))
    assert "Signed by Dr Test" in pdf
    summaries = [v.summary for v in store.versions(rep.report_id)]
    assert summaries[0].startswith("first version") and "signed by Dr Test" in summaries[1]


def test_no_labels_drafts_without_level_rows_clearly_marked(backend, study):
    with pytest.raises(NeedsLabellingError, match="label the levels first"):
        draft_report(backend, study.context, None, require_levels=True, **study.draft_kwargs())
    rep = draft_report(backend, study.context, None, **study.draft_kwargs())
    assert rep.levels == [] and rep.study.levels_in_view == []
    assert rep.notes[0].startswith("NO LEVEL ROWS") and rep.sections["general"][0].id == "general.no_levels"
    assert rep.sections["impression"]  # the summary is still drafted
    text = render_text(rep)
    assert "NO LEVEL ROWS" in text and "(no level rows: see the note above)" in text
    assert not any(re.search(r"\b[CTLS]\d", t) for t in _model_texts(rep))  # no level names without labels


class FailingAfter:
    """The real backend, failing (as a crashed runtime would) after ``n`` successful calls."""

    def __init__(self, inner, n: int) -> None:
        self.inner, self.n, self.calls = inner, n, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def chat_json(self, messages, schema, params, cancel):
        self.calls += 1
        if self.calls > self.n:
            raise BackendError("llama.cpp stopped responding (simulated)")
        return generate_json(self.inner, messages, schema, params, cancel)


def test_model_failing_mid_draft_keeps_the_partial_draft_marked(backend, study, tmp_path):
    failing = FailingAfter(backend, 1)
    rep = draft_report(failing, study.context, study.labelling, **study.draft_kwargs())
    assert rep.incomplete == "incomplete: the model failed at T11-T12: llama.cpp stopped responding (simulated)"
    assert rep.notes[0].startswith("INCOMPLETE DRAFT")
    assert {s.aspect for s in rep.level("T11").statements if s.source == "model"} == {"body", "alignment", "canal",
                                                                                       "cord"}
    for level in ("T11-T12", "T12"):
        assert "not drafted (draft incomplete)" in rep.level(level).note
        assert not [s for s in rep.level(level).statements if s.source == "model"]
    assert rep.level("T11-T12").get("pfirrmann").source == "template"  # template and measured parts are kept
    assert not rep.sections["impression"]
    back = SpineReport.from_json(rep.to_json())
    assert back.incomplete == rep.incomplete
    ReportStore(tmp_path / "library.db").save(rep, "SpineMed draft")
    assert "incomplete: the model failed at T11-T12" in _pdf_text(export_report(rep, tmp_path / "partial.pdf"))
    assert pydicom.dcmread(export_report(rep, tmp_path / "partial.dcm")).CompletionFlag == "PARTIAL"


def test_cancel_stops_the_draft(backend, study):
    token = CancelToken()

    def progress(fraction, message):
        if message.startswith("Drafting T11-T12"):
            token.cancel()

    with pytest.raises(Cancelled):
        draft_report(backend, study.context, study.labelling, progress=progress, cancel=token,
                     **study.draft_kwargs())


def test_draft_kwargs_describe_the_series(study):
    kwargs = study.draft_kwargs()
    assert kwargs["n_images"] == 20 and not kwargs["is_2d"] and kwargs["series_uid"].startswith("dicom-derived:")
    assert dataclasses.is_dataclass(study.context)


def test_a_model_that_sees_images_gets_each_rows_key_images(study, tmp_path, monkeypatch):
    """A vision-capable server gets the level's sagittal and axial key images with the row's call, and the report
    records them in the row's basis; a text-only server gets none and the report says it saw no images. (The stand-in
    answers plain text, so the draft stops at the first row, marked incomplete: what was sent is what is checked.)"""
    from core.inference.server_backend import ServerBackend, ServerSettings
    from tests.test_deidentify import RecordingServer

    monkeypatch.setenv("SPINEMED_HOME", str(tmp_path / "home"))
    server = RecordingServer()
    try:
        for vision in (True, False):
            server.bodies.clear()
            backend = ServerBackend(ServerSettings(enabled=True, url=server.url, timeout_s=30, vision=vision))
            rep = draft_report(backend, study.context, study.labelling, retriever=None, **study.draft_kwargs())
            sent = json.loads(server.bodies[0])
            parts = [p for m in sent["messages"] if isinstance(m["content"], list) for p in m["content"]]
            urls = [p["image_url"]["url"] for p in parts if p.get("type") == "image_url"]
            first = rep.levels[0]
            if vision:
                assert len(urls) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)
                assert rep.image(f"img.level.{first.level}").kind == "key image"
                assert not any("saw no images" in n for n in rep.notes)
            else:
                assert urls == []
                assert not [i for i in rep.images if i.id.startswith("img.level.")]
                assert any("saw no images" in n for n in rep.notes)
    finally:
        server.close()
