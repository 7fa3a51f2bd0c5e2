"""Measurements on projection radiographs: the scale each value uses (PixelSpacing, ImagerPixelSpacing with its
magnification caveat, a user calibration, or pixels), and distances, angles and Cobb angles with known answers."""
from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from core.xray.measure import (
    NO_CALIBRATION,
    angle,
    calibration_from_dicom,
    calibration_from_known_length,
    cobb,
    distance,
    recalibrated,
)
from tests.xray_support import write_dx


def _write_dx(path, **attrs):
    write_dx(path, np.zeros((64, 32), np.uint16), PhotometricInterpretation="MONOCHROME1", **attrs)
    return pydicom.dcmread(path, stop_before_pixels=True)


def test_imager_pixel_spacing_is_used_with_the_magnification_caveat(tmp_path):
    cal = calibration_from_dicom(_write_dx(tmp_path / "a.dcm", ImagerPixelSpacing=[0.15, 0.1]))
    assert cal.source == "ImagerPixelSpacing"
    assert (cal.mm_per_px_x, cal.mm_per_px_y) == (0.1, 0.15)   # DICOM gives row spacing first
    assert "detector" in cal.note and "magnification" in cal.note
    m = distance((0, 0), (100, 0), cal)
    assert m.value == pytest.approx(10.0) and m.unit == "mm"
    assert "ImagerPixelSpacing" in m.text() and "magnification" in m.text()
    assert distance((0, 0), (0, 100), cal).value == pytest.approx(15.0)


def test_estimated_magnification_factor_corrects_imager_spacing(tmp_path):
    ds = _write_dx(tmp_path / "b.dcm", ImagerPixelSpacing=[0.11, 0.11], EstimatedRadiographicMagnificationFactor=1.1)
    cal = calibration_from_dicom(ds)
    assert cal.source == "ImagerPixelSpacing/magnification"
    assert cal.mm_per_px_x == pytest.approx(0.1)
    assert "1.1" in cal.note


def test_pixel_spacing_is_preferred_and_says_so(tmp_path):
    ds = _write_dx(tmp_path / "c.dcm", PixelSpacing=[0.2, 0.2], ImagerPixelSpacing=[0.25, 0.25],
                   PixelSpacingCalibrationType="GEOMETRY")
    cal = calibration_from_dicom(ds)
    assert cal.source == "PixelSpacing" and cal.mm_per_px_x == 0.2
    assert "GEOMETRY" in cal.note
    same = calibration_from_dicom(_write_dx(tmp_path / "d.dcm", PixelSpacing=[0.2, 0.2],
                                            ImagerPixelSpacing=[0.2, 0.2]))
    assert "probably" in same.note and "magnification" in same.note


def test_no_spacing_means_pixels_said_on_the_value(tmp_path):
    cal = calibration_from_dicom(_write_dx(tmp_path / "e.dcm"))
    assert not cal.calibrated and cal.unit == "px"
    m = distance((10, 10), (13, 14), cal)
    assert m.value == pytest.approx(5.0) and m.unit == "px"
    assert m.text() == "5 px (no calibration)"
    bad = calibration_from_dicom(_write_dx(tmp_path / "f.dcm", ImagerPixelSpacing=[0, 0.1]))
    assert bad is NO_CALIBRATION


def test_user_calibration_from_a_known_length():
    cal = calibration_from_known_length((100, 100), (100, 300), 50.0)    # a 50 mm ruler over 200 px
    assert cal.source == "user calibration" and cal.mm_per_px_x == pytest.approx(0.25)
    assert distance((0, 0), (300, 400), cal).value == pytest.approx(125.0)
    aniso = calibration_from_known_length((0, 0), (0, 100), 20.0, pixel_aspect=2.0)  # rows twice as tall
    assert aniso.mm_per_px_y == pytest.approx(0.2) and aniso.mm_per_px_x == pytest.approx(0.1)
    with pytest.raises(ValueError, match="positive"):
        calibration_from_known_length((0, 0), (10, 0), -3)
    with pytest.raises(ValueError, match="shorter than 2 pixels"):
        calibration_from_known_length((0, 0), (1, 0), 10)


def test_angle_known_answers():
    assert angle((10, 0), (0, 0), (0, 10)).value == pytest.approx(90.0)
    assert angle((10, 0), (0, 0), (10, 10)).value == pytest.approx(45.0)
    assert angle((10, 0), (0, 0), (-10, 0)).value == pytest.approx(180.0)
    with pytest.raises(ValueError):
        angle((0, 0), (0, 0), (1, 1))


def test_cobb_known_answers_and_large_curves():
    def line(tilt_deg, cx=0.0, cy=0.0, half=20.0):
        t = math.radians(tilt_deg)
        d = np.array([math.cos(t), -math.sin(t)]) * half       # y down: rising to the right is -y
        return (tuple(np.array([cx, cy]) - d), tuple(np.array([cx, cy]) + d))

    m = cobb(line(30), line(-20, cy=300))
    assert m.value == pytest.approx(50.0) and m.unit == "deg"
    assert m.details["tilts_deg"] == pytest.approx([30.0, -20.0])
    assert cobb(line(60), line(-50, cy=300)).value == pytest.approx(110.0)   # not folded to 70
    reversed_line = tuple(reversed(line(30)))
    assert cobb(reversed_line, line(-20, cy=300)).value == pytest.approx(50.0)
    assert m.text() == "50.0° (image plane)"


def test_stored_form_keeps_image_points_and_scale():
    cal = calibration_from_known_length((0, 0), (0, 100), 10.0)
    stored = distance((0, 0), (0, 50), cal).to_spine_measurement(level="L3")
    assert stored.unit == "mm" and stored.value == pytest.approx(5.0) and stored.level == "L3"
    assert stored.points == []
    assert stored.details["image_points_px"] == [[0.0, 0.0], [0.0, 50.0]]
    assert stored.details["scale"].startswith("calibrated by user") and stored.details["scale_source"] == "user calibration"


def test_the_chat_and_report_see_a_distances_scale_with_its_value(tmp_path):
    """The short form (consultation context, report) names the scale: a detector-spacing length is not read as the
    patient's, a pixel length not as millimetres; recalibrating changes the words with the value."""
    imager = calibration_from_dicom(_write_dx(tmp_path / "a.dcm", ImagerPixelSpacing=[0.15, 0.15]))
    stored = distance((0, 0), (100, 0), imager).to_spine_measurement(level="L3")
    short = stored.to_context()
    assert short.unit == "mm" and "at the detector (magnified)" in short.name
    pixels = distance((0, 0), (100, 0)).to_spine_measurement().to_context()
    assert pixels.unit == "px" and "pixels, no scale" in pixels.name
    user = calibration_from_known_length((0, 0), (0, 100), 10.0)
    again = recalibrated(distance((0, 0), (100, 0)).to_spine_measurement(), user).to_context()
    assert again.value == pytest.approx(10.0) and "calibrated by user" in again.name
    assert "scale" not in angle((0, 0), (1, 0), (1, 1), imager).to_spine_measurement().to_context().name


def test_calibration_of_a_loaded_volume(tmp_path):
    from PIL import Image

    from core.library.opener import load_volume
    from core.xray.measure import calibration_for_volume

    png = tmp_path / "ap.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 200), dtype=np.uint8)).save(png)
    volume, _ = load_volume(png)
    assert calibration_for_volume(volume) is NO_CALIBRATION
    _write_dx(tmp_path / "dx.dcm", ImagerPixelSpacing=[0.14, 0.14], StudyInstanceUID=generate_uid(),
              SeriesInstanceUID=generate_uid(), PatientID="x")
    volume, _ = load_volume(tmp_path / "dx.dcm")
    cal = calibration_for_volume(volume)
    assert cal.source == "ImagerPixelSpacing" and cal.mm_per_px_x == pytest.approx(0.14)
