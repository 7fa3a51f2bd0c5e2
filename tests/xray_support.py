"""Synthetic AP spine landmark sets with known tilts, the path of the shared AASCE data (tests skip without it), DICOM
radiographs written by pydicom, and a radiograph open in a real slice view with its measurements (Qt imported only
there)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
AASCE = REPO.parent / "shared" / "data" / "xray-aasce-train"


def aasce_dir() -> Path:
    if not (AASCE / "labels" / "landmarks.csv").is_file():
        pytest.skip(f"shared AASCE radiographs not found at {AASCE} (only present beside the project checkout)")
    return AASCE


def column(endplate_tilts, pitch: float = 60.0, half_width: float = 25.0, height: float = 40.0,
           top=(500.0, 150.0)) -> np.ndarray:
    """(68, 2) landmarks of 17 vertebrae whose 34 endplates have the given tilts (degrees, positive = rising to the
    image's right). The column runs perpendicular to each vertebra's mean tilt, as a real one does."""
    t = np.radians(np.asarray(endplate_tilts, dtype=float).reshape(17, 2))
    pts = np.zeros((17, 4, 2))
    x, y = top
    for v in range(17):
        mean = t[v].mean()
        down = np.array([math.sin(mean), math.cos(mean)])      # perpendicular to the endplates, pointing down
        centre = np.array([x, y])
        for e, sign in ((0, -1), (1, 1)):                       # superior endplate above the centre
            mid = centre + sign * down * height / 2
            along = np.array([math.cos(t[v, e]), -math.sin(t[v, e])])
            pts[v, 2 * e] = mid - along * half_width
            pts[v, 2 * e + 1] = mid + along * half_width
        x, y = centre + down * pitch
    return pts.reshape(68, 2)


def write_aasce_folder(data: Path, n: int = 2) -> list[str]:
    """``n`` synthetic AP radiographs in the AASCE layout (images/, labels/{filenames,landmarks,angles}.csv), each
    a column of bright blocks at known corners, one patient each; returns the file names."""
    import csv

    from PIL import Image

    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    names, rows, angles = [], [], []
    for i in range(n):
        h, w = 1800, 800
        lm = column(np.repeat(np.linspace(10 - 5 * i, -10, 17), 2), pitch=90, half_width=40, height=65,
                    top=(400, 160))
        img = np.full((h, w), 40, np.uint8)
        yy, xx = np.mgrid[0:h, 0:w]
        for q in lm.reshape(17, 4, 2):
            c = q.mean(axis=0)
            img[(np.abs(xx - c[0]) < 38) & (np.abs(yy - c[1]) < 30)] = 200
        name = f"case-{i} A AP.jpg"
        Image.fromarray(img).save(data / "images" / name)
        names.append(name)
        rows.append(list(lm[:, 0] / w) + list(lm[:, 1] / h))
        angles.append([20.0 - 5 * i, 10.0, 5.0])
    for fname, rws in (("filenames.csv", [[nm] for nm in names]), ("landmarks.csv", rows), ("angles.csv", angles)):
        with (data / "labels" / fname).open("w", newline="") as f:
            csv.writer(f).writerows(rws)
    return names


def radiograph_in_view(qtbot, tmp_path: Path, rows_cols: np.ndarray, series_uid: str, spacing: float = 0.15,
                       size: tuple[int, int] = (600, 900)):
    """A DX radiograph (``rows_cols``: the image as shown, rows first) open in a shown SliceView, with a
    MeasurementsModel on a real SQLite store: (state, view, measurements, store, undo). Close ``view`` after."""
    from PySide6.QtGui import QUndoStack

    from app import imaging
    from app.measure.model import MeasurementsModel
    from app.state import ViewerState
    from app.views.slice_view import SliceView
    from core.spine.measure.store import MeasurementStore
    from core.studies.volume import Volume

    state = ViewerState()
    view = SliceView(state, imaging.AXIAL)
    view.radiograph = True
    view.resize(*size)
    view.show()
    qtbot.addWidget(view)
    qtbot.waitExposed(view)
    data = np.ascontiguousarray(np.asarray(rows_cols).T)[:, :, None].astype(np.int16)  # i = column, j = row
    state.set_volume(Volume(data, np.diag([spacing, spacing, 1.0, 1.0]), modality="DX", series_uid=series_uid))
    undo = QUndoStack()
    store = MeasurementStore.open(tmp_path / "library.db")
    measurements = MeasurementsModel(state, store, undo, user="tester")
    measurements.open_series(series_uid)
    return state, view, measurements, store, undo


def reopen_finished_run(run: Path, epochs: int) -> None:
    """Let a finished training run in ``run`` go on to ``epochs``: the saved settings get the new epoch count and
    the checkpoint is marked unfinished, as a user extending a run would (resume tests of both landmark stages)."""
    import json

    import torch

    saved = json.loads((run / "config.json").read_text())
    saved["epochs"] = epochs
    (run / "config.json").write_text(json.dumps(saved))
    ck = torch.load(run / "checkpoint.pt", weights_only=False)
    ck["state"]["finished"] = False
    torch.save(ck, run / "checkpoint.pt")


DX_SOP = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def write_dx(path: Path, pixels: np.ndarray, sop: str = DX_SOP, **tags) -> Path:
    """A single-frame DICOM file written by pydicom: DX, MONOCHROME2, 16 bits allocated, 12 stored, new UIDs;
    ``tags`` are set last, so they may change any of these (Modality, PhotometricInterpretation, ...)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality, ds.PatientID = generate_uid(), generate_uid(), "DX", "x"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.asarray(pixels, np.uint16).tobytes()
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def header(**tags):
    """A DICOM header (pydicom Dataset, no file) with ``tags``."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    for k, v in tags.items():
        setattr(ds, k, v)
    return ds
