"""Every damaged-file signature found by fuzzing the loaders (issue 19), each one edit to a good file.

Each test writes a good file with pydicom / nibabel / Pillow into tmp_path, makes the one edit the fuzzer found
(with ``struct`` or a byte replacement), and checks the loaders answer with the project's own error: the file named,
the problem in plain words, nothing allocated for what the file cannot hold, and the other files still imported.
"""
from __future__ import annotations

import gzip
import math
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

from core.library import Library
from core.studies import StudyLoadError, load_series, scan
from tests.studies_fuzz_support import RAW_TEXT
from tests.test_studies_dicom import ct_slice, save, write_stack

REPO = Path(__file__).resolve().parents[1]


def _replace_once(path: Path, old: bytes, new: bytes) -> Path:
    data = path.read_bytes()
    assert data.count(old) == 1, f"{old!r} occurs {data.count(old)} times in {path.name}"
    path.write_bytes(data.replace(old, new))
    return path


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    """An explicit VR little-endian element with a 2-byte length, as pydicom writes it."""
    return struct.pack("<HHs", tag >> 16, tag & 0xFFFF, b"") + vr + struct.pack("<H", len(value)) + value


def _only_problem(result, path: Path) -> str:
    """The one problem of a scan, which must name ``path`` and read as plain words; returns the reason."""
    assert not result.series, result.series
    assert [p.path for p in result.problems] == [path], result.problems
    return _plain(result.problems[0])


def _plain(problem) -> str:
    assert not problem.internal, f"caught by the safety net, not by a check: {problem}"
    assert not RAW_TEXT.search(problem.reason), problem.reason
    assert problem.path.name in str(problem)
    return problem.reason


def _j2k_slice(tmp_path: Path, name: str = "j2k.dcm", **kw) -> Path:
    ds = ct_slice((0, 0, 0), series_uid=kw.pop("series_uid", generate_uid()), value=kw.pop("value", 100),
                  rows=32, cols=32, **kw)
    ds.compress(JPEG2000Lossless)
    return save(ds, tmp_path / name)


# ---------------------------------------------------------------------------------------------------------------
# DICOM


@pytest.mark.parametrize("value", [b"nan ", b"inf ", b"-inf"])
def test_number_of_frames_not_a_number(tmp_path, value):
    ds = ct_slice((0, 0, 0), series_uid=generate_uid(), value=0)
    ds.NumberOfFrames = "9999"
    path = save(ds, tmp_path / "frames.dcm")
    _replace_once(path, b"IS\x04\x009999", b"IS\x04\x00" + value)
    reason = _only_problem(scan(tmp_path), path)
    assert "NumberOfFrames" in reason and "not" in reason


def test_unknown_value_representation_is_a_damaged_header(tmp_path):
    write_stack(tmp_path, [0, 1, 2])
    bad = save(ct_slice((0, 0, 3), series_uid=generate_uid(), value=0), tmp_path / "vr.dcm")
    _replace_once(bad, b"\x08\x00\x3e\x10LO", b"\x08\x00\x3e\x10ZZ")  # SeriesDescription with VR "ZZ"
    result = scan(tmp_path)
    assert [s.n_images for s in result.series] == [3]
    assert [p.path for p in result.problems] == [bad]
    assert "damaged DICOM header" in _plain(result.problems[0])


def test_plain_file_whose_transfer_syntax_says_deflated(tmp_path):
    ds = ct_slice((0, 0, 0), series_uid=generate_uid(), value=0)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = tmp_path / "deflated.dcm"
    with open(path, "wb") as fp:  # meta says deflated, the data set is written plain
        fp.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(pydicom.filebase.DicomFileLike(fp), ds.file_meta, enforce_standard=True)
        body = pydicom.filebase.DicomBytesIO()
        body.is_little_endian, body.is_implicit_VR = True, False
        write_dataset(body, ds)
        fp.write(body.getvalue())
    reason = _only_problem(scan(tmp_path), path)
    assert "deflated" in reason and "damaged" in reason


def test_deflated_data_set_that_unpacks_beyond_memory_is_refused_before_inflating(tmp_path, monkeypatch):
    from core.studies import dicom_file

    ds = ct_slice((0, 0, 0), series_uid=generate_uid(), value=0, rows=1024, cols=1024)  # 2 MB inflated
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = save(ds, tmp_path / "bomb.dcm")
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(dicom_file, "memory_budget", lambda: 3_000_000)  # as if 1 MB were all pydicom may take
    reason = _only_problem(scan(tmp_path), path)
    assert reason.startswith("the compressed (deflated) data set unpacks to more than 1.0 MB")
    monkeypatch.undo()
    dicom_file.clear_header_cache()
    assert load_series(scan(tmp_path).series[0]).shape == (1024, 1024, 1)  # a sound deflated file still opens


def test_bits_allocated_stored_as_ul_instead_of_us(tmp_path):
    path = _j2k_slice(tmp_path)
    _replace_once(path, b"\x28\x00\x00\x01US\x02\x00", b"\x28\x00\x00\x01UL\x02\x00")
    reason = _only_problem(scan(tmp_path), path)
    assert "BitsAllocated" in reason and "UL" in reason


def test_number_of_frames_larger_than_the_compressed_frames(tmp_path):
    ds = ct_slice((0, 0, 0), series_uid=generate_uid(), value=100, rows=32, cols=32)
    ds.compress(JPEG2000Lossless)
    ds.NumberOfFrames = "7"
    path = save(ds, tmp_path / "frames.dcm")
    _replace_once(path, b"IS\x02\x007 ", b"IS\x02\x004 ")
    reason = _only_problem(scan(tmp_path), path)
    assert reason.startswith("the header says 4 images (NumberOfFrames) but the file holds 1 compressed image")


def test_number_of_frames_at_its_maximum_is_refused_without_allocating(tmp_path):
    """2147483647 frames once built a list of every frame index (165 GB); now the fragment count refuses it."""
    ds = ct_slice((0, 0, 0), series_uid=generate_uid(), value=100, rows=32, cols=32)
    ds.compress(JPEG2000Lossless)
    ds.NumberOfFrames = "1234567890"
    path = save(ds, tmp_path / "frames.dcm")
    _replace_once(path, b"1234567890", b"2147483647")
    reason = _only_problem(scan(tmp_path), path)
    assert "2147483647 images" in reason


def test_bits_allocated_24(tmp_path):
    path = save(ct_slice((0, 0, 0), series_uid=generate_uid(), value=0), tmp_path / "b24.dcm")
    _replace_once(path, b"\x28\x00\x00\x01US\x02\x00\x10\x00", b"\x28\x00\x00\x01US\x02\x00\x18\x00")
    reason = _only_problem(scan(tmp_path), path)
    assert reason.startswith("BitsAllocated is 24 (1, 8, 16 or 32 expected)")


def test_one_slice_far_outside_any_patient_leaves_a_gap_not_a_crash(tmp_path):
    paths = write_stack(tmp_path, [0, 1, 2, 3, 4], shuffle_names=False)
    old = b"-10.0000\\-20.0000\\2.0000"
    new = b"-1e308\\0\\1e308".ljust(len(old))
    _replace_once(paths[2], old, new)
    result = scan(tmp_path)
    assert [p.path for p in result.problems] == [paths[2]]
    assert "ImagePositionPatient" in _plain(result.problems[0])
    source = result.series[0]
    assert source.n_images == 4 and any("missing slice" in w for w in source.warnings)
    volume = load_series(source)
    assert volume.shape[2] == 5  # the missing slice is a blank gap


def test_compressed_image_size_must_match_rows_and_columns(tmp_path):
    path = _j2k_slice(tmp_path)
    _replace_once(path, b"\x28\x00\x10\x00US\x02\x00\x20\x00", b"\x28\x00\x10\x00US\x02\x00\xff\xff")
    reason = _only_problem(scan(tmp_path), path)
    assert "the compressed image is 32 x 32 pixels but the header says 32 x 65535" in reason


def test_undecodable_jpeg2000_slice_is_reported_and_its_series_opens_with_a_gap(tmp_path, bundled_ct):
    """One CT slice with a broken codestream once made the whole series impossible to open."""
    files = sorted(bundled_ct.iterdir())
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    broken = tmp_path / files[10].name
    data = bytearray(broken.read_bytes())
    start = data.index(b"\xff\x90")  # the first tile-part's SOT marker, overwritten
    data[start:start + 2] = b"\x00\x00"
    broken.write_bytes(bytes(data))
    result = scan(tmp_path)
    assert [p.path for p in result.problems] == [broken]
    assert "cannot be decoded" in _plain(result.problems[0])
    source = result.series[0]
    assert source.n_images == len(files) - 1
    assert any("missing slice" in w and "1 blank slice" in w for w in source.warnings)
    volume = load_series(source)
    assert volume.shape == (512, 512, len(files))


def test_many_compressed_files_are_checked_in_worker_processes(tmp_path, monkeypatch):
    from core.studies import dicom_verify

    series = generate_uid()
    paths = [_j2k_slice(tmp_path, f"s{n}.dcm", series_uid=series, value=10 * n) for n in range(3)]
    ds = pydicom.dcmread(paths[1])
    ds.ImagePositionPatient = ["0", "0", "3"]
    ds.save_as(paths[1])
    ds = pydicom.dcmread(paths[2])
    ds.ImagePositionPatient = ["0", "0", "6"]
    ds.save_as(paths[2])
    data = bytearray(paths[2].read_bytes())
    start = data.index(b"\xff\x4f\xff\x51")  # the codestream's SIZ marker, overwritten
    data[start + 2:start + 4] = b"\x00\x00"
    paths[2].write_bytes(bytes(data))
    monkeypatch.setattr(dicom_verify, "_PROCESS_MIN_FILES", 2)
    monkeypatch.setattr(dicom_verify, "_PROCESS_MIN_CORES", 1)
    result = scan(tmp_path)
    assert [p.path for p in result.problems] == [paths[2]]
    assert "cannot be decoded" in _plain(result.problems[0])
    assert [s.n_images for s in result.series] == [2]


def test_slices_damaged_after_import_open_blank_with_a_warning(tmp_path):
    paths = write_stack(tmp_path, [float(z) for z in range(8)], shuffle_names=False)
    source = scan(tmp_path).series[0]
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[:-40])  # cut short after the import
    volume = load_series(source)
    assert volume.shape[2] == 8
    assert any("1 of 8 images could not be read and are shown blank" in w and paths[3].name in w
               for w in volume.warnings)
    assert np.all(volume.data[:, :, 3] == volume.data.min())


def test_too_many_damaged_slices_still_refuse_the_series(tmp_path):
    paths = write_stack(tmp_path, [float(z) for z in range(4)], shuffle_names=False)
    source = scan(tmp_path).series[0]
    for path in paths[:2]:
        path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(StudyLoadError) as err:
        load_series(source)
    assert err.value.path == paths[0] and "1 other images of the series cannot be read either" in err.value.reason


def test_undecodable_compressed_file_changed_after_import_names_it(tmp_path):
    path = _j2k_slice(tmp_path)
    source = scan(tmp_path).series[0]
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60])
    ds.save_as(path)
    with pytest.raises(StudyLoadError) as err:
        load_series(source)
    assert err.value.path == path and not err.value.internal and not RAW_TEXT.search(err.value.reason)


# ---------------------------------------------------------------------------------------------------------------
# NIfTI


def _nifti(path: Path, shape=(8, 8, 6), dtype=np.int16, klass=nib.Nifti1Image, slope=None) -> Path:
    img = klass(np.arange(math.prod(shape), dtype=dtype).reshape(shape), np.diag([2.0, 2.0, 3.0, 1.0]))
    if slope is not None:
        img.header.set_slope_inter(slope, 0.0)
    nib.save(img, path)
    return path


def _poke(path: Path, offset: int, fmt: str, *values) -> Path:
    data = bytearray(path.read_bytes())
    struct.pack_into("<" + fmt, data, offset, *values)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(("offset", "fmt", "value", "expected"), [
    (70, "h", 255, "unknown pixel type (code 255)"),
    (40, "h", 32767, "32767 as the number of dimensions"),
    (44, "h", 0, "image size 0 along axis 2"),
    (108, "f", math.inf, "impossible start of the pixel data"),
], ids=["datatype-255", "dim0-32767", "dim2-0", "vox_offset-inf"])
def test_nifti1_header_field(tmp_path, offset, fmt, value, expected):
    path = _poke(_nifti(tmp_path / "a.nii"), offset, fmt, value)
    assert expected in _only_problem(scan(tmp_path), path)


def test_nifti_with_flat_voxel_axes_opens_with_1_mm_voxels_and_a_warning(tmp_path):
    path = _poke(_nifti(tmp_path / "flat.nii", shape=(4, 5, 6)), 296, "4f", 0.0, 0.0, 0.0, 0.0)  # srow_y zeros
    source = scan(path).series[0]
    assert any("voxel axes in the header are flat" in w for w in source.warnings)
    volume = load_series(source)
    assert volume.shape == (4, 5, 6) and volume.spacing == (1.0, 1.0, 1.0)


def test_nifti_orientation_not_a_number(tmp_path):
    path = _poke(_nifti(tmp_path / "a.nii"), 280, "f", math.nan)  # srow_x[0], used since sform_code is set
    assert "not a number" in _only_problem(scan(tmp_path), path)


def test_nifti_scaling_intercept_inf(tmp_path):
    path = _poke(_nifti(tmp_path / "a.nii", slope=2.0), 116, "f", math.inf)
    assert "scaling is damaged" in _only_problem(scan(tmp_path), path)


def test_nifti_bad_extension_size(tmp_path):
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4))
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment of some length"))
    path = tmp_path / "ext.nii"
    nib.save(img, path)
    _poke(path, 352, "i", 7)  # esize must be a multiple of 16
    assert "extension block" in _only_problem(scan(tmp_path), path)


@pytest.mark.parametrize(("offset", "fmt", "value", "expected"), [
    (24, "q", 2**62, "more than a compressed file"),
    (168, "q", 2**62, "the header puts the pixel data at byte 4611686018427387904, beyond the end"),
], ids=["dim1-2**62", "vox_offset-2**62"])
def test_nifti2_header_field(tmp_path, offset, fmt, value, expected):
    path = tmp_path / "a.nii.gz"
    raw = tmp_path / "raw.nii"
    _nifti(raw, klass=nib.Nifti2Image)
    _poke(raw, offset, fmt, value)
    path.write_bytes(gzip.compress(raw.read_bytes()))
    raw.unlink()
    assert expected in _only_problem(scan(tmp_path), path)


def test_nifti2_vox_offset_beyond_the_file(tmp_path):
    path = _poke(_nifti(tmp_path / "a.nii", klass=nib.Nifti2Image), 168, "q", 2000)
    assert "pixel data at byte 2000, beyond the end of a file of 1.3 KB" in _only_problem(scan(tmp_path), path)


def test_rgb24_nifti_with_scaling(tmp_path):
    rgb = np.zeros((4, 4, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    path = tmp_path / "rgb.nii"
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), path)
    _poke(path, 112, "f", 2.0)
    assert "RGB colour NIfTI pixels are not supported" in _only_problem(scan(tmp_path), path)


def test_short_nifti2_header_without_a_nii_name(tmp_path):
    full = _nifti(tmp_path / "full.nii", klass=nib.Nifti2Image)
    path = tmp_path / "volume.data"
    path.write_bytes(full.read_bytes()[:300])
    full.unlink()
    assert "cut short (300 of 540 bytes)" in _only_problem(scan(tmp_path), path)


def _huge_nifti(path: Path) -> Path:
    """The issue 14 file: a 1 KB NIfTI whose header declares 30000 x 30000 x 30000 voxels."""
    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 30000))
    header.set_data_dtype(np.int16)
    with open(path, "wb") as fp:
        header.write_to(fp)
        fp.write(b"\x00" * (1024 - fp.tell()))
    assert path.stat().st_size == 1024
    return path


def test_impossible_nifti_header_is_rejected_at_scan(tmp_path):
    path = _huge_nifti(tmp_path / "huge.nii")
    reason = _only_problem(scan(tmp_path), path)
    assert reason.startswith("the header declares 30000 x 30000 x 30000 voxels (54.0 TB of pixel data) but the "
                             "file holds only 672 bytes")


def test_impossible_nifti_header_is_never_imported(tmp_path):
    lib = Library(tmp_path / "lib.db")
    report = lib.import_path(_huge_nifti(tmp_path / "huge.nii"))
    assert not report.new_series and len(report.problems) == 1 and "30000 x 30000 x 30000" in report.problems[0].reason
    assert lib.studies() == []


@pytest.mark.parametrize(("command", "code"), [("info", 1), ("import", 1), ("levels auto", 2), ("report", 2)])
def test_cli_prints_a_clear_message_for_the_impossible_header(tmp_path, command, code):
    path = _huge_nifti(tmp_path / "huge.nii")
    env = {"SPINEMED_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "QT_QPA_PLATFORM": "offscreen"}
    extra = ["-o", str(tmp_path / "report.txt")] if command == "report" else []
    run = subprocess.run([sys.executable, "-m", "app.cli", *command.split(), str(path), *extra], check=False,
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == code, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert f"{path}: the header declares 30000 x 30000 x 30000 voxels" in run.stderr


def test_truncated_nii_gz_is_refused_at_import(tmp_path):
    full = _nifti(tmp_path / "full.nii.gz", shape=(40, 40, 30))
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    assert "cut short" in _only_problem(scan(tmp_path), path)


# ---------------------------------------------------------------------------------------------------------------
# JPEG / PNG


def _noise_jpeg(path: Path, size=(512, 512)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(path, quality=40)
    return path


def _sof_size(path: Path, width: int, height: int) -> Path:
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    path.write_bytes(bytes(data))
    return path


def test_jpeg_claiming_65535_squared_pixels(tmp_path):
    path = _sof_size(_noise_jpeg(tmp_path / "bomb.jpg", (64, 64)), 65535, 65535)
    reason = _only_problem(scan(tmp_path), path)
    assert "65535 x 65535" in reason or "million pixels" in reason


def test_small_jpeg_claiming_12000_squared_pixels(tmp_path):
    path = _noise_jpeg(tmp_path / "big.jpg")
    assert path.stat().st_size < 12000 * 12000 / 512  # a real 12000 x 12000 JPEG needs more bytes than this
    _sof_size(path, 12000, 12000)
    reason = _only_problem(scan(tmp_path), path)
    assert "12000 x 12000 pixels, more than a JPEG file of" in reason


def test_truncated_jpeg_is_refused_at_import(tmp_path):
    full = _noise_jpeg(tmp_path / "full.jpg", (256, 256))
    path = tmp_path / "cut.jpg"
    path.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    full.unlink()
    assert "cut short" in _only_problem(scan(tmp_path), path)


def test_png_claiming_more_pixels_than_deflate_can_hold(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    struct.pack_into(">II", data, 16, 12000, 12000)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))  # a valid IHDR chunk, only the size is wrong
    path.write_bytes(bytes(data))
    reason = _only_problem(scan(tmp_path), path)
    assert "12000 x 12000 pixels, more than a compressed file of" in reason


# ---------------------------------------------------------------------------------------------------------------
# A folder with one file of every broken kind


def test_folder_with_every_broken_kind_imports_the_good_series_and_lists_each_bad_file(tmp_path):
    folder = tmp_path / "hospital"
    good_ct = write_stack(folder / "ct", [0, 1, 2, 3], rows=16, cols=16)
    _nifti(folder / "good.nii.gz")
    Image.fromarray(np.full((20, 30), 90, np.uint8)).save(folder / "good.png")
    bad: dict[str, str] = {}

    def add(name: str, expected: str) -> Path:
        bad[name] = expected
        return folder / name

    p = save(ct_slice((0, 0, 0), series_uid=generate_uid(), value=0), add("frames_nan.dcm", "NumberOfFrames"))
    ds = pydicom.dcmread(p)
    ds.NumberOfFrames = "9999"
    ds.save_as(p)
    _replace_once(p, b"IS\x04\x009999", b"IS\x04\x00nan ")
    p = save(ct_slice((0, 0, 0), series_uid=generate_uid(), value=0), add("b24.dcm", "BitsAllocated is 24"))
    _replace_once(p, b"\x28\x00\x00\x01US\x02\x00\x10\x00", b"\x28\x00\x00\x01US\x02\x00\x18\x00")
    p = save(ct_slice((0, 0, 0), series_uid=generate_uid(), value=0), add("vr.dcm", "damaged DICOM header"))
    _replace_once(p, b"\x08\x00\x3e\x10LO", b"\x08\x00\x3e\x10ZZ")
    p = _j2k_slice(folder, add("j2k_frames.dcm", "NumberOfFrames"))
    ds = pydicom.dcmread(p)
    ds.NumberOfFrames = "7"
    ds.save_as(p)
    _replace_once(p, b"IS\x02\x007 ", b"IS\x02\x004 ")
    _poke(_nifti(folder / "dtype.nii"), 70, "h", 255)
    bad["dtype.nii"] = "unknown pixel type"
    _huge_nifti(add("huge.nii", "30000 x 30000 x 30000"))
    full = _nifti(tmp_path / "full.nii.gz", shape=(40, 40, 30))
    add("cut.nii.gz", "cut short").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    jpeg = _noise_jpeg(tmp_path / "full.jpg", (256, 256))
    add("cut.jpg", "cut short").write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size * 2 // 3])
    _sof_size(_noise_jpeg(add("big.jpg", "12000 x 12000"), (512, 512)), 12000, 12000)
    lib = Library(tmp_path / "lib.db")
    report = lib.import_path(folder)
    assert len(report.new_series) == 3, report
    reasons = {p.path.name: _plain(p) for p in report.problems}
    assert set(reasons) == set(bad), reasons
    for name, expected in bad.items():
        assert expected in reasons[name], (name, reasons[name])
    kinds = sorted(lib.source(uid).kind for uid in report.new_series)
    assert kinds == ["dicom", "nifti", "raster"]
    ct_uid = next(uid for uid in report.new_series if lib.source(uid).kind == "dicom")
    assert lib.load(ct_uid).shape[2] == len(good_ct)
    for uid in report.new_series:
        lib.load(uid)
    lib.close()


def test_study_load_error_survives_a_process_boundary():
    import pickle

    err = pickle.loads(pickle.dumps(StudyLoadError("/x/y.dcm", "the image data are damaged", internal="KeyError")))
    assert (err.path, err.reason, err.internal) == (Path("/x/y.dcm"), "the image data are damaged", "KeyError")


def test_unexpected_failure_in_a_loader_becomes_a_plain_message(tmp_path, monkeypatch):
    """The safety net: an exception no check foresaw is reported with plain words and counted as internal."""
    from core.studies import loaders

    path = _nifti(tmp_path / "a.nii")
    source = scan(path).series[0]

    def broken(*args, **kwargs):
        raise IndexError("index 7 is out of bounds for axis 0 with size 3")

    monkeypatch.setitem(loaders._LOADERS, "nifti", broken)
    with pytest.raises(StudyLoadError) as err:
        load_series(source)
    assert err.value.internal == "IndexError" and "out of bounds" not in str(err.value)
    assert err.value.reason == "the file is damaged or stored in a form this program cannot read"
