"""Pelvic incidence, sacral slope and pelvic tilt on a lateral radiograph: known answers built from the published
definitions (PI = PT + SS), either facing, superimposed femoral heads, bad clicks refused; and the tool placed with
real clicks on a radiograph SliceView under Xvfb, refused on a CT view."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from core.xray.pelvis import pelvic_parameters


def _pelvis(ss_deg, pt_deg, facing=1, length=120.0, hip_sep=0.0):
    """S1 posterior and anterior corners and two femoral head centres for a given SS and PT (image pixels)."""
    p = np.array([500.0, 400.0])
    ss = math.radians(ss_deg)
    a = p + length * np.array([facing * math.cos(ss), math.sin(ss)])
    m = (p + a) / 2
    pt = math.radians(pt_deg)
    hip = m + 260 * np.array([facing * math.sin(pt), math.cos(pt)])
    return p, a, hip + [hip_sep / 2, 0], hip - [hip_sep / 2, 0]


@pytest.mark.parametrize("ss, pt, facing", [(40, 12, 1), (40, 12, -1), (35, -6, 1), (52, 25, -1)])
def test_known_answers_either_facing(ss, pt, facing):
    r = pelvic_parameters(*_pelvis(ss, pt, facing, hip_sep=30))
    assert r.sacral_slope == pytest.approx(ss, abs=1e-6)
    assert r.pelvic_tilt == pytest.approx(pt, abs=1e-6)
    assert r.incidence == pytest.approx(ss + pt, abs=1e-6)


@pytest.mark.parametrize("pt, modifier", [(12, "0"), (19.9, "0"), (20, "+"), (30, "+"), (31, "++")])
def test_pelvic_tilt_is_graded_by_srs_schwab(pt, modifier):
    from core.xray.pelvis import pelvic_measurement

    m = pelvic_measurement(_pelvis(40, pt, hip_sep=10))
    assert m.details["schwab_pt_modifier"] == modifier
    text = m.to_context().to_text()      # what the consultation and a report get: SS, PT and the grade
    assert f"PT {pt:.1f}°" in text and f"PT modifier {modifier} " in text and "Schwab et al., Spine 2012" in text


def test_pi_minus_ll_is_derived_for_the_consultation_from_the_latest_of_each():
    from core.spine.measure.alignment import pi_ll_modifier
    from core.spine.measure.measurement import SpineMeasurement, context_measurements
    from core.xray.pelvis import pelvic_measurement

    pi = pelvic_measurement(_pelvis(40, 22))                               # PI 62
    pi.created = "2026-12-07T10:00:00+00:00"

    def lordosis(value, created):
        return SpineMeasurement("lordosis", "lumbar lordosis", "L1-S1", value, "deg", created=created)

    assert [c.name for c in context_measurements([pi])] == [pi.to_context().name]   # no LL: nothing derived
    older, newer = lordosis(60.0, "2026-12-07T10:01:00+00:00"), lordosis(45.0, "2026-12-07T10:02:00+00:00")
    derived = context_measurements([newer, pi, older])[-1]
    assert derived.value == pytest.approx(62.0 - 45.0, abs=0.01) and derived.unit == "deg"
    assert "PI-LL modifier + " in derived.name and "lordosis smaller than incidence" in derived.name
    assert "PI-LL modifier 0 " in context_measurements([pi, older])[-1].name       # 62 - 60 = 2
    assert [pi_ll_modifier(v) for v in (9.9, -9.9, 10, 20, 20.5, -25)] == ["0", "0", "+", "+", "++", "++"]


def test_superimposed_heads_and_bad_clicks():
    p, a, h, _ = _pelvis(40, 12)
    assert pelvic_parameters(p, a, h).incidence == pytest.approx(pelvic_parameters(p, a, h, h).incidence)
    with pytest.raises(ValueError, match="same point"):
        pelvic_parameters(p, p, h)
    with pytest.raises(ValueError, match="below the S1 endplate"):
        pelvic_parameters(p, a, (p + a) / 2 - [0, 100])


def _click(view, state, xy):
    pos = view.patient_to_widget(state.volume.voxel_to_patient((xy[0] - 0.5, xy[1] - 0.5, 0.0)))[0]
    for kind in (QEvent.MouseButtonPress, QEvent.MouseButtonRelease):
        buttons = Qt.LeftButton if kind == QEvent.MouseButtonPress else Qt.NoButton
        QApplication.sendEvent(view, QMouseEvent(kind, pos, view.mapToGlobal(pos), Qt.LeftButton, buttons,
                                                 Qt.NoModifier))


def test_tool_on_a_radiograph_view(qtbot, tmp_path):
    from app import imaging
    from app.measure.layer_2d import MeasureLayer
    from app.measure.values import format_value
    from app.views.slice_view import SliceView
    from tests.xray_support import radiograph_in_view

    state, view, model, store, _undo = radiograph_in_view(qtbot, tmp_path, np.full((1100, 900), 80), "lat",
                                                          spacing=0.2, size=(700, 900))
    layer = MeasureLayer(model, user="tester")
    layer.attach([view])
    layer.set_tool("pelvis")
    p, a, h1, h2 = _pelvis(38, 14, facing=-1, hip_sep=24)
    for q in (p, a, h1, h2):
        _click(view, state, q)
    (m,) = store.list("lat")
    assert (m.kind, m.level, m.unit) == ("pelvic_incidence", "S1", "deg")
    assert m.value == pytest.approx(52.0, abs=0.2)
    assert m.details["sacral_slope_deg"] == pytest.approx(38.0, abs=0.2)
    assert m.details["pelvic_tilt_deg"] == pytest.approx(14.0, abs=0.2)
    assert format_value(model.measurements[0]) == "52.0° PI (SS 38.0°, PT 14.0°; Schwab PT 0)"
    # not on a CT or MR view
    ct = SliceView(state, imaging.SAGITTAL)
    qtbot.addWidget(ct)
    from app.measure.tools import TOOLS, wrong_view

    assert "lateral radiograph" in wrong_view(TOOLS["pelvis"], ct)
    view.close()
