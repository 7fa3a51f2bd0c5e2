"""What the AP landmark model refuses by its DICOM header: a lateral or oblique radiograph, a CT localiser (scout), a
CT slice; each with a message naming the file and why, through the core call, the ``spinemed xray landmarks``
command and the Radiograph tab (real DICOM files written by pydicom, the shipped model)."""
from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from app.cli import main
from core.xray.views import header_problems

DX = "1.2.840.10008.5.1.4.1.1.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"


def _dicom(path, modality="DX", sop=DX, **tags):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality, ds.PatientID = generate_uid(), generate_uid(), modality, "x"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 1200, 500, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if modality == "CT":
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 0, -1]
        ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 1.0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    for k, v in tags.items():
        setattr(ds, k, v)
    rng = np.random.default_rng(0)
    ds.PixelData = rng.integers(0, 4000, (1200, 500), dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _ds(**tags):
    ds = Dataset()
    for k, v in tags.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize("tags, words", [
    ({"ViewPosition": "LL"}, "left lateral view (ViewPosition LL)"),
    ({"ViewPosition": "RLO"}, "right oblique"),
    ({"Modality": "CT", "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, "CT localiser (scout)"),
    ({"Modality": "CT", "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]}, "single CT image"),
    ({"SeriesDescription": "Topogram 0.6 T20f"}, "localiser (scout) image (SeriesDescription"),
    ({"SeriesDescription": "L-SPINE LAT"}, "lateral or oblique view (SeriesDescription 'L-SPINE LAT')"),
])
def test_headers_that_are_not_an_ap_radiograph(tags, words):
    problems = header_problems(_ds(**tags))
    assert problems and words in problems[0], problems


@pytest.mark.parametrize("tags", [{}, {"ViewPosition": "AP"}, {"ViewPosition": "PA", "Modality": "DX"},
                                  {"SeriesDescription": "SCOLIOSIS AP/LAT", "ViewPosition": "AP"},
                                  {"SeriesDescription": "Whole spine PA standing"}])
def test_headers_of_an_ap_radiograph_pass(tags):
    assert header_problems(_ds(**tags)) == []


def test_view_code_sequence_lateral():
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "R-10232", "SRT", "Lateral"
    assert "lateral" in header_problems(_ds(ViewCodeSequence=Sequence([code])))[0]


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
