"""The report editor under Xvfb with the real embedded model: drafting in a worker (progress, Cancel), accept / reject /
edit, a click on a level row emits level_selected, sign-off locks, versions, export; the main window's Report dock
moves the viewer to a clicked level. `make screenshots` keeps its picture as docs/screenshots/report_editor.png.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest tests/test_report_editor.py``.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.report.report_editor import ReportEditor
from core.inference.default_model import find_default_model
from core.report import ReportLockedError, ReportStore, SpineReport
from tests.app_support import settle, wait_until  # also selects the xcb platform
from tests.conftest import loaded_backend
from tests.report_support import labelled_bundled_ct

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def backend(embedded_model):
    with loaded_backend(embedded_model, n_threads=1) as b:
        yield b


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    with labelled_bundled_ct(tmp_path_factory.mktemp("home"), ()) as st:
        yield st


def _editor(backend, study, tmp_path, labelling="study") -> ReportEditor:
    editor = ReportEditor(store=ReportStore(tmp_path / "library.db"), backend_factory=lambda: backend)
    editor.resize(1100, 860)
    editor.set_study(study.series_uid, study.context, study.labelling if labelling == "study" else labelling,
                     study.volume, study_key=study.study_key)
    editor.show()
    return editor


@pytest.fixture(scope="module")
def drafted(qapp, backend, study, tmp_path_factory):
    """A draft made through the editor: the worker, its progress bar, then the saved first version."""
    editor = _editor(backend, study, tmp_path_factory.mktemp("draft"))
    progress = []
    editor.draft_worker = None
    worker = editor.draft()
    worker.progress.connect(lambda f, m: progress.append((f, m)))
    assert editor.busy and editor.cancel_button.isEnabled() and not editor.draft_button.isEnabled()
    wait_until(lambda: not editor.busy, timeout=240, what="the draft")
    assert worker.state == "finished", worker.error
    report = editor.report
    versions = editor.store.versions(report.report_id)
    editor.close()
    return report, progress, versions


def test_draft_runs_in_a_worker_with_progress(drafted):
    report, progress, versions = drafted
    assert [r.level for r in report.levels] == ["T11", "T11-T12", "T12"]
    assert any(m.startswith("Drafting T11-T12") for _, m in progress) and progress[-1][0] == 1.0
    assert len(versions) == 1 and versions[0].author.startswith("SpineMed draft (")


def test_accept_reject_edit_and_versions(qapp, backend, study, drafted, tmp_path, screenshot_path):
    editor = _editor(backend, study, tmp_path)
    editor.set_report(SpineReport.from_json(drafted[0].to_json()))
    editor.name_edit.setText("Dr Ada Test")
    body, canal = editor.statement_item("T11.body"), editor.statement_item("T11-T12.canal")
    editor.tree.setCurrentItem(body)
    QTest.mouseClick(editor.accept_button, Qt.MouseButton.LeftButton)
    assert editor.report.statement("T11.body").status == "accepted" and body.text(2) == "accepted"
    editor.tree.setCurrentItem(canal)
    QTest.mouseClick(editor.reject_button, Qt.MouseButton.LeftButton)
    assert editor.report.statement("T11-T12.canal").status == "rejected" and canal.font(0).strikeOut()
    disc = editor.statement_item("T11-T12.disc")
    drafted_text = editor.report.statement("T11-T12.disc").text
    disc.setText(0, "Disc: Preserved height, no herniation.")  # what an in-place edit writes back
    s = editor.report.statement("T11-T12.disc")
    assert s.text == "Preserved height, no herniation." and s.status == "edited" and s.original == drafted_text
    new_id = editor.add_statement("impression", "No acute osseous abnormality at T11-T12.")
    assert editor.report.statement(new_id).source == "user"
    assert "unsaved changes" in editor.status_label.text()
    QTest.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    versions = editor.store.versions(editor.report.report_id)
    assert [v.author for v in versions] == ["Dr Ada Test"]  # this store is new: the copy's first version
    assert "accepted 1 (T11.body)" in versions[0].summary or versions[0].summary.startswith("first version")
    editor.tree.setCurrentItem(editor.statement_item("T12.body"))
    editor._review_current("accept")
    QTest.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    versions = editor.store.versions(editor.report.report_id)
    assert len(versions) == 2 and "accepted 1 (T12.body)" in versions[1].summary
    assert editor.history.topLevelItemCount() == 2
    editor.show_version(1)
    assert editor.viewing_version == 1 and not editor.accept_button.isEnabled()
    assert "Viewing version 1" in editor.status_label.text()
    editor.show_latest()
    assert editor.viewing_version is None

    # the screenshot for the README: a reviewed draft with a level selected
    editor.tabs.setCurrentIndex(0)
    editor.tree.setCurrentItem(editor.level_item("T11-T12"))
    editor.tree.scrollToItem(editor.level_item("T11"))
    settle(0.3)
    assert editor.grab().save(str(screenshot_path("report_editor.png")))
    editor.close()


def test_click_on_a_level_row_emits_level_selected(qapp, qtbot, backend, study, drafted, tmp_path):
    editor = _editor(backend, study, tmp_path)
    editor.set_report(SpineReport.from_json(drafted[0].to_json()))
    settle(0.2)
    for item, expected in ((editor.level_item("T11-T12"), "T11-T12"), (editor.statement_item("T12.cord"), "T12")):
        editor.tree.scrollToItem(item)
        rect = editor.tree.visualItemRect(item)
        with qtbot.waitSignal(editor.level_selected, timeout=2000) as blocker:
            QTest.mouseClick(editor.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        assert blocker.args == [expected]
    editor.close()


def test_sign_off_locks_the_report(qapp, backend, study, drafted, tmp_path):
    editor = _editor(backend, study, tmp_path)
    editor.set_report(SpineReport.from_json(drafted[0].to_json()))
    editor.save_version("SpineMed draft")
    with pytest.raises(ValueError, match="not reviewed"):
        editor.sign_off("Dr Ada Test")
    signed = editor.sign_off("Dr Ada Test", accept_remaining=True)
    assert signed.locked and editor.store.is_locked(signed.report_id)
    assert editor.status_label.text().startswith("Signed by Dr Ada Test")
    for button in (editor.accept_button, editor.reject_button, editor.add_button, editor.save_button,
                   editor.sign_button, editor.draft_button):
        assert not button.isEnabled(), button.text()
    item = editor.statement_item("T11.body")
    assert not item.flags() & Qt.ItemFlag.ItemIsEditable
    with pytest.raises(ReportLockedError):
        editor.accept_statement("T11.body")
    before = editor.report.statement("T11.body").text
    item.setText(0, "changed after signing")  # even a direct edit of the tree changes nothing
    assert editor.report.statement("T11.body").text == before
    assert editor.draft() is None
    assert [v.signed for v in editor.store.versions(signed.report_id)] == [False, True]
    worker = editor.export_to(tmp_path / "signed.pdf")
    wait_until(lambda: worker.state != "running", timeout=60, what="the export")
    assert worker.state == "finished", worker.error
    text = subprocess.run(["pdftotext", str(tmp_path / "signed.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Signed by Dr Ada Test" in " ".join(text.split())
    editor.close()


def test_no_labels_means_label_first_or_draft_without_rows(qapp, backend, study, tmp_path):
    editor = _editor(backend, study, tmp_path, labelling=None)
    messages = []
    editor.draft_failed.connect(messages.append)
    assert editor.draft(without_levels=False) is None and messages == ["no level labels: label the levels first"]
    worker = editor.draft(without_levels=True)
    wait_until(lambda: not editor.busy, timeout=120, what="the draft without levels")
    assert worker.state == "finished", worker.error
    assert editor.report.levels == [] and editor.notes_label.isVisible()
    assert editor.notes_label.text().startswith("NO LEVEL ROWS")
    editor.close()


def test_cancel_keeps_the_previous_report(qapp, backend, study, drafted, tmp_path):
    editor = _editor(backend, study, tmp_path)
    previous = SpineReport.from_json(drafted[0].to_json())
    editor.set_report(previous)
    worker = editor.draft()
    worker.progress.connect(lambda f, m: editor.cancel_draft() if m.startswith("Drafting") else None)
    wait_until(lambda: not editor.busy, timeout=120, what="the cancelled draft")
    assert worker.state == "cancelled" and editor.report is previous
    assert "cancelled" in editor.progress_label.text()
    editor.close()


def test_main_window_report_dock_moves_the_viewer_to_a_clicked_level(qapp, backend, study, drafted, tmp_path):
    from app.main_window import MainWindow
    from core.library import Library

    window = MainWindow(library=Library(tmp_path / "library.db"), model_path=find_default_model())
    try:
        window.resize(1500, 950)
        window.show()
        window.show_volume(study.volume, study.series_uid)
        editor = window.report_editor
        assert window.report_dock.windowTitle() == "Report" and editor.series_uid == study.series_uid
        report = SpineReport.from_json(drafted[0].to_json())
        editor.set_report(report)
        t12 = report.level("T12").position
        expected = window.state.volume.patient_to_voxel(t12)
        editor.level_selected.emit("T12")
        settle(0.2)
        k = window.state.cursor[2]
        assert abs(k - expected[2]) <= 1 and abs(window.state.cursor[1] - expected[1]) <= 1
        assert window.chat.selected_level == "T12"
    finally:
        window.close()
        settle(0.3)
