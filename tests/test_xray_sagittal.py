"""Slip (Meyerding), sagittal vertical axis, lordosis and kyphosis on lateral radiographs: known answers in pixels and
in millimetres with each scale source, the sign convention and which side is anterior (header or user), the true
vertical, the stored form and recalibration; then the tools clicked in the real main window on a lateral DX written by
pydicom (ViewPosition LL) and on a headerless PNG, bad clicks refused with a message, the values in the study context
and a drafted X-ray report, and the pelvic incidence drawing's line from the S1 endplate's midpoint to the hip
axis."""
from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest

from core.xray.measure import NO_CALIBRATION, Calibration, calibration_from_dicom, calibration_from_known_length
from core.xray.sagittal import (
    Facing,
    facing_from_orientation,
    radiograph_slip,
    sagittal_vertical_axis,
    sva_measurement,
)
from tests.lateral_support import write_lateral_dx
from tests.xray_support import header

RIGHT, LEFT = Facing(1, "test"), Facing(-1, "test")


def _endplate(tilt_deg=30.0, length=120.0, start=(400.0, 700.0), facing=1):
    t = math.radians(tilt_deg)
    ps = np.array(start)
    return ps, ps + length * np.array([facing * math.cos(t), math.sin(t)])


@pytest.mark.parametrize("pct, grade, label", [(25.0, 1, "Meyerding grade I"), (50.0, 2, "Meyerding grade II"),
                                               (60.0, 3, "Meyerding grade III"), (110.0, 5, "spondyloptosis")])
@pytest.mark.parametrize("facing", [1, -1])
def test_slip_known_percent_and_grade_on_a_tilted_endplate(pct, grade, label, facing):
    ps, as_ = _endplate(facing=facing)
    e = (as_ - ps) / np.linalg.norm(as_ - ps)
    normal = np.array([-e[1], e[0]])
    upper = ps + pct / 100 * 120 * e + 35 * normal      # off the endplate: only the foot counts
    m = radiograph_slip(upper, ps, as_)
    assert (m.kind, m.unit) == ("slip", "%")
    assert m.value == pytest.approx(pct, abs=1e-6)
    assert m.details["grade"] == grade and label in m.details["grade_label"]
    assert m.details["slip_px"] == pytest.approx(pct / 100 * 120, abs=0.01) and "slip_mm" not in m.details


def test_slip_is_a_ratio_in_mm_with_non_square_pixels_and_bad_endplates_are_refused():
    cal = Calibration(0.1, 0.2, "PixelSpacing", "test")
    ps, as_ = np.array([100.0, 100.0]), np.array([300.0, 100.0])      # horizontal: 20 mm
    upper = np.array([150.0, 60.0])
    m = radiograph_slip(upper, ps, as_, cal)
    assert m.value == pytest.approx(25.0) and m.details["slip_mm"] == pytest.approx(5.0)
    assert m.details["scale_source"] == "PixelSpacing" and m.details["plane"] == "radiograph image plane"
    back = radiograph_slip((115.0, 60.0), (110.0, 100.0), (100.0, 100.0))  # facing left
    assert back.value == pytest.approx(-50.0) and back.name == "retrolisthesis slip"
    with pytest.raises(ValueError, match="zero length"):
        radiograph_slip(upper, ps, ps + [0.5, 0.5])


def test_sva_sign_follows_the_anterior_side():
    c7, s1 = (560.0, 200.0), (500.0, 1500.0)
    assert sagittal_vertical_axis(c7, s1, RIGHT).value == pytest.approx(60.0)
    assert sagittal_vertical_axis(c7, s1, LEFT).value == pytest.approx(-60.0)
    r = sagittal_vertical_axis(c7, s1, RIGHT)
    assert r.unit == "px" and r.modifier() is None and r.foot_px == pytest.approx((560.0, 1500.0))
    with pytest.raises(ValueError, match="above S1"):
        sagittal_vertical_axis((560.0, 1600.0), s1, RIGHT)
    with pytest.raises(ValueError, match="anterior is not known"):
        sagittal_vertical_axis(c7, s1, None)


@pytest.mark.parametrize("tags, source, mm", [
    ({"PixelSpacing": [0.25, 0.2]}, "PixelSpacing", 12.0),              # rows 0.25, columns 0.2 mm
    ({"ImagerPixelSpacing": [0.2, 0.2]}, "ImagerPixelSpacing", 12.0),
    ({"ImagerPixelSpacing": [0.22, 0.22], "EstimatedRadiographicMagnificationFactor": 1.1},
     "ImagerPixelSpacing/magnification", 12.0),
])
def test_sva_in_mm_with_each_header_scale(tags, source, mm):
    cal = calibration_from_dicom(header(**tags))
    m = sva_measurement((560.0, 200.0), (500.0, 1500.0), RIGHT, cal)
    assert m.unit == "mm" and m.value == pytest.approx(mm) and m.details["scale_source"] == source
    assert m.details["schwab_modifier"] == "0" and "standing full-length lateral" in m.details["film"]


def test_sva_with_a_user_calibration_the_schwab_bands_and_a_true_vertical():
    cal = calibration_from_known_length((0, 0), (0, 100), 50.0)        # 0.5 mm/px
    for px, band in ((79.8, "0"), (80.0, "+"), (190.0, "+"), (190.2, "++")):
        m = sva_measurement((500.0 + px, 200.0), (500.0, 1500.0), RIGHT, cal)
        assert m.value == pytest.approx(px / 2, abs=1e-6) and m.details["schwab_modifier"] == band, (px, band)
        assert m.details["scale_source"] == "user calibration"
    # a true vertical tilted by atan(60/800): the offset is taken perpendicular to it, not along the rows
    r = sagittal_vertical_axis((560.0, 100.0), (500.0, 900.0), RIGHT, vertical=[(0, 0), (60, 800)])
    assert r.value == pytest.approx(96000 / math.hypot(60, 800)) and r.horizontal.startswith("perpendicular")
    assert r.foot_px[1] == pytest.approx(891.05, abs=0.01)


def _line(tilt_deg, centre, facing, half=60.0):
    """Two image points of an endplate whose anterior end lies ``tilt_deg`` lower than its posterior end."""
    t = math.radians(tilt_deg)
    d = np.array([facing * math.cos(t), math.sin(t)]) * half        # towards anterior, y down
    return tuple(np.asarray(centre) - d), tuple(np.asarray(centre) + d)


@pytest.mark.parametrize("facing", [RIGHT, LEFT])
def test_lordosis_and_kyphosis_on_a_lateral_radiograph_either_facing(facing):
    from core.xray.sagittal import sagittal_cobb_measurement

    cx = 500.0
    # L1 superior endplate level, S1 superior endplate sloping 40 degrees down anteriorly: lordosis 40
    l1, s1 = _line(0.0, (cx, 900.0), facing.sign), _line(40.0, (cx, 1600.0), facing.sign)
    m = sagittal_cobb_measurement("lordosis", [*l1, *s1], facing)
    assert (m.kind, m.level, m.unit) == ("lordosis", "L1-S1", "deg") and m.value == pytest.approx(40.0)
    assert m.details["plane"] == "radiograph image plane" and m.details["anterior_sign"] == facing.sign
    flat = sagittal_cobb_measurement("lordosis", [*_line(10.0, (cx, 900.0), facing.sign),
                                                  *_line(-5.0, (cx, 1600.0), facing.sign)], facing)
    assert flat.value == pytest.approx(-15.0)                          # kyphotic alignment
    # T4 superior endplate 20 degrees down anteriorly, T12 inferior endplate 25 degrees up anteriorly: kyphosis 45
    t4, t12 = _line(20.0, (cx, 300.0), facing.sign), _line(-25.0, (cx, 800.0), facing.sign)
    k = sagittal_cobb_measurement("kyphosis", [*t4, *t12], facing)
    assert (k.kind, k.level) == ("kyphosis", "T4-T12") and k.value == pytest.approx(45.0)
    # the anterior side matters: the wrong one reverses the curve
    wrong = Facing(-facing.sign, "test")
    assert sagittal_cobb_measurement("lordosis", [*l1, *s1], wrong).value == pytest.approx(-40.0)
    with pytest.raises(ValueError, match="zero length"):
        sagittal_cobb_measurement("lordosis", [l1[0], l1[0], *s1], facing)


def test_true_vertical_is_a_set_up_measurement():
    from core.spine.measure.measurement import context_measurements
    from core.xray.sagittal import vertical_from_measurements, vertical_measurement

    v = vertical_measurement((100.0, 900.0), (160.0, 100.0))      # clicked bottom first: oriented downwards
    assert v.kind == "true_vertical" and v.unit == "deg"
    assert v.value == pytest.approx(-math.degrees(math.atan2(60, 800)), abs=0.01)   # lower end to the left
    assert not v.is_finding and context_measurements([v]) == []
    later = vertical_measurement((0.0, 0.0), (10.0, 500.0))
    assert vertical_from_measurements([v, later]) == [[0.0, 0.0], [10.0, 500.0]]
    assert vertical_from_measurements([]) is None
    with pytest.raises(ValueError, match="more than 45"):
        vertical_measurement((0.0, 0.0), (500.0, 100.0))
    with pytest.raises(ValueError, match="same point"):
        vertical_measurement((5.0, 5.0), (5.5, 5.0))


def test_anterior_side_from_patient_orientation(tmp_path):
    assert facing_from_orientation(["A", "F"]).sign == 1
    assert facing_from_orientation(["P", "F"]).sign == -1
    assert facing_from_orientation(["PF", "H"]).sign == -1
    assert facing_from_orientation(["L", "F"]) is None and facing_from_orientation(None) is None
    from core.library.opener import load_volume
    from core.xray.sagittal import facing_for_volume, frontal_view

    write_lateral_dx(tmp_path / "lat.dcm", facing=-1)
    volume, _ = load_volume(tmp_path / "lat.dcm")
    assert facing_for_volume(volume).describe() == "anterior = image left (PatientOrientation P\\F)"
    assert frontal_view(volume) == ""
    write_lateral_dx(tmp_path / "none.dcm", orientation=False)
    assert facing_for_volume(load_volume(tmp_path / "none.dcm")[0]) is None
    write_lateral_dx(tmp_path / "ap.dcm", ViewPosition="AP")
    assert "ViewPosition AP" in frontal_view(load_volume(tmp_path / "ap.dcm")[0])


def test_radiograph_header_is_read_by_the_loader_not_again_by_the_tools(tmp_path, monkeypatch):
    from core.library.opener import load_volume
    from core.xray.header import radiograph_header
    from core.xray.sagittal import facing_for_volume

    write_lateral_dx(tmp_path / "lat.dcm", facing=-1)
    volume, _ = load_volume(tmp_path / "lat.dcm")
    assert volume.dicom_header is not None and volume.dicom_header.PatientOrientation == ["P", "F"]

    def no_read(*args, **kwargs):
        raise AssertionError("the header was read again from disk")

    monkeypatch.setattr(pydicom, "dcmread", no_read)  # what the GUI thread would do: it must not happen
    assert radiograph_header(volume) is volume.dicom_header
    assert facing_for_volume(volume).sign == -1
    monkeypatch.undo()
    made_elsewhere = type(volume)(data=volume.data, affine=volume.affine, source_paths=volume.source_paths)
    assert radiograph_header(made_elsewhere).PatientOrientation == ["P", "F"]  # read once from its file, kept
    assert made_elsewhere.dicom_header is not None


def test_recalibrated_sva_and_slip_keep_points_and_provenance():
    from core.xray.measure import recalibrated

    sva = sva_measurement((560.0, 200.0), (500.0, 1500.0), Facing(1, "set by the user"), NO_CALIBRATION,
                          method="user:ann")
    slip = radiograph_slip((150.0, 60.0), (100.0, 100.0), (300.0, 100.0), method="user:ann")
    cal = calibration_from_known_length((0, 0), (0, 100), 25.0)
    new_sva, new_slip = recalibrated(sva, cal), recalibrated(slip, cal)
    assert new_sva.unit == "mm" and new_sva.value == pytest.approx(15.0) and new_sva.method == "user:ann"
    assert new_sva.details["anterior_source"] == "set by the user" and new_sva.details["schwab_modifier"] == "0"
    assert new_slip.value == pytest.approx(25.0) and new_slip.details["slip_mm"] == pytest.approx(12.5)
    assert "slip_px" not in new_slip.details


def test_values_say_their_scale():
    from app.measure.values import format_value, list_value

    cal = calibration_from_dicom(header(ImagerPixelSpacing=[0.2, 0.2]))
    m = sva_measurement((760.0, 200.0), (500.0, 1500.0), Facing(1, "PatientOrientation A\\F"), cal)
    text = format_value(m)
    assert text.startswith("SVA 52.0 mm (anterior; Schwab +; ImagerPixelSpacing: at the detector, magnified")
    assert "anterior = image right by PatientOrientation" in text and "standing lateral film" in text
    px = sva_measurement((440.0, 200.0), (500.0, 1500.0), Facing(1, "set by the user"))
    assert format_value(px) == "SVA -60.0 px (posterior; no calibration; anterior = image right by user; " \
                               "standing lateral film)"
    assert list_value(m) == "52.0 mm (anterior; Schwab +; at the detector: magnified)"   # the rest in the tooltip
    assert "standing full-length lateral radiograph" in m.summary()
    slip = radiograph_slip((150.0, 60.0), (100.0, 100.0), (300.0, 100.0))
    assert format_value(slip) == "25.0 % (Meyerding I, image-plane ratio)"
    assert m.to_context().name == ("sagittal vertical axis (SRS-Schwab SVA modifier +; + = C7 plumb line anterior "
                                   "to S1; mm from ImagerPixelSpacing, at the detector (magnified); standing "
                                   "full-length lateral radiograph)")
    assert "pixels, no scale" in px.to_context().name


# -- in the main window --------------------------------------------------------------------------------------------
def _pixel_rgb(view, xy):
    from tests.app_support import qimage_to_rgb

    pos = view.patient_to_widget(view.state.volume.voxel_to_patient((xy[0] - 0.5, xy[1] - 0.5, 0.0)))[0]
    img = qimage_to_rgb(view.grab().toImage())
    r = 2
    patch = img[int(pos.y()) - r: int(pos.y()) + r + 1, int(pos.x()) - r: int(pos.x()) + r + 1]
    return patch.reshape(-1, 3)


def test_sagittal_tools_on_a_lateral_dx_in_the_main_window(qtbot, tmp_path):
    from app.measure.layer_2d import LINE_RGB
    from core.report.study import stored_measurements
    from tests.app_support import click_pixel, opened_window, settle, wait_until

    sketch = write_lateral_dx(tmp_path / "lateral.dcm", facing=1, slip=25.0, sva_px=110.0,
                              ImagerPixelSpacing=[0.2, 0.2])
    with opened_window(tmp_path, tmp_path / "lateral.dcm", wait_3d=False) as window:
        view, spine = window.viewer.axial, window.spine
        assert view.radiograph
        assert window.info_panel.text("Orientation") == "rows towards A, columns towards F (PatientOrientation)"
        # the AP landmark model still refuses it, by its header
        worker = window.xray.panel.find()
        wait_until(lambda: not worker.is_running, 120, "the landmark model")
        assert window.xray.panel.status.text().startswith("Not read: lateral.dcm: a left lateral view")
        panel = spine.measure_panel
        for key in ("slip", "sva", "pelvis", "lordosis", "kyphosis", "vertical"):
            assert panel.tool_buttons[key].isEnabled()

        panel.slip_level.setCurrentIndex(panel.slip_level.findData("L5-S1"))
        panel.tool_buttons["slip"].click()
        for q in (sketch.l5_posterior_inferior, sketch.s1_posterior, sketch.s1_anterior):
            click_pixel(view, *q)
        slip = spine.measurements.measurements[-1]
        assert slip.level == "L5-S1"
        assert (slip.kind, slip.unit) == ("slip", "%") and slip.value == pytest.approx(25.0, abs=0.5)
        assert slip.details["grade"] == 1 and slip.details["slip_mm"] == pytest.approx(10.0, abs=0.3)

        panel.tool_buttons["sva"].click()
        click_pixel(view, *sketch.c7_centre)
        click_pixel(view, *sketch.s1_posterior)
        sva = spine.measurements.measurements[-1]
        assert (sva.kind, sva.level, sva.unit) == ("sva", "C7-S1", "mm")
        assert sva.value == pytest.approx(22.0, abs=0.2)                  # 110 px x 0.2 mm, anterior
        assert sva.details["anterior_source"] == "PatientOrientation A\\F"
        assert sva.details["scale_source"] == "ImagerPixelSpacing"
        # the user's choice wins over the header and is said on the value
        panel.facing.setCurrentIndex(panel.facing.findData("left"))
        click_pixel(view, *sketch.c7_centre)
        click_pixel(view, *sketch.s1_posterior)
        flipped = spine.measurements.measurements[-1]
        assert flipped.value == pytest.approx(-22.0, abs=0.2)
        assert flipped.details["anterior_source"] == "set by the user; the header says image right"
        spine.undo_stack.undo()
        panel.facing.setCurrentIndex(panel.facing.findData("header"))

        # lumbar lordosis on the lateral film (anterior from the header): S1 slopes 40 degrees, L1 drawn level
        panel.tool_buttons["lordosis"].click()
        for q in (*_line(0.0, (560.0, 1500.0), 1), sketch.s1_posterior, sketch.s1_anterior):
            click_pixel(view, *q)
        ll = spine.measurements.measurements[-1]
        assert (ll.kind, ll.level) == ("lordosis", "L1-S1") and ll.value == pytest.approx(40.0, abs=0.3)
        assert "image plane; anterior = image right by PatientOrientation" in panel.note.text()

        # bad clicks: outside the image, a zero-length endplate
        n = len(spine.measurements.measurements)
        click_pixel(view, *sketch.c7_centre)
        click_pixel(view, sketch.width + 40.0, 1500.0)
        assert "Not placed: the click is outside the image (1000 x 2400 px)" in panel.note.text()
        assert len(spine.measure_layer.points) == 1 and len(spine.measurements.measurements) == n
        spine.measure_layer.cancel()
        panel.tool_buttons["slip"].click()
        for q in (sketch.l5_posterior_inferior, sketch.s1_posterior, sketch.s1_posterior):
            click_pixel(view, *q)
        assert "Not measured: the lower vertebra's endplate has zero length" in panel.note.text()
        assert len(spine.measurements.measurements) == n

        # pelvic incidence: drawn with the line from the S1 endplate's midpoint to the hip axis
        panel.tool_buttons["pelvis"].click()
        for q in (sketch.s1_posterior, sketch.s1_anterior, *sketch.hips):
            click_pixel(view, *q)
        panel.set_tool(None)
        settle(0.3)
        mid = (np.asarray(sketch.s1_posterior) + np.asarray(sketch.s1_anterior)) / 2
        hip = (np.asarray(sketch.hips[0]) + np.asarray(sketch.hips[1])) / 2
        on_line = mid + 0.6 * (hip - mid)
        assert any(np.abs(p.astype(int) - LINE_RGB).max() < 40 for p in _pixel_rgb(view, on_line)), \
            "no PI line from the S1 midpoint to the hip axis"
        # with a pelvic incidence and a lordosis measured, the list shows PI - LL as the consultation gets it
        pi = next(m for m in reversed(spine.measurements.measurements) if m.kind == "pelvic_incidence")
        from core.spine.measure.alignment import pi_ll_modifier  # graded with known answers in test_xray_pelvis

        diff = pi.value - ll.value
        derived = [r for r in panel.rows() if r[0] == "PI − LL (derived)"]
        assert derived == [("PI − LL (derived)", "L1-S1", f"{diff:.1f}° (Schwab {pi_ll_modifier(diff)})", "deg")]
        row = panel.tree.topLevelItem(panel.tree.topLevelItemCount() - 1)
        panel.tree.setCurrentItem(row)
        panel._update_buttons()
        assert not panel.delete_button.isEnabled()   # derived, not stored: nothing to delete

        # stored with provenance and given to the consultation's context
        uid = spine.measurements.series_uid
        stored = spine.measurements.store.list(uid)
        assert {m.kind for m in stored} >= {"slip", "sva", "pelvic_incidence", "lordosis"}
        assert all(m.method == f"user:{spine.measurements.user}" for m in stored)
        context = stored_measurements(uid, window.library.db)
        by_name = {c.name.split(" (")[0]: c for c in context}
        assert by_name["sagittal vertical axis"].name.startswith("sagittal vertical axis (SRS-Schwab SVA modifier 0")
        assert (by_name["sagittal vertical axis"].value, by_name["sagittal vertical axis"].unit) == \
            (pytest.approx(22.0, abs=0.2), "mm")
        assert by_name["anterolisthesis slip"].name == "anterolisthesis slip (Meyerding grade I)"
        pi_ll = by_name["pelvic incidence minus lumbar lordosis"]
        assert pi_ll.value == pytest.approx(pi.value - ll.value, abs=0.01) and "PI-LL modifier" in pi_ll.name
        spine.undo_stack.clear()


def test_sva_on_a_headerless_lateral_png_asks_which_side_is_anterior(qtbot, tmp_path):
    from PIL import Image

    from tests.app_support import click_pixel, opened_window
    from tests.lateral_support import lateral_sketch

    img, sketch = lateral_sketch(facing=-1, sva_px=80.0)
    Image.fromarray((img // 16).astype(np.uint8)).save(tmp_path / "lateral.png")
    with opened_window(tmp_path, tmp_path / "lateral.png", wait_3d=False) as window:
        view, spine, panel = window.viewer.axial, window.spine, window.spine.measure_panel
        panel.tool_buttons["sva"].click()
        click_pixel(view, *sketch.c7_centre)
        click_pixel(view, *sketch.s1_posterior)
        assert "does not say which side is anterior" in panel.note.text()
        assert not any(m.kind == "sva" for m in spine.measurements.measurements)
        panel.facing.setCurrentIndex(panel.facing.findData("left"))
        click_pixel(view, *sketch.c7_centre)
        click_pixel(view, *sketch.s1_posterior)
        m = spine.measurements.measurements[-1]
        assert (m.kind, m.unit) == ("sva", "px") and m.value == pytest.approx(80.0, abs=0.2)
        assert "no calibration" in panel.note.text() and "anterior = image left by user" in panel.note.text()
        assert m.details["horizontal"] == "image rows"
        # a true vertical, tilted: the next SVA is taken perpendicular to it, and says so
        panel.tool_buttons["vertical"].click()
        top, bottom = (300.0, 150.0), (400.0, 2150.0)
        click_pixel(view, *top)
        click_pixel(view, *bottom)
        v = spine.measurements.measurements[-1]
        assert v.kind == "true_vertical" and v.value == pytest.approx(math.degrees(math.atan2(100, 2000)), abs=0.05)
        panel.tool_buttons["sva"].click()
        click_pixel(view, *sketch.c7_centre)
        click_pixel(view, *sketch.s1_posterior)
        tilted = spine.measurements.measurements[-1]
        expected = sagittal_vertical_axis(sketch.c7_centre, sketch.s1_posterior, LEFT, vertical=[top, bottom])
        assert tilted.value == pytest.approx(expected.value, abs=0.3) and abs(tilted.value - 80.0) > 3
        assert tilted.details["horizontal"] == "perpendicular to the user's true vertical"
        assert "true vertical set" in panel.note.text()
        spine.undo_stack.clear()


def test_lateral_tools_refused_on_an_ap_dx(qtbot, tmp_path):
    from tests.app_support import click_pixel, opened_window

    sketch = write_lateral_dx(tmp_path / "ap.dcm", ViewPosition="AP", orientation=False)
    with opened_window(tmp_path, tmp_path / "ap.dcm", wait_3d=False) as window:
        panel = window.spine.measure_panel
        panel.tool_buttons["sva"].click()
        click_pixel(window.viewer.axial, *sketch.c7_centre)
        click_pixel(window.viewer.axial, *sketch.s1_posterior)
        assert "SVA is measured on a lateral radiograph; the header says this is an AP view" in panel.note.text()
    assert pydicom.dcmread(tmp_path / "ap.dcm").ViewPosition == "AP"


def test_sva_and_slip_reach_the_xray_report():
    from core.consult.context import StudyContext
    from core.report.draft import draft_report
    from core.report.templates import template_for

    class NoModel:           # the report keeps measured values even when no model can be loaded
        name, is_loaded, last_stats = "none", False, None

        def load(self):
            raise RuntimeError("no model in this test")

    cal = calibration_from_dicom(header(ImagerPixelSpacing=[0.2, 0.2]))
    sva = sva_measurement((760.0, 200.0), (500.0, 1500.0), Facing(1, "PatientOrientation A\\F"), cal)
    slip = radiograph_slip((150.0, 60.0), (100.0, 100.0), (300.0, 100.0), cal, level="L5-S1")
    context = StudyContext(modality="DX", measurements=[sva.to_context(), slip.to_context()])
    rep = draft_report(NoModel(), context, None, retriever=None, is_2d=True, template=template_for("DX", True))
    general = [s.text for s in rep.sections["general"]]
    assert any(t.startswith("Sagittal vertical axis (SRS-Schwab SVA modifier +") and "magnified" in t
               and "(C7-S1): 52 mm (measured)" in t for t in general), general
    # no labelled levels on this lateral film: the slip's level is kept with it under general findings
    assert "Anterolisthesis slip (Meyerding grade I) (L5-S1): 25 % (measured)." in general
    assert not any("not reported" in n for n in rep.notes), rep.notes
    assert any("Schwab F" in r for r in template_for("DX", True).references)
