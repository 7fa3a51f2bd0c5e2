"""Spine measurement geometry with hand-worked answers, Meyerding and Genant boundaries, JSON, and the store."""
import json

import numpy as np
import pytest

from core.consult.context import Measurement
from core.library import Library
from core.library.migrations import MIGRATIONS, applied
from core.spine.measure import geometry as M
from core.spine.measure.measurement import SpineMeasurement, measurements_from_json
from core.spine.measure.store import MeasurementStore


def _line(origin, direction, length=40.0):
    o = np.asarray(origin, dtype=float)
    return (o, o + length * np.asarray(direction, dtype=float))


def _coronal(deg):  # a coronal endplate tilted by deg, drawn left to right... direction in x-z
    r = np.radians(deg)
    return np.array([np.cos(r), 0.0, np.sin(r)])


def _sagittal(deg):  # direction anterior -> posterior, posterior end raised by deg
    r = np.radians(deg)
    return np.array([0.0, np.cos(r), np.sin(r)])


def test_distance_and_angle():
    assert M.distance((0, 0, 0), (3, 4, 12)) == pytest.approx(13.0)
    assert M.angle((1, 0, 0), (0, 0, 0), (0, 1, 0)) == pytest.approx(90.0)
    assert M.angle((5, 5, 0), (0, 0, 0), (3, 0, 0)) == pytest.approx(45.0)
    assert M.angle((1, 0, 0), (0, 0, 0), (-2, 0, 0)) == pytest.approx(180.0)
    with pytest.raises(ValueError):
        M.angle((0, 0, 0), (0, 0, 0), (1, 0, 0))
    with pytest.raises(ValueError):
        M.distance((0, 0), (1, 1, 1))


def test_cobb_angle_moderate_and_severe_curves_are_unambiguous():
    up, down = _line((0, 0, 100), _coronal(30)), _line((0, 0, 0), _coronal(-30))
    assert M.cobb_angle(up, down, "coronal") == pytest.approx(60.0)
    # severe: +60 and -60 degrees -> 120, not its supplement 60
    up, down = _line((0, 0, 100), _coronal(60)), _line((0, 0, 0), _coronal(-60))
    assert M.cobb_angle(up, down, "coronal") == pytest.approx(120.0)
    # the same lines drawn right-to-left give the same answer (directions are oriented towards patient left)
    assert M.cobb_angle(up[::-1], down, "coronal") == pytest.approx(120.0)
    assert M.cobb_angle(up[::-1], down[::-1]) == pytest.approx(120.0)  # automatic plane: lines run left-right
    # parallel endplates: 0 whichever way they were drawn
    assert M.cobb_angle(_line((0, 0, 0), _coronal(10)), _line((0, 0, 50), _coronal(10))[::-1]) == pytest.approx(0.0)
    # projection: an out-of-plane (AP) component is ignored in the coronal plane
    tilted = (np.array([0, 0, 0.0]), np.array([40 * np.cos(np.radians(20)), 15.0, 40 * np.sin(np.radians(20))]))
    assert M.cobb_angle(tilted, _line((0, 0, 80), _coronal(0)), "coronal") == pytest.approx(20.0)
    with pytest.raises(ValueError):
        M.cobb_angle(((0, 0, 0), (0, 0, 0)), up)
    with pytest.raises(ValueError):
        M.cobb_angle(up, down, "oblique")


def test_lordosis_and_kyphosis_signs():
    # L1 superior endplate: anterior end higher by 10 deg (tilt -10); S1: sacral slope 40 (tilt +40) -> 50 lordosis
    l1 = _line((0, -20, 200), _sagittal(-10))
    s1 = _line((0, -20, 0), _sagittal(40))
    assert M.endplate_tilt(s1) == pytest.approx(40.0)
    assert M.endplate_tilt(s1[::-1]) == pytest.approx(40.0)  # drawn posterior -> anterior: same tilt
    assert M.lumbar_lordosis(l1, s1) == pytest.approx(50.0)
    assert M.cobb_angle(l1, s1, "sagittal") == pytest.approx(50.0)
    # T4 superior tilted +20, T12 inferior -25 -> kyphosis 45
    t4, t12 = _line((0, 0, 300), _sagittal(20)), _line((0, 0, 100), _sagittal(-25))
    assert M.thoracic_kyphosis(t4, t12) == pytest.approx(45.0)
    # a kyphotic lumbar spine gives negative lordosis
    assert M.lumbar_lordosis(_line((0, 0, 200), _sagittal(30)), _line((0, 0, 0), _sagittal(10))) == pytest.approx(-20)
    m = M.kyphosis_measurement(t4, t12, upper="T5")
    assert m.level == "T5-T12" and m.unit == "deg" and len(m.points) == 4
    with pytest.raises(ValueError):
        M.kyphosis_measurement(t4, t12, upper="T3")


def test_slip_percent_and_meyerding_boundaries():
    ps, as_ = (0, 0, 0), (0, -40, 0)  # lower superior endplate: posterior corner, anterior corner (40 mm)
    assert M.slip_percent((0, -10, 5), ps, as_) == pytest.approx(25.0)
    assert M.slip_percent((3, -20, 4), ps, as_) == pytest.approx(50.0)  # lateral and vertical offsets ignored
    assert M.slip_percent((0, 8, 5), ps, as_) == pytest.approx(-20.0)  # retrolisthesis
    cases = {-5: 0, 0: 0, 0.1: 1, 25: 1, 25.01: 2, 50: 2, 50.01: 3, 75: 3, 75.01: 4, 100: 4, 100.01: 5, 140: 5}
    for pct, grade in cases.items():
        assert M.meyerding_grade(pct) == grade, pct
    assert M.meyerding_grade(100 * (1 - 0.75) + 1e-12) == 1  # float noise at a boundary stays in the lower grade
    m = M.slip_measurement((0, -10, 5), ps, as_, "L4-L5")
    assert m.value == pytest.approx(25.0) and m.details["grade"] == 1 and m.unit == "%"
    assert m.to_context() == Measurement("anterolisthesis slip (Meyerding grade I)", "L4-L5", 25.0, "%")
    r = M.slip_measurement((0, 4, 5), ps, as_, "L3-L4")
    assert r.name.startswith("retrolisthesis") and "not graded" in r.details["grade_label"]


def test_body_heights_and_genant_grades_and_types():
    sup = [(0, -15, 20), (0, 0, 25), (0, 15, 25)]
    inf = [(0, -15, 0), (0, 0, 0), (0, 15, 0)]
    h = M.body_heights(sup, inf)
    assert (h.anterior, h.middle, h.posterior) == pytest.approx((20, 25, 25))
    hl = M.height_loss(h)
    assert hl.loss_percent == pytest.approx(20.0) and hl.grade == 1 and hl.type == "wedge"  # 20 % is grade 1
    boundaries = {19.99: 0, 20: 1, 24.99: 1, 25: 2, 40: 2, 40.01: 3, 0: 0}
    for pct, grade in boundaries.items():
        assert M.genant_grade(pct) == grade, pct
    assert M.height_loss(M.BodyHeights(18.75, 25, 25)).grade == 2  # exactly 25 %
    assert M.height_loss(M.BodyHeights(15, 25, 25)).grade == 2  # exactly 40 %
    assert M.height_loss(M.BodyHeights(14.9, 25, 25)).grade == 3
    assert M.height_loss(M.BodyHeights(20.1, 25, 25)).grade == 0
    bic = M.height_loss(M.BodyHeights(25, 18, 25))
    assert bic.type == "biconcave" and bic.grade == 2 and bic.loss_percent == pytest.approx(28.0)
    post = M.height_loss(M.BodyHeights(25, 25, 19))
    assert post.type == "crush" and post.grade == 1
    uniform = M.height_loss(M.BodyHeights(15, 15.5, 15), reference=25.0)
    assert uniform.type == "crush" and uniform.grade == 2 and uniform.reference_source == "given"
    assert M.height_loss(M.BodyHeights(15, 15, 15)).grade == 0  # no reference: a uniform crush cannot show
    # heights along an axis: tilted endplate points, only the axial component counts
    h2 = M.body_heights([(0, -15, 20), (0, 0, 20), (0, 15, 20)], [(0, -12, 0), (0, 3, 0), (0, 18, 0)], axis=(0, 0, 2))
    assert h2.anterior == pytest.approx(20.0)
    m = M.body_heights_measurement(M.BodyHeights(18, 25, 25), "T12")
    assert m.value == pytest.approx(28.0) and m.details["grade"] == 2 and m.details["type"] == "wedge"
    assert "Genant grade 2" in m.to_context().name


def test_disc_height_and_canal():
    dh = M.disc_height([(0, -15, 10), (0, 0, 12), (0, 15, 8)], [(0, -15, 0), (0, 0, 0), (0, 15, 0)])
    assert dh.mean == pytest.approx(10.0)
    assert M.disc_height([(0, -15, 10), (0, 0, 12), (0, 15, 8)], [(0, -10, 0), (0, 5, 0), (0, 20, 0)],
                         normal=(0, 0, 1)).middle == pytest.approx(12.0)
    assert M.canal_ap_diameter((0, 10, 0), (0, 25, 3), ap_axis=(0, 1, 0)) == pytest.approx(15.0)
    assert M.canal_ap_diameter((0, 10, 0), (0, 22, 5)) == pytest.approx(13.0)
    m = M.canal_measurement((0, 10, 0), (0, 22, 5), "L4")
    assert m.kind == "canal_ap_diameter" and m.unit == "mm" and m.to_context().to_text() == "L4 AP canal diameter: 13 mm"


def test_measurement_json_round_trip_and_method_format():
    m = M.disc_height_measurement(M.DiscHeight(None, 9.5, None), "L4-L5", [(0, 0, 5), (0, 0, -4.5)],
                                  method="auto:ct-sagittal-outline@1")
    assert m.automatic and m.details["note"] == "middle height only"
    back = SpineMeasurement.from_json(m.to_json())
    assert back == m
    doc = json.loads(m.to_json())
    assert doc["coordinates"] == "LPS mm" and doc["unit"] == "mm" and doc["level"] == "L4-L5"
    with pytest.raises(ValueError):
        SpineMeasurement("distance", "distance", None, 1.0, "mm", method="robot")
    with pytest.raises(ValueError):
        SpineMeasurement.from_dict({**doc, "format_version": 99})


def test_store_save_list_delete_replace_and_export(tmp_path):
    lib = Library(tmp_path / "lib.db")
    assert "005_measurements" in applied(lib.db) and "005_measurements" in [n for n, _ in MIGRATIONS]
    store = MeasurementStore(lib.db)
    user = M.distance_measurement((0, 0, 0), (0, 0, 10), method="user:dr-a", level="L3")
    auto = M.disc_height_measurement(M.DiscHeight(10, 11, 9), "L3-L4", method="auto:ct-sagittal-outline@1")
    uid = "1.2.3"
    i1, i2 = store.save(uid, user), store.save(uid, auto)
    store.save("other", M.distance_measurement((0, 0, 0), (1, 0, 0)))
    got = store.list(uid)
    assert [g.id for g in got] == [i1, i2] and got[0] == user and got[1].details == auto.details
    assert [g.kind for g in store.list(uid, kind="disc_height")] == ["disc_height"]
    assert [g.level for g in store.list(uid, level="L3")] == ["L3"]
    user.value = 12.0  # re-saving a stored measurement updates it
    assert store.save(uid, user) == i1 and store.get(i1).value == 12.0
    store.replace_automatic(uid, [M.disc_height_measurement(M.DiscHeight(8, 8, 8), "L3-L4",
                                                            method="auto:ct-sagittal-outline@1")])
    now = store.list(uid)
    assert len(now) == 2 and now[0].method == "user:dr-a" and now[1].value == pytest.approx(8.0)
    exported = measurements_from_json(store.export_json(uid))
    assert [e.value for e in exported] == [12.0, 8.0]
    assert store.delete(i1) and not store.delete(i1)
    assert len(MeasurementStore.open(tmp_path / "lib.db").list(uid)) == 1  # persisted
    with pytest.raises(ValueError):
        store.save("", user)
