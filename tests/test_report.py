"""core.report without the model: the report model and its schema, templates, levels in view, measurements,
constrained-output validation, versions and sign-off in the store, the key image, read-only export folders."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.consult.context import Measurement, StudyContext
from core.inference.backend import BackendInfo
from core.report import ExportError, NeedsLabellingError, ReportLockedError, ReportStore, SpineReport, export_report
from core.report.constrained import ConstrainedOutputError, generate_json, max_answer_chars
from core.report.draft import _add_measurements, _scrub, draft_report, meyerding_grade
from core.report.export.keyimage import render_key_image
from core.report.levels import levels_in_view
from core.report.model import Basis, LevelFindings, ReportFormatError, Statement
from core.report.prompts import row_schema, summary_schema, text_schema
from core.report.schema import errors, validate_report
from core.report.store import diff_summary
from core.report.templates import NOT_ASSESSABLE, TEMPLATE_DIR, load_template, template_for
from core.spine.anatomy import SpineConfiguration
from core.spine.labelling import DiscLabel, Provenance, SpineLabelling, VertebraLabel
from core.studies.volume import Volume

pytest_plugins = ["tests.report_support"]  # the read_only_folder fixture


def _labelling(names, discs=(), config=None, unnamed=0) -> SpineLabelling:
    vertebrae = [VertebraLabel(n, (0.0, 0.0, -30.0 * i)) for i, n in enumerate(names)]
    vertebrae += [VertebraLabel(None, (0.0, 0.0, 100.0 + i)) for i in range(unnamed)]
    return SpineLabelling(vertebrae, [DiscLabel(d, (0, 0, 0), (0, 0, 1)) for d in discs],
                          Provenance("user", user="tester"), configuration=config or SpineConfiguration(), series_uid="s1", confidence=1.0)


def _report() -> SpineReport:
    rep = SpineReport(model="fake", template="ct-spine-v1")
    rep.study.series_uid, rep.study.modality, rep.study.levels_in_view = "s1", "CT", ["L4", "L4-L5"]
    rep.levels = [LevelFindings("L4", "vertebra", [Statement("L4.body", "No fracture.", aspect="body")],
                                position=(0.0, 0.0, 0.0)),
                  LevelFindings("L4-L5", "disc", [Statement("L4-L5.disc", "Mild bulge.", aspect="disc",
                                                            basis=Basis(passages=["p1"]))])]
    rep.sections["impression"].append(Statement("impression.1", "Mild degeneration at L4-L5."))
    return rep


# --- model, schema ----------------------------------------------------------------------------------------------
def test_report_round_trips_through_json_and_the_schema():
    rep = _report()
    doc = json.loads(rep.to_json())
    assert errors(doc, __import__("core.report.schema", fromlist=["REPORT_SCHEMA"]).REPORT_SCHEMA) == []
    back = SpineReport.from_json(rep.to_json())
    assert back.to_dict() == rep.to_dict()
    assert doc["disclaimer"].startswith("Decision support only")
    assert doc["signature_state"] == "NOT SIGNED - draft for review"


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d["levels"][0]["statements"][0].update(source="robot"), "source"),
    (lambda d: d["levels"][0].update(level="L4-L5-S1"), "level"),
    (lambda d: d["sections"].pop("impression"), "impression"),
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d["levels"][1]["statements"][0].update(status="maybe"), "status"),
])
def test_schema_rejects_malformed_documents(mutate, where):
    doc = _report().to_dict()
    mutate(doc)
    with pytest.raises(ReportFormatError, match=where):
        validate_report(doc)


def test_review_edit_add_and_sign_lock():
    rep = _report()
    rep.accept("L4.body")
    rep.edit("L4-L5.disc", "Moderate bulge.")
    assert rep.statement("L4-L5.disc").status == "edited" and rep.statement("L4-L5.disc").original == "Mild bulge."
    added = rep.add_statement("L4-L5", "Left foraminal narrowing.")
    assert added.source == "user" and added.id == "L4-L5.u1"
    with pytest.raises(KeyError):
        rep.add_statement("L5-S1", "not in view")
    with pytest.raises(ValueError, match="not reviewed"):
        rep.sign("Dr Test")
    rep.reject("impression.1")
    rep.sign("Dr Test")
    assert rep.locked and rep.state == "signed" and "Signed by Dr Test" in rep.signature_text()
    for action in (lambda: rep.accept("L4.body"), lambda: rep.edit("L4.body", "x"), lambda: rep.reject("L4.body"),
                   lambda: rep.add_statement("impression", "x"), lambda: rep.sign("Dr Other")):
        with pytest.raises(ReportLockedError):
            action()


# --- templates ---------------------------------------------------------------------------------------------------
def test_templates_per_modality_name_the_grading_systems():
    assert {template_for("CT").key, template_for("MR").key, template_for("DX").key} == {"ct", "mri", "xray"}
    assert template_for("OT", is_2d=True).key == "xray"
    ct, mri, xray = load_template("ct"), load_template("mri"), load_template("xray")
    assert not ct.scales["pfirrmann"].assessable and not ct.scales["modic"].assessable
    assert all(s.assessable for s in mri.scales.values())
    assert not xray.scales["canal_stenosis"].assessable and xray.scales["meyerding"].assessable
    assert mri.scales["pfirrmann"].choices == ["I", "II", "III", "IV", "V", NOT_ASSESSABLE]
    text = " ".join(p.read_text() for p in TEMPLATE_DIR.glob("*.json"))
    for name in ("Pfirrmann", "Modic", "Meyerding", "Fardon", "Lee GY", "Schizas"):
        assert name in text
    assert "Lee grade 2" in mri.grade_text("canal_stenosis", "moderate")


# --- levels in view ----------------------------------------------------------------------------------------------
def test_levels_are_exactly_the_labelled_ones_with_inferred_discs():
    levels, notes = levels_in_view(_labelling(["L3", "L4", "L5", "S1"], discs=["L4-L5"], unnamed=2))
    assert [lv.name for lv in levels] == ["L3", "L3-L4", "L4", "L4-L5", "L5", "L5-S1", "S1"]
    assert levels[1].note == "disc between labelled L3 and L4" and levels[1].position == (0.0, 0.0, -15.0)
    assert "2 detected structure(s) without a level name" in notes[0]
    six = SpineConfiguration(lumbar=6)
    assert [lv.name for lv in levels_in_view(_labelling(["L5", "L6", "S1"], config=six))[0]] == \
        ["L5", "L5-L6", "L6", "L6-S1", "S1"]
    assert levels_in_view(None) == ([], [])
    assert levels_in_view(_labelling([], unnamed=3)) == ([], [])


# --- measurements ------------------------------------------------------------------------------------------------
def test_measurements_go_to_their_level_out_of_view_ones_are_left_out():
    rep = _report()
    _add_measurements(rep, [Measurement("disc height", "L4-L5", 8.25, "mm"),
                            Measurement("anterolisthesis slip (Meyerding grade I)", "L4-L5", 18.0, "%"),
                            Measurement("disc height", "L2-L3", 9.0, "mm"),
                            Measurement("lordosis", "L1-S1", 48.0, "deg")], load_template("ct"))
    row = rep.level("L4-L5")
    texts = [s.text for s in row.statements]
    assert "Disc height: 8.25 mm (measured)." in texts
    meyerding = row.get("meyerding")
    assert meyerding.grade == "I" and meyerding.source == "measurement" and "measured slip" in meyerding.text
    assert any("L2-L3 is not a level in view" in n for n in rep.notes)
    assert rep.sections["general"][0].text == "Lordosis (L1-S1): 48 deg (measured)."
    assert [m.id for m in rep.measurements] == ["m1", "m2", "m4"]
    assert [meyerding_grade(p) for p in (0, 10, 25.1, 60, 90, 120, -5)] == ["none", "I", "II", "III", "IV", "V", None]


def test_model_text_cannot_carry_numbers():
    assert _scrub("disc of 7.2 mm at T11-T12 and 30% loss, T12", ["T11-T12", "T12"]) == "disc of  at T11-T12 and  loss, T12"
    import re

    schema = text_schema(20, ["T11", "T11-T12"])
    assert re.search(schema["pattern"], "loss at T11-T12") and not re.search(schema["pattern"], "loss of 7 mm")
    assert not re.search(schema["pattern"], "at L4-L5")


# --- constrained generation (fallback path, fake backend) ---------------------------------------------------------
class _TextBackend:
    name = "fake"
    is_loaded = True

    def __init__(self, text: str) -> None:
        self.text = text
        self.last_stats = None

    def chat_stream(self, messages, params=None, cancel=None):
        yield from self.text

    def info(self):
        return BackendInfo(backend="fake", model_path="fake", model_name="fake", n_ctx=4096)

    def count_prompt_tokens(self, messages):
        return 100


def test_generate_json_validates_what_an_unconstrained_backend_returns():
    tpl = load_template("ct")
    schema = row_schema(tpl, "disc")
    good = {"disc": "mild loss of height", "canal": "normal", "foramina": "patent", "facets": "mild arthrosis",
            "cord": "not assessable", "meyerding": "none", "canal_stenosis": "mild"}
    assert generate_json(_TextBackend("Here you go: " + json.dumps(good) + " done"), [], schema) == good
    with pytest.raises(ConstrainedOutputError, match="does not match"):
        generate_json(_TextBackend(json.dumps({**good, "meyerding": "VI"})), [], schema)
    with pytest.raises(ConstrainedOutputError, match="no JSON"):
        generate_json(_TextBackend("sorry"), [], schema)
    assert max_answer_chars(schema) < 1200
    assert set(summary_schema(["L4"], postoperative=True)["properties"]) == {"impression", "advice", "treatment",
                                                                            "risk", "postop"}


def test_draft_with_a_backend_that_cannot_load_is_kept_and_marked():
    class Broken(_TextBackend):
        is_loaded = False

        def load(self):
            raise RuntimeError("model file damaged")

    rep = draft_report(Broken(""), StudyContext(modality="CT"), _labelling(["T11", "T12"]), retriever=None)
    assert rep.incomplete == "incomplete: the model could not be loaded (model file damaged)"
    assert [r.level for r in rep.levels] == ["T11", "T11-T12", "T12"]
    assert rep.level("T11-T12").get("pfirrmann").source == "template"
    with pytest.raises(NeedsLabellingError):
        draft_report(Broken(""), StudyContext(modality="CT"), None, require_levels=True)


# --- store -------------------------------------------------------------------------------------------------------
def test_store_keeps_every_version_and_locks_the_signed_one(tmp_path):
    store = ReportStore(tmp_path / "library.db")
    rep = _report()
    v1 = store.save(rep, "SpineMed draft (fake)")
    assert v1.version == 1 and v1.summary.startswith("first version: 3 statements")
    rep.accept("L4.body")
    rep.edit("L4-L5.disc", "Moderate bulge.")
    rep.reject("impression.1")
    v2 = store.save(rep, "Dr A")
    assert "accepted 1 (L4.body)" in v2.summary and "edited 1 (L4-L5.disc)" in v2.summary
    assert "rejected 1 (impression.1)" in v2.summary
    signed = store.sign(rep.report_id, "Dr A")
    assert signed.signature.version == 3 and store.is_locked(rep.report_id)
    assert [(v.version, v.author, v.signed) for v in store.versions(rep.report_id)] == \
        [(1, "SpineMed draft (fake)", False), (2, "Dr A", False), (3, "Dr A", True)]
    assert store.load(rep.report_id, 1).statement("L4-L5.disc").text == "Mild bulge."
    with pytest.raises(ReportLockedError):
        store.save(store.load(rep.report_id), "Dr B")
    reopened = ReportStore(tmp_path / "library.db").latest_for_series("s1")
    assert reopened.locked and reopened.signature.name == "Dr A"
    assert diff_summary(None, rep).startswith("first version")


def test_reports_migration_is_registered():
    from core.library.migrations import MIGRATIONS

    assert "004_reports" in [name for name, _ in MIGRATIONS]


# --- key image, export errors -------------------------------------------------------------------------------------
def test_key_image_of_a_radiograph_marks_the_levels():
    data = np.zeros((200, 300, 1), np.float32)
    data[80:120, :, 0] = 1000.0
    vol = Volume(data, np.diag([0.5, 0.5, 1.0, 1.0]), modality="DX")
    rep = _report()
    rep.levels[0].position = (50.0, 75.0, 0.0)  # i = 100, j = 150
    key = render_key_image(vol, rep)
    assert key.png.startswith(b"\x89PNG") and key.caption.startswith("Radiograph")
    import io

    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(key.png)).convert("RGB")).astype(int)
    cyan = (img[..., 0] < 60) & (img[..., 1] > 180) & (img[..., 2] > 200)
    ys, xs = np.nonzero(cyan)
    scale = key.width / 100.0  # 100 mm wide image
    assert abs(np.median(ys) / scale - 75.0) < 8 and xs.min() / scale < 50.0


@pytest.mark.parametrize("ext", [".pdf", ".docx", ".txt", ".json", ".dcm"])
def test_export_to_a_read_only_folder_names_the_path(read_only_folder, ext):
    target = read_only_folder / f"report{ext}"
    with pytest.raises(ExportError) as info:
        export_report(_report(), target)
    assert str(target) in str(info.value) and "read-only" in str(info.value)
    assert not list(Path(read_only_folder).iterdir())


def test_open_study_by_library_series_uid(bundled_ct, spinemed_home):
    from core.library import Library
    from core.report.study import ReportStudy
    from core.spine.store import LevelStore

    lib = Library()
    uid = lib.import_path(bundled_ct).new_series[0]
    LevelStore(lib.db).save(_labelling(["T11", "T12"]).__class__.from_dict(
        {**_labelling(["T11", "T12"]).to_dict(), "series_uid": uid}))
    study = ReportStudy.open(uid)
    assert study.series_uid == uid and study.volume.shape == (512, 512, 20)
    assert study.labelling.names() == ["T11", "T12"] and study.context.modality == "CT"
    from core.studies import StudyLoadError

    with pytest.raises(StudyLoadError, match="no-such-series: neither an existing path, a series uid nor a study id"):
        ReportStudy.open("no-such-series")


def test_sr_of_a_series_without_dicom_instances_says_so(tmp_path):
    import highdicom as hd
    import pydicom

    nifti = tmp_path / "scan.nii.gz"
    nifti.write_bytes(b"\x1f\x8b not really a NIfTI")
    vol = Volume(np.zeros((4, 4, 4), np.int16), np.eye(4), modality="CT", source_paths=[nifti])
    ds = pydicom.dcmread(export_report(_report(), tmp_path / "r.dcm", volume=vol))
    assert "CurrentRequestedProcedureEvidenceSequence" not in ds
    sr = hd.sr.ComprehensiveSR.from_dataset(ds)
    assert sr.get_evidence() == []
    texts = [item.TextValue for item in ds.ContentSequence if "TextValue" in item]
    assert any("not DICOM instances" in t for t in texts)
    assert any("no DICOM Series Instance UID (SpineMed id s1)" in t for t in texts)
    assert ds.CompletionFlag == "COMPLETE" and ds.VerificationFlag == "UNVERIFIED"


def test_export_rejects_unknown_formats(tmp_path):
    with pytest.raises(ExportError, match="unknown report format '.odt'"):
        export_report(_report(), tmp_path / "report.odt")
