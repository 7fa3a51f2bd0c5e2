"""What the AP landmark model refuses by its DICOM header: a lateral or oblique radiograph, a CT localiser (scout), a
CT slice; each with a message naming the file and why, through the core call, the ``spinemed xray landmarks``
command and the Radiograph tab (real DICOM files written by pydicom, the shipped model)."""
from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from app.cli import main
from core.xray.views import header_problems
from tests.xray_support import header, write_dx

DX = "1.2.840.10008.5.1.4.1.1.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"


def _dicom(path, modality="DX", sop=DX, **tags):
    if modality == "CT":
        tags = {"ImagePositionPatient": [0, 0, 0], "ImageOrientationPatient": [1, 0, 0, 0, 0, -1],
                "PixelSpacing": [0.8, 0.8], "SliceThickness": 1.0, "RescaleIntercept": -1024, "RescaleSlope": 1,
                **tags}
    pixels = np.random.default_rng(0).integers(0, 4000, (1200, 500), dtype=np.uint16)
    return write_dx(path, pixels, sop=sop, Modality=modality, **tags)


@pytest.mark.parametrize("tags, words", [
    ({"ViewPosition": "LL"}, "left lateral view (ViewPosition LL)"),
    ({"ViewPosition": "RLO"}, "right oblique"),
    ({"Modality": "CT", "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, "CT localiser (scout)"),
    ({"Modality": "CT", "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]}, "single CT image"),
    ({"SeriesDescription": "Topogram 0.6 T20f"}, "localiser (scout) image (SeriesDescription"),
    ({"SeriesDescription": "L-SPINE LAT"}, "lateral or oblique view (SeriesDescription 'L-SPINE LAT')"),
])
def test_headers_that_are_not_an_ap_radiograph(tags, words):
    problems = header_problems(header(**tags))
    assert problems and words in problems[0], problems


@pytest.mark.parametrize("tags", [{}, {"ViewPosition": "AP"}, {"ViewPosition": "PA", "Modality": "DX"},
                                  {"SeriesDescription": "SCOLIOSIS AP/LAT", "ViewPosition": "AP"},
                                  {"SeriesDescription": "Whole spine PA standing"}])
def test_headers_of_an_ap_radiograph_pass(tags):
    assert header_problems(header(**tags)) == []


def test_view_code_sequence_lateral():
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "R-10232", "SRT", "Lateral"
    assert "lateral" in header_problems(header(ViewCodeSequence=Sequence([code])))[0]


def test_command_refuses_a_lateral_dx_naming_the_file(tmp_path, capsys):
    path = _dicom(tmp_path / "spine_lat.dcm", ViewPosition="LL")
    assert main(["xray", "landmarks", str(path)]) == 1
    out = capsys.readouterr().out
    assert "Not read: spine_lat.dcm: a left lateral view (ViewPosition LL)" in out, out
    assert "AP (or PA)" in out and "T1 " not in out


def test_core_refuses_a_ct_localiser(tmp_path):
    from core.library.opener import load_volume
    from core.xray.landmarks import LandmarkModel

    path = _dicom(tmp_path / "scout.dcm", modality="CT", sop=CT, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    volume, _ = load_volume(path)
    result = LandmarkModel().predict_volume(volume)
    assert not result.confident and result.landmarks.shape == (0, 2)
    assert result.message().startswith("Not read: scout.dcm: a CT localiser (scout) image"), result.message()


def test_radiograph_tab_says_why_it_refuses(qtbot, tmp_path):
    from PySide6.QtGui import QUndoStack

    from app.state import ViewerState
    from app.xray.layer import XrayLandmarks
    from app.xray.panel import XrayPanel
    from core.library.opener import load_volume
    from tests.app_support import wait_until

    volume, _ = load_volume(_dicom(tmp_path / "obl.dcm", ViewPosition="LLO"))
    state = ViewerState()
    state.set_volume(volume)
    model = XrayLandmarks(QUndoStack())
    panel = XrayPanel(state, model)
    qtbot.addWidget(panel)
    worker = panel.find()
    wait_until(lambda: not worker.is_running, 120, "the landmark model")
    assert panel.status.text().startswith("Not read: obl.dcm: a left oblique view"), panel.status.text()
    assert model.landmarks is None
