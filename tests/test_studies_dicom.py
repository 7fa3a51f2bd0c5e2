"""DICOM loader: the real JPEG 2000 CT sample, and series written with pydicom in tmp_path."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
    generate_uid,
)

from core.studies import StudyLoadError, dicom_load, load_series, scan
from core.studies import dicom as dicom_loader
from core.tasks import Cancelled, CancelToken

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
GRAYSCALE_PR = "1.2.840.10008.5.1.4.1.1.11.1"
ROWS, COLS = 6, 5  # not square, so a swapped row/column axis shows


def _dataset(sop_class: str, modality: str, series_uid: str, study_uid: str = "1.2.826.0.1.3680043.8.498.1",
             transfer_syntax: str = ExplicitVRLittleEndian) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID-12345"
    ds.PatientBirthDate = "19700601"
    ds.StudyDate = "20240115"
    ds.PatientSex = "F"
    ds.SeriesDescription = "test series"
    return ds


def _set_pixels(ds: Dataset, pixels: np.ndarray, bits_stored: int | None = None,
                photometric: str = "MONOCHROME2") -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = pixels.tobytes()


def ct_slice(position, *, series_uid: str, value: int, iop=(1, 0, 0, 0, 1, 0), instance: int = 1,
             slope="1", intercept="-1024", dtype=np.int16, rows: int = ROWS, cols: int = COLS,
             thickness: str = "5") -> Dataset:
    """Slice whose stored pixel (row j, column i) is ``value + 10*j + i``: each slice is recognisable."""
    ds = _dataset(CT_STORAGE, "CT", series_uid)
    ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
    ds.ImageOrientationPatient = [str(v) for v in iop]
    ds.PixelSpacing = ["0.5", "0.7"]  # 0.5 mm between rows, 0.7 mm between columns
    ds.SliceThickness = thickness
    ds.InstanceNumber = str(instance)
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    j, i = np.mgrid[0:rows, 0:cols]
    _set_pixels(ds, (value + 10 * j + i).astype(dtype))
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_stack(folder: Path, zs, *, series_uid: str | None = None, shuffle_names: bool = True, **kw) -> list[Path]:
    """Axial slices at the given z; instance numbers deliberately wrong and file names in random order."""
    series_uid = series_uid or generate_uid()
    names = list(range(len(zs)))
    if shuffle_names:
        random.Random(3).shuffle(names)
    paths = []
    for n, z in enumerate(zs):
        ds = ct_slice((-10.0, -20.0, z), series_uid=series_uid, value=1000 + 100 * n, instance=7 * (len(zs) - n), **kw)
        paths.append(save(ds, folder / f"img{names[n]:03d}.dcm"))
    return paths


def only_series(result):
    assert not result.problems, result.problems
    assert len(result.series) == 1, result.series
    return result.series[0]


# ---------------------------------------------------------------------------------------------------------------
# The real JPEG 2000 CT sample


@pytest.fixture
def ct_sample(samples) -> Path:
    folder = samples / "ts_ct_dicom_T11-T12"
    if not (folder / "dicom").is_dir():
        pytest.skip(f"CT DICOM sample missing at {folder}")
    return folder


def test_jpeg2000_ct_sample_loads_with_hounsfield_units(ct_sample):
    source = only_series(scan(ct_sample / "dicom"))
    assert source.kind == "dicom" and source.modality == "CT" and source.n_images == 20
    assert source.series_description == "CT Body 3.0"
    assert source.warnings == []
    volume = load_series(source)
    assert volume.shape == (512, 512, 20)
    assert volume.data.dtype == np.int16
    assert volume.spacing == pytest.approx((0.9765625, 0.9765625, 2.0))  # SliceThickness is 3 mm: not used
    assert volume.orientation() == "LPS"
    assert volume.affine[2, 3] == pytest.approx(-804.5)
    assert volume.voxel_to_patient([0, 0, 19])[2] == pytest.approx(-766.5)
    air = volume.data[:20, :20, :]  # corner outside the patient
    assert -1030 <= float(np.median(air)) <= -950
    assert float(np.percentile(volume.data, 99.9)) > 300  # bone
    assert volume.data.min() >= -1100 and volume.data.max() < 4000


def test_ct_sample_geometry_matches_its_segmentation(ct_sample):
    """seg_total_v2.nii.gz is on the same grid (README): T12 lands on the same LPS point and on bone."""
    volume = load_series(only_series(scan(ct_sample / "dicom")))
    seg = nib.load(ct_sample / "seg_total_v2.nii.gz")
    seg_lps = seg.affine.copy()
    seg_lps[:2] *= -1
    # Same grid: the NIfTI voxel->voxel map into our array is a signed permutation with integer offsets.
    to_ours = np.linalg.inv(volume.affine) @ seg_lps
    assert np.allclose(to_ours, np.rint(to_ours), atol=1e-4)
    labels = np.asarray(seg.dataobj)
    t12 = np.argwhere(labels == 32)
    centroid_lps_nifti = seg_lps[:3, :3] @ t12.mean(axis=0) + seg_lps[:3, 3]
    ours_ijk = np.rint(t12 @ to_ours[:3, :3].T + to_ours[:3, 3]).astype(int)
    assert np.allclose(volume.voxel_to_patient(ours_ijk.mean(axis=0)), centroid_lps_nifti, atol=1e-3)
    derived = json.loads((ct_sample / "centroids_DERIVED.json").read_text())["levels"]["T12"]["world_mm"]
    assert centroid_lps_nifti == pytest.approx([-derived[0], -derived[1], derived[2]], abs=0.1)
    hu_in_t12 = volume.data[ours_ijk[:, 0], ours_ijk[:, 1], ours_ijk[:, 2]]
    assert float(hu_in_t12.mean()) > 150  # vertebral bone, so rows were not flipped
    assert float(np.median(volume.data[ours_ijk[:, 0], 511 - ours_ijk[:, 1], ours_ijk[:, 2]])) < 150


def test_ct_sample_copied_in_shuffled_order_loads_the_same(ct_sample, tmp_path):
    files = sorted((ct_sample / "dicom").iterdir())
    reference = load_series(only_series(scan(ct_sample / "dicom")))
    shuffled = files[:]
    random.Random(11).shuffle(shuffled)
    for n, src in enumerate(shuffled):
        shutil.copy(src, tmp_path / f"{n:02d}")
    volume = load_series(only_series(scan(tmp_path)))
    assert np.array_equal(volume.data, reference.data)
    assert np.allclose(volume.affine, reference.affine)


# ---------------------------------------------------------------------------------------------------------------
# Sorting and geometry


def _slice_of(volume, value: int) -> int:
    """Index k of the slice whose first stored pixel was ``value`` (after rescale by -1024)."""
    matches = np.nonzero(volume.data[0, 0, :] == value - 1024)[0]
    assert len(matches) == 1, (value, volume.data[0, 0, :])
    return int(matches[0])


def test_slices_sorted_by_position_not_instance_number_or_names(tmp_path):
    zs = [7.5, 0.0, 10.0, 2.5, 5.0]  # spacing 2.5 mm, SliceThickness says 5 mm
    write_stack(tmp_path, zs)
    source = only_series(scan(tmp_path))
    volume = load_series(source)
    assert volume.shape == (COLS, ROWS, 5)
    assert volume.spacing == pytest.approx((0.7, 0.5, 2.5))
    for n, z in enumerate(zs):
        k = _slice_of(volume, 1000 + 100 * n)
        assert volume.voxel_to_patient([0, 0, k]) == pytest.approx([-10.0, -20.0, z])
    # data[i, j, k]: i = column, j = row
    assert volume.data[3, 0, 0] - volume.data[0, 0, 0] == 3
    assert volume.data[0, 2, 0] - volume.data[0, 0, 0] == 20
    assert [dicom_loader.read_header(p).ipp[2] for p in source.files] == sorted(zs)


def test_sagittal_slices_sorted_along_the_normal(tmp_path):
    iop = (0, 1, 0, 0, 0, -1)  # rows run anterior->posterior, columns head->feet; normal = -x (towards right)
    series = generate_uid()
    xs = [4.0, -2.0, 1.0, 7.0]
    for n, x in enumerate(xs):
        save(ct_slice((x, -50.0, 80.0), series_uid=series, value=1000 + 100 * n, iop=iop, instance=1),
             tmp_path / f"s{n}.dcm")
    volume = load_series(only_series(scan(tmp_path)))
    assert volume.orientation() == "PIR"
    assert volume.spacing[2] == pytest.approx(3.0)
    for n, x in enumerate(xs):
        assert volume.voxel_to_patient([0, 0, _slice_of(volume, 1000 + 100 * n)]) == pytest.approx([x, -50.0, 80.0])
    assert volume.voxel_to_patient([1, 1, 0]) - volume.voxel_to_patient([0, 0, 0]) == pytest.approx([0, 0.7, -0.5])


def test_missing_slice_is_a_warning_and_a_blank_slice(tmp_path):
    write_stack(tmp_path, [0.0, 2.0, 4.0, 8.0, 10.0])
    source = only_series(scan(tmp_path))
    assert any("missing slice" in w and "4.0" in w and "8.0" in w for w in source.warnings), source.warnings
    volume = load_series(source)
    assert volume.shape[2] == 6 and volume.spacing[2] == pytest.approx(2.0)
    assert np.all(volume.data[:, :, 3] == volume.data.min())
    assert volume.voxel_to_patient([0, 0, 4])[2] == pytest.approx(8.0)


def test_mixed_sizes_and_orientations_in_one_series_are_split(tmp_path):
    series = generate_uid()
    for n in range(3):
        save(ct_slice((0, 0, 2.0 * n), series_uid=series, value=1000), tmp_path / f"ax{n}.dcm")
    for n in range(2):
        save(ct_slice((2.0 * n, 0, 0), series_uid=series, value=1000, iop=(0, 1, 0, 0, 0, -1)), tmp_path / f"sag{n}.dcm")
    save(ct_slice((0, 0, 50), series_uid=series, value=1000, rows=4, cols=4), tmp_path / "small.dcm")
    result = scan(tmp_path)
    assert not result.problems
    assert sorted(s.n_images for s in result.series) == [1, 2, 3]
    assert len({s.series_uid for s in result.series}) == 3
    for source in result.series:
        assert any("mixed series" in w for w in source.warnings)
        load_series(source)  # each part loads on its own


def test_two_series_uids_in_one_folder_give_two_series(tmp_path):
    write_stack(tmp_path / "mixed", [0, 1, 2], series_uid="1.2.3.4.1")
    for n, z in enumerate([0, 3]):
        save(ct_slice((0, 0, z), series_uid="1.2.3.4.2", value=1), tmp_path / "mixed" / f"other{n}.dcm")
    result = scan(tmp_path)
    assert not result.problems
    assert {(s.series_uid, s.n_images) for s in result.series} == {("1.2.3.4.1", 3), ("1.2.3.4.2", 2)}


def test_repeated_positions_split_by_echo(tmp_path):
    series = generate_uid()
    for echo in (1, 2):
        for n in range(3):
            ds = ct_slice((0, 0, 2.0 * n), series_uid=series, value=100 * echo)
            ds.EchoNumbers = str(echo)
            save(ds, tmp_path / f"e{echo}_{n}.dcm")
    result = scan(tmp_path)
    assert [s.n_images for s in result.series] == [3, 3]
    assert all(any("echo" in w for w in s.warnings) for s in result.series)


# ---------------------------------------------------------------------------------------------------------------
# Pixel values


def test_rescale_slope_and_intercept(tmp_path):
    write_stack(tmp_path / "int", [0, 1], slope="1", intercept="-1024")
    v = load_series(only_series(scan(tmp_path / "int")))
    assert v.data.dtype == np.int16
    assert sorted(v.data[0, 0, :].tolist()) == [1000 - 1024, 1100 - 1024]
    write_stack(tmp_path / "float", [0, 1], slope="0.5", intercept="10")
    v = load_series(only_series(scan(tmp_path / "float")))
    assert v.data.dtype == np.float32
    assert sorted(v.data[0, 0, :].tolist()) == [510.0, 560.0]
    write_stack(tmp_path / "none", [0, 1], slope=None, dtype=np.uint16)
    v = load_series(only_series(scan(tmp_path / "none")))
    assert v.data.dtype == np.uint16 and sorted(v.data[0, 0, :].tolist()) == [1000, 1100]


def test_rescale_beyond_int16_falls_back_to_float(tmp_path):
    series = generate_uid()
    for n in range(2):
        ds = ct_slice((0, 0, n), series_uid=series, value=0, dtype=np.uint16, intercept="-1024")
        pixels = np.full((ROWS, COLS), 60000 + n, dtype=np.uint16)
        ds.PixelData = pixels.tobytes()
        save(ds, tmp_path / f"{n}.dcm")
    v = load_series(only_series(scan(tmp_path)))
    assert v.data.dtype == np.float32
    assert sorted(v.data[0, 0, :].tolist()) == [60000 - 1024, 60001 - 1024]


def test_signed_12_bit_values_are_sign_extended(tmp_path):
    ds = ct_slice((0, 0, 0), series_uid=generate_uid(), value=0, slope=None)
    stored = np.full((ROWS, COLS), 0x0FFF, dtype=np.uint16)  # -1 in 12-bit two's complement, high bits clear
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 1
    ds.PixelData = stored.tobytes()
    save(ds, tmp_path / "a.dcm")
    v = load_series(only_series(scan(tmp_path)))
    assert v.data.dtype == np.int16 and np.all(v.data == -1)


def test_multiframe_enhanced_ct_sorted_by_per_frame_positions(tmp_path):
    ds = _dataset(ENHANCED_CT_STORAGE, "CT", generate_uid())
    zs = [6.0, 0.0, 4.0, 2.0]
    frames = np.stack([np.full((ROWS, COLS), 1000 + 100 * n, dtype=np.int16) for n in range(len(zs))])
    _set_pixels(ds, frames)
    ds.NumberOfFrames = len(zs)
    measures, orient, transform = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = ["0.5", "0.7"], "5"
    orient.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = "1", "-1024", "HU"
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for z in zs:
        position, item = Dataset(), Dataset()
        position.ImagePositionPatient = ["-10", "-20", str(z)]
        item.PlanePositionSequence = Sequence([position])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    save(ds, tmp_path / "enhanced.dcm")
    source = only_series(scan(tmp_path))
    assert source.n_images == 4
    volume = load_series(source)
    assert volume.shape == (COLS, ROWS, 4)
    assert volume.spacing == pytest.approx((0.7, 0.5, 2.0))
    assert volume.data[0, 0, :].tolist() == [1100 - 1024, 1300 - 1024, 1200 - 1024, 1000 - 1024]
    assert volume.voxel_to_patient([0, 0, 3]) == pytest.approx([-10, -20, 6.0])


def test_multiframe_without_frame_positions_uses_spacing_between_slices(tmp_path):
    ds = _dataset(CT_STORAGE, "NM", generate_uid())
    _set_pixels(ds, np.arange(3 * ROWS * COLS, dtype=np.uint16).reshape(3, ROWS, COLS))
    ds.NumberOfFrames = 3
    ds.ImagePositionPatient = ["0", "0", "0"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = ["2", "2"]
    ds.SpacingBetweenSlices = "4"
    save(ds, tmp_path / "nm.dcm")
    volume = load_series(only_series(scan(tmp_path)))
    assert volume.shape == (COLS, ROWS, 3) and volume.spacing == pytest.approx((2, 2, 4))
    assert volume.data[1, 0, 2] == 2 * ROWS * COLS + 1


def test_cr_radiograph_monochrome1_is_inverted(tmp_path):
    ds = _dataset(CR_STORAGE, "CR", generate_uid())
    stored = np.arange(ROWS * COLS, dtype=np.uint16).reshape(ROWS, COLS) * 100
    _set_pixels(ds, stored, bits_stored=12, photometric="MONOCHROME1")
    ds.ImagerPixelSpacing = ["0.15", "0.2"]
    ds.PatientOrientation = ["L", "F"]
    save(ds, tmp_path / "chest.dcm")
    source = only_series(scan(tmp_path))
    assert source.modality == "CR" and source.warnings == []
    volume = load_series(source)
    assert volume.is_2d and volume.shape == (COLS, ROWS, 1)
    assert np.array_equal(volume.data[:, :, 0], (4095 - stored).T)
    assert volume.spacing[:2] == pytest.approx((0.2, 0.15))
    assert volume.orientation()[:2] == "LI"


def test_dx_without_spacing_warns_measurements_in_pixels(tmp_path):
    ds = _dataset(DX_STORAGE, "DX", generate_uid())
    _set_pixels(ds, np.zeros((ROWS, COLS), dtype=np.uint8))
    save(ds, tmp_path / "dx.dcm")
    source = only_series(scan(tmp_path))
    assert "pixel spacing unknown: measurements in pixels" in source.warnings
    volume = load_series(source)
    assert volume.spacing == pytest.approx((1.0, 1.0, 1.0)) and volume.is_2d


def test_file_without_preamble_is_found_by_content(tmp_path):
    ds = ct_slice((0, 0, 0), series_uid=generate_uid(), value=5)
    del ds.file_meta
    pydicom.dcmwrite(tmp_path / "IM0001", ds, implicit_vr=True, little_endian=True)  # no preamble, no meta
    assert (tmp_path / "IM0001").read_bytes()[128:132] != b"DICM"
    volume = load_series(only_series(scan(tmp_path)))
    assert volume.data[0, 0, 0] == 5 - 1024


def test_compressed_series_decodes_in_worker_processes(tmp_path, monkeypatch):
    paths = write_stack(tmp_path / "raw", [0, 1, 2], rows=64, cols=64)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.compress(JPEG2000Lossless)
        save(ds, tmp_path / "j2k" / path.name)
    expected = load_series(only_series(scan(tmp_path / "raw")))
    monkeypatch.setattr(dicom_load, "_PROCESS_MIN_SLICES", 2)
    volume = load_series(only_series(scan(tmp_path / "j2k")))
    assert np.array_equal(volume.data, expected.data)


# ---------------------------------------------------------------------------------------------------------------
# Bad inputs, demographics, cancel


def test_bad_files_are_reported_and_good_files_still_import(tmp_path):
    write_stack(tmp_path, [0, 2, 4])
    sr = _dataset(COMPREHENSIVE_SR, "SR", generate_uid())
    save(sr, tmp_path / "report.dcm")
    pr = _dataset(GRAYSCALE_PR, "PR", generate_uid())
    save(pr, tmp_path / "sub" / "pstate.dcm")
    full = save(ct_slice((0, 0, 0), series_uid=generate_uid(), value=0, rows=64, cols=64), tmp_path / "cut.dcm")
    full.write_bytes(full.read_bytes()[:-2000])
    rng = np.random.default_rng(1)
    (tmp_path / "noise.dcm").write_bytes(b"\x55" + rng.bytes(4095))
    (tmp_path / "labels.nii").write_text("this is not an image\n")
    (tmp_path / "notes.txt").write_text("ignored silently")
    (tmp_path / "meta.json").write_text("{}")
    result = scan(tmp_path)
    assert [s.n_images for s in result.series] == [3]
    reasons = {p.path.name: p.reason for p in result.problems}
    assert set(reasons) == {"report.dcm", "pstate.dcm", "cut.dcm", "noise.dcm", "labels.nii"}, result.problems
    assert reasons["report.dcm"] == "is a DICOM Structured Report, not an image"
    assert reasons["pstate.dcm"] == "is a DICOM Presentation State, not an image"
    assert reasons["cut.dcm"].startswith("truncated: pixel data ends early")
    assert reasons["noise.dcm"].startswith("not a DICOM file")
    assert reasons["labels.nii"].startswith("not a NIfTI file")
    assert all(str(p).startswith(str(p.path)) for p in result.problems)  # str(problem) names the file
    load_series(result.series[0])


def test_file_truncated_inside_the_header_is_a_problem(tmp_path):
    path = save(ct_slice((0, 0, 0), series_uid=generate_uid(), value=0), tmp_path / "head.dcm")
    path.write_bytes(path.read_bytes()[:300])
    result = scan(tmp_path)
    assert not result.series
    assert len(result.problems) == 1 and result.problems[0].path == path
    assert "truncated" in result.problems[0].reason or "corrupt" in result.problems[0].reason


def test_file_changed_after_scan_gives_a_load_error_naming_it(tmp_path):
    paths = write_stack(tmp_path, [0, 1, 2])
    source = only_series(scan(tmp_path))
    paths[1].write_bytes(b"garbage")
    with pytest.raises(StudyLoadError) as err:
        load_series(source)
    assert paths[1].name in str(err.value) and "not a DICOM file" in str(err.value)


def test_only_deidentified_demographics_are_kept(tmp_path):
    write_stack(tmp_path, [0, 1])
    source = only_series(scan(tmp_path))
    volume = load_series(source)
    assert source.patient_age == volume.patient_age == "053Y"  # from birth date 1970-06-01 and study 2024-01-15
    assert source.patient_sex == volume.patient_sex == "F"
    for text in (repr(source), repr({k: v for k, v in vars(volume).items() if k != "data"})):
        assert "Doe" not in text and "PID-12345" not in text and "19700601" not in text


def test_patient_age_attribute_wins_over_dates(tmp_path):
    ds = ct_slice((0, 0, 0), series_uid=generate_uid(), value=0)
    ds.PatientAge = "045Y"
    save(ds, tmp_path / "a.dcm")
    assert only_series(scan(tmp_path)).patient_age == "045Y"


def test_cancel_during_load_raises_cancelled(tmp_path):
    write_stack(tmp_path, [float(z) for z in range(40)], shuffle_names=False, rows=32, cols=32)
    source = only_series(scan(tmp_path))
    token = CancelToken()
    seen = []

    def progress(fraction, message):
        seen.append(fraction)
        if fraction < 1.0:
            token.cancel()

    with pytest.raises(Cancelled):
        load_series(source, progress=progress, cancel=token)
    assert seen and min(seen) < 1.0


def test_cancel_during_scan_raises_cancelled(tmp_path):
    write_stack(tmp_path, [0, 1, 2])
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        scan(tmp_path, cancel=token)


def test_implicit_vr_files_use_the_fast_path(tmp_path):
    series = generate_uid()
    for n in range(3):
        ds = ct_slice((0, 0, n), series_uid=series, value=100 * n)
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        save(ds, tmp_path / f"{n}.dcm")
    source = only_series(scan(tmp_path))
    assert all(dicom_loader.read_header(p).fast_native for p in source.files)
    assert load_series(source).data[0, 0, :].tolist() == [-1024, -924, -824]


def test_rle_compressed_series_loads(tmp_path):
    paths = write_stack(tmp_path / "raw", [0, 1, 2])
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        save(ds, tmp_path / "rle" / path.name)
    expected = load_series(only_series(scan(tmp_path / "raw")))
    assert np.array_equal(load_series(only_series(scan(tmp_path / "rle"))).data, expected.data)


def test_undecodable_compressed_pixels_are_reported_at_import_and_at_load_naming_the_file(tmp_path):
    ds = ct_slice((0, 0, 0), series_uid=generate_uid(), value=0)
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    ds.PixelData = encapsulate([b"\xff\xd8 not really a jpeg \xff\xd9"])
    path = save(ds, tmp_path / "lossless.dcm")
    result = scan(tmp_path)  # import decodes one frame of each compressed file
    assert not result.series and [p.path for p in result.problems] == [path]
    assert "cannot be decoded here (no decoder for this compression is installed)" in result.problems[0].reason
    source = only_series(dicom_loader.scan_files([path], verify=False))
    with pytest.raises(StudyLoadError) as err:
        load_series(source)
    assert err.value.path == path and "lossless.dcm" in str(err.value)
    assert err.value.reason == result.problems[0].reason


def test_two_distant_blocks_are_not_padded_with_hundreds_of_blank_slices(tmp_path):
    write_stack(tmp_path, [0.0, 1.0, 2.0, 300.0, 301.0])
    source = only_series(scan(tmp_path))
    assert any("irregular slice spacing" in w for w in source.warnings)
    assert load_series(source).shape[2] == 5


def test_multiframe_with_two_echoes_shows_the_first_at_each_position(tmp_path):
    ds = _dataset(ENHANCED_CT_STORAGE, "MR", generate_uid())
    zs = [0.0, 0.0, 3.0, 3.0, 6.0, 6.0]  # echo 1 and echo 2 at each position
    frames = np.stack([np.full((ROWS, COLS), n, dtype=np.uint16) for n in range(len(zs))])
    _set_pixels(ds, frames)
    ds.NumberOfFrames = len(zs)
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = ["1", "1"]
    per_frame = []
    for z in zs:
        position, item = Dataset(), Dataset()
        position.ImagePositionPatient = ["0", "0", str(z)]
        item.PlanePositionSequence = Sequence([position])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    save(ds, tmp_path / "echoes.dcm")
    source = only_series(scan(tmp_path))
    assert any("repeated positions" in w for w in source.warnings)
    volume = load_series(source)
    assert volume.data[0, 0, :].tolist() == [0, 2, 4] and volume.spacing[2] == pytest.approx(3.0)
