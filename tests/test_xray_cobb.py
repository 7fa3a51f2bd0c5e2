"""Cobb angles from AP radiograph landmarks: clinical curves with named end vertebrae on synthetic columns of known
tilts, the AASCE challenge definition (known answers and the shared reference angles), SMAPE, and the CSV readers."""
from __future__ import annotations

import numpy as np
import pytest

from core.xray.aasce import AasceFormatError, broken_vertebrae, image_size, patient_id, read_dataset, read_landmarks
from core.xray.cobb import aasce_angles, endplate_tilts, find_curves, regional_cobb
from core.xray.metrics import angle_mae, landmark_errors, smape
from tests.xray_support import aasce_dir, column

# vertebra tilts T1..L5 with turning points at T4 (+12), T10 (-20) and L3 (+15)
VERTEBRA_TILTS = [0, 4, 8, 12, 6, 0, -6, -12, -16, -20, -10, 0, 5, 10, 15, 10, 5]


def s_curve():
    tilts = np.repeat(VERTEBRA_TILTS, 2).astype(float)
    tilts[2 * 3 + 1] = 14      # T4 inferior tilts more than T4 superior (12)
    tilts[2 * 9] = -23         # T10 superior tilts more than T10 inferior (-20)
    tilts[2 * 14] = 17         # L3 superior
    return tilts


def test_endplate_tilts_are_read_back():
    tilts = s_curve()
    assert np.allclose(endplate_tilts(column(tilts)), tilts, atol=1e-9)


def test_endplate_drawn_right_to_left_has_the_same_tilt():
    lm = column(s_curve())
    swapped = lm.copy()
    swapped[[0, 1]] = swapped[[1, 0]]   # T1's upper corners given in the other order
    assert endplate_tilts(swapped)[0] == pytest.approx(endplate_tilts(lm)[0])


def test_curves_end_vertebrae_and_angles_of_a_known_column():
    curves = find_curves(column(s_curve()))
    got = [(c.upper_end_vertebra, c.lower_end_vertebra, round(c.angle, 6)) for c in curves]
    # most tilted endplates of each end vertebra: T1 sup 0 / T4 inf 14 / T10 sup -23 / L3 sup 17 / L5 5
    assert got == [("T1", "T4", 14.0), ("T4", "T10", 37.0), ("T10", "L3", 40.0), ("L3", "L5", 12.0)]
    assert [(c.upper_endplate, c.lower_endplate) for c in curves] == [(0, 7), (7, 18), (18, 28), (28, 32)]  # L5: a tie, the superior one
    regions = [c.region for c in curves]
    assert regions == ["proximal thoracic", "main thoracic", "thoracolumbar/lumbar", "thoracolumbar/lumbar"]
    main = curves[1]
    # tilt falls through zero at T6: the column is farthest to the image's right there
    assert main.apex_name in ("T6", "T6-T7", "T7") and main.convex_to == "image right"
    assert curves[2].convex_to == "image left"
    assert "T4 inferior" in main.describe() and "T10 superior" in main.describe()


def test_regional_cobb_keeps_the_largest_curve_of_each_region():
    reg = regional_cobb(column(s_curve()))
    assert reg["proximal thoracic"].angle == pytest.approx(14.0)
    assert reg["main thoracic"].angle == pytest.approx(37.0)
    assert reg["thoracolumbar/lumbar"].angle == pytest.approx(40.0)


def test_straight_column_has_no_curve_and_small_noise_makes_none():
    rng = np.random.default_rng(3)
    assert find_curves(column(np.zeros(34))) == []
    noisy = column(rng.uniform(-1.5, 1.5, 34))
    assert find_curves(noisy) == []
    assert all(v is None for v in regional_cobb(noisy).values())


def test_curve_over_90_degrees_is_not_folded():
    tilts = np.repeat(np.linspace(50, -45, 17), 2)
    (curve,) = find_curves(column(tilts))
    assert curve.angle == pytest.approx(95.0)
    assert (curve.upper_end_vertebra, curve.lower_end_vertebra) == ("T1", "L5")


def test_degenerate_landmarks_are_refused():
    with pytest.raises(ValueError, match="68 landmarks"):
        find_curves(np.zeros((60, 2)))
    lm = column(np.zeros(34))
    lm[5] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        find_curves(lm)


def test_aasce_angles_of_a_single_c_curve():
    # tilts fall steadily from +15 to -15: one curve T1-L5, not S-shaped -> (30, 0, 0) by the challenge's rule
    lm = column(np.repeat(np.linspace(15, -15, 17), 2))
    assert aasce_angles(lm, 2000.0) == pytest.approx([30.0, 0.0, 0.0], abs=1e-6)


def test_aasce_angles_of_an_s_curve_upper_half():
    lm = column(s_curve())
    pt, mt, tl = aasce_angles(lm, 3000.0)   # the two most tilted vertebrae lie in the image's upper half
    # vertebra lines (mean of the two endplates): T4 13, T10 -21.5, L3 16 -> largest T10-L3 37.5;
    # above T10 the largest against T10 is T4 (34.5); below L3 the largest against L3 is L5 (11)
    assert (pt, mt, tl) == pytest.approx((37.5, 34.5, 11.0), abs=1e-4)  # cosines rounded to 1e-8 as the challenge did


def test_smape_known_values():
    assert smape([[10, 20, 30]], [[10, 20, 30]]) == 0.0
    assert smape([[0, 0, 0]], [[10, 0, 0]]) == pytest.approx(100.0)
    assert smape([[12, 0, 0], [0, 0, 0]], [[10, 0, 0], [0, 0, 0]]) == pytest.approx(100 * (2 / 22) / 2)
    assert angle_mae([[12, 5, 0], [8, 5, 2]], [[10, 5, 0], [10, 1, 0]]) == pytest.approx([2, 2, 1])
    with pytest.raises(ValueError):
        smape([[1, 2, 3]], [[1, 2, 3], [1, 2, 3]])


def test_landmark_errors():
    a = np.zeros((68, 2))
    b = a.copy()
    b[:, 0] = 3
    b[:, 1] = 4
    assert np.allclose(landmark_errors(a, b), 5.0)


def test_readers_name_file_and_row(tmp_path):
    (tmp_path / "f.csv").write_text("a AP.jpg\nb AP.jpg\n")
    good = ",".join(["0.5"] * 136)
    (tmp_path / "l.csv").write_text(good + "\n" + ",".join(["0.5"] * 135) + "\n")
    with pytest.raises(AasceFormatError, match=r"l\.csv, row 2: 135 values, expected 136"):
        read_landmarks(tmp_path / "l.csv")
    (tmp_path / "l.csv").write_text(good + "\n" + good.replace("0.5", "x", 1) + "\n")
    with pytest.raises(AasceFormatError, match="row 2: not all values are numbers"):
        read_landmarks(tmp_path / "l.csv")
    (tmp_path / "l.csv").write_text(good + "\n")
    with pytest.raises(AasceFormatError, match="1 rows of landmarks but 2 file names"):
        read_dataset(tmp_path / "f.csv", tmp_path / "l.csv")
    with pytest.raises(AasceFormatError, match="not found"):
        read_dataset(tmp_path / "missing.csv")


def test_patient_ids_group_a_patients_images():
    assert patient_id("sunhl-1th-02-Jan-2017-162 A AP.jpg") == patient_id("sunhl-1th-02-Jan-2017-162 B AP.jpg")
    assert patient_id("sunhl-1th-02-Jan-2017-162 A AP.jpg") != patient_id("sunhl-1th-03-Jan-2017-163 A AP.jpg")
    assert patient_id("sunhl-1th-20-Jul-2016-coronal7.jpg") == patient_id("sunhl-1th-20-Jul-2016-coronal12.jpg")


def test_broken_last_vertebra_is_found():
    lm = column(np.zeros(34))
    assert broken_vertebrae(lm) == []
    lm[64:68, 1] -= 1000          # L5 jumps back to the top
    assert broken_vertebrae(lm) == [16]
    lm = column(np.zeros(34))
    lm[66:68, 1] = 10             # only L5's lower corners jump
    assert broken_vertebrae(lm) == [16]


def test_aasce_definition_reproduces_the_shared_reference_angles():
    root = aasce_dir()
    records = read_dataset(root / "labels" / "filenames.csv", root / "labels" / "landmarks.csv",
                           root / "labels" / "angles.csv")
    assert len(records) == 481
    errors = []
    for r in records:
        w, h = image_size(root / "images" / r.name)
        errors.append(np.abs(aasce_angles(r.landmarks_px(w, h), h) - r.angles))
    errors = np.array(errors)
    assert errors.max() < 0.05, errors.max()


def test_clinical_cobb_on_shared_landmarks_is_close_to_the_largest_reference_angle():
    # the clinical curves use endplates, the challenge vertebra mid-lines: the largest curves agree within a few deg
    root = aasce_dir()
    records = read_dataset(root / "labels" / "filenames.csv", root / "labels" / "landmarks.csv",
                           root / "labels" / "angles.csv")
    diffs = []
    for r in records[:120]:
        w, h = image_size(root / "images" / r.name)
        lm = r.landmarks_px(w, h)
        if broken_vertebrae(lm):
            continue
        largest = max((c.angle for c in find_curves(lm)), default=0.0)
        diffs.append(largest - r.angles[0])
    diffs = np.array(diffs)
    assert np.median(np.abs(diffs)) < 4.0
    assert np.mean(np.abs(diffs) < 10) > 0.9


def test_cobb_measurements_carry_region_end_vertebrae_and_the_landmarks():
    from core.spine.measure.measurement import measurements_from_json, measurements_to_json
    from core.xray.measurements import cobb_measurements, landmarks_from_measurements

    lm = column(s_curve())
    ms = cobb_measurements(lm, "auto:spinemed-xray-landmarks@1.0")
    assert [(m.level, m.value, m.details["region"]) for m in ms] == [
        ("T1-T4", 14.0, "proximal thoracic"), ("T4-T10", 37.0, "main thoracic"),
        ("T10-L3", 40.0, "thoracolumbar/lumbar")]
    assert ms[1].details["upper_endplate"] == "T4 inferior" and ms[1].unit == "deg" and ms[1].points == []
    back = measurements_from_json(measurements_to_json(ms))
    restored, method = landmarks_from_measurements(back)
    assert restored == pytest.approx(lm, abs=0.01) and method == "auto:spinemed-xray-landmarks@1.0"
    assert landmarks_from_measurements([]) is None
