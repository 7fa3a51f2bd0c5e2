"""Benchmark: scan + load of a 512x512x400 CT series, our DICOM loader vs SimpleITK's ImageSeriesReader (GDCM).

The synthetic series (int16, uncompressed, realistic headers, anatomy-like content) is written once with pydicom
into ``--workdir`` (default /tmp/spinemed-bench) and reused. Both readers run on the same files in the same
process, alternating, after one warm-up each (so both read from the OS page cache). Prints the median times and
``ratio (ours / SimpleITK): X.XX``.

    .venv/bin/python benchmarks/bench_dicom_import.py [--workdir DIR] [--repeats 5] [--slices 400]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.studies import dicom as dicom_loader
from core.studies import load_series, scan

FORMAT_VERSION = "2"
ROWS = COLS = 512


def _phantom_slice(z: int, n_slices: int, rng: np.random.Generator) -> np.ndarray:
    """HU image of a trunk cross-section: body, fat, lungs (upper part), vertebra with canal, organs, noise."""
    y, x = np.mgrid[0:ROWS, 0:COLS].astype(np.float32)
    cx, cy = COLS / 2, ROWS / 2 + 10
    t = z / max(1, n_slices - 1)
    hu = np.full((ROWS, COLS), -1000, dtype=np.float32)
    body = ((x - cx) / (190 - 20 * t)) ** 2 + ((y - cy) / 140) ** 2
    hu[body < 1.0] = -90  # subcutaneous fat
    hu[body < 0.85] = 40  # muscle / soft tissue
    if t > 0.45:  # lungs in the upper part of the stack
        for side in (-1, 1):
            lung = ((x - cx - side * 75) / 55) ** 2 + ((y - cy + 10) / (80 * (t - 0.3))) ** 2
            hu[lung < 1.0] = -850
    else:  # liver / kidneys lower down
        hu[((x - cx + 60) / 85) ** 2 + ((y - cy + 20) / 60) ** 2 < 1.0] = 60
        for side in (-1, 1):
            hu[((x - cx - side * 70) / 25) ** 2 + ((y - cy - 60) / 35) ** 2 < 1.0] = 30
    level = (z % 25) / 25.0  # a vertebra every ~25 slices, disc in between
    vy = cy + 75
    r = np.hypot(x - cx, y - vy)
    if level < 0.8:
        hu[r < 22] = 250 + 80 * np.sin(x[r < 22] / 3.0)  # cancellous bone
        hu[(r >= 22) & (r < 25)] = 900  # cortical rim
    else:
        hu[r < 24] = 80  # intervertebral disc
    canal = np.hypot(x - cx, y - vy - 38)
    hu[(canal < 20) & (canal >= 12)] = 700  # posterior arch
    hu[canal < 12] = 15  # spinal canal
    hu += rng.normal(0.0, 12.0, size=hu.shape).astype(np.float32)
    return hu


def _dataset(z: int, n_slices: int, study_uid: str, series_uid: str, frame_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        setattr(ds, keyword, "20240115")
    ds.StudyTime, ds.SeriesTime, ds.AcquisitionTime, ds.ContentTime = "101500", "101742.12", "101701", "101701"
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "SYNTHETIC"
    ds.InstitutionName = ""
    ds.ReferringPhysicianName = ""
    ds.StationName = "BENCH"
    ds.StudyDescription = "CT SPINE"
    ds.SeriesDescription = "Spine 0.8 Br64"
    ds.ManufacturerModelName = "Bench CT"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "CTSPINE", "L", "CT spine"
    ds.ProcedureCodeSequence = Sequence([code])
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref.ReferencedSOPInstanceUID = generate_uid()
    ds.ReferencedPerformedProcedureStepSequence = Sequence([ref])
    ds.PatientName = "Anonymous"
    ds.PatientID = "BENCH0001"
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.PatientAge = "058Y"
    ds.PatientWeight = "64"
    ds.BodyPartExamined = "SPINE"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.SoftwareVersions = "1.0"
    ds.ProtocolName = "Spine"
    ds.ReconstructionDiameter = "500"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "160"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = "250"
    ds.Exposure = "125"
    ds.FilterType = "FLAT"
    ds.ConvolutionKernel = "Br64"
    ds.PatientPosition = "FFS"
    ds.add_new(0x00091010, "LO", "SYNTH PRIVATE")
    ds.add_new(0x00091001, "LO", "private value")
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = "3"
    ds.AcquisitionNumber = "1"
    ds.InstanceNumber = str(z + 1)
    spacing = 0.8
    ds.ImagePositionPatient = ["-200.0", "-180.0", f"{-600.0 + z * spacing:.2f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = f"{-600.0 + z * spacing:.2f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ROWS, COLS
    ds.PixelSpacing = ["0.78125", "0.78125"]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.WindowCenter, ds.WindowWidth = ["40", "400"], ["400", "2000"]
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    return ds


def write_series(folder: Path, n_slices: int) -> None:
    marker = folder / "COMPLETE"
    if marker.is_file() and marker.read_text() == f"{FORMAT_VERSION} {n_slices}":
        return
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.dcm"):
        old.unlink()
    rng = np.random.default_rng(7)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    order = rng.permutation(n_slices)  # file names do not follow slice order
    print(f"writing {n_slices} slices to {folder} (once) ...", flush=True)
    for name_index, z in enumerate(order):
        ds = _dataset(int(z), n_slices, study, series, frame)
        stored = np.clip(np.rint(_phantom_slice(int(z), n_slices, rng)) + 1024, -2048, 4095).astype(np.int16)
        ds.PixelData = stored.tobytes()
        ds.save_as(folder / f"IM{name_index:05d}.dcm", enforce_file_format=True)
    marker.write_text(f"{FORMAT_VERSION} {n_slices}")


def run_ours(folder: Path):
    dicom_loader.clear_header_cache()  # every run starts cold, as a fresh import would
    result = scan(folder)
    assert len(result.series) == 1 and not result.problems, (result.series, result.problems)
    return load_series(result.series[0])


def load_cold(folder: Path):
    """Re-open a series already in the library: headers are read again (nothing cached), then pixels."""
    source = scan(folder).series[0]
    dicom_loader.clear_header_cache()
    start = time.perf_counter()
    load_series(source)
    return time.perf_counter() - start


def run_sitk(folder: Path):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(folder))
    reader.SetFileNames(names)
    return reader.Execute()


def check_same(ours, itk_image) -> None:
    import SimpleITK as sitk

    theirs = sitk.GetArrayViewFromImage(itk_image)  # (z, y, x)
    mine = np.asarray(ours.data).transpose(2, 1, 0)
    assert mine.shape == theirs.shape, (mine.shape, theirs.shape)
    assert np.array_equal(mine.astype(np.int32), theirs.astype(np.int32)), "pixel values differ"
    assert np.allclose(ours.affine[:3, 3], itk_image.GetOrigin(), atol=1e-3), "origin differs"
    assert np.allclose(ours.spacing, itk_image.GetSpacing(), atol=1e-4), "spacing differs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/spinemed-bench"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--slices", type=int, default=400)
    args = parser.parse_args(argv)
    folder = args.workdir / f"ct_{args.slices}"
    write_series(folder, args.slices)

    volume, itk_image = run_ours(folder), run_sitk(folder)  # warm-up: page cache, imports
    check_same(volume, itk_image)
    print(f"ours: {volume.shape} {volume.data.dtype}; SimpleITK: {itk_image.GetSize()} "
          f"{itk_image.GetPixelIDTypeAsString()}; pixels and geometry identical")
    del volume, itk_image
    ours, theirs = [], []
    for _ in range(args.repeats):
        for runner, times in ((run_ours, ours), (run_sitk, theirs)):
            start = time.perf_counter()
            result = runner(folder)
            times.append(time.perf_counter() - start)
            del result
    cold = statistics.median(load_cold(folder) for _ in range(args.repeats))
    ours_t, theirs_t = statistics.median(ours), statistics.median(theirs)
    print(f"ours (scan+load):           median {ours_t:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in ours)})")
    print(f"SimpleITK (GDCM names+read): median {theirs_t:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in theirs)})")
    print(f"ours load_series alone, headers not cached (re-opening a stored series): median {cold:.3f} s")
    print(f"ratio (ours / SimpleITK): {ours_t / theirs_t:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
