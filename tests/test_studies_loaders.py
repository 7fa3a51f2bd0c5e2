"""Import entry points: folders, single files, zips, PNG/JPEG radiographs, and the errors users see."""
from __future__ import annotations

import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

import core.studies
from core.studies import StudyLoadError, Volume, load_series, scan
from core.studies.sources import SeriesSource
from core.tasks import Cancelled, CancelToken

SPACING_UNKNOWN = "pixel spacing unknown: measurements in pixels"
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "spine-samples"


def test_public_api_is_exported():
    assert {"scan", "load_series", "StudyLoadError", "Volume"} <= set(core.studies.__all__)


def _gradient(width: int = 7, height: int = 4) -> np.ndarray:
    return (np.arange(height)[:, None] * 30 + np.arange(width)[None, :]).astype(np.uint8)


def test_png_radiograph_is_a_single_slice_dx_volume(tmp_path):
    pixels = _gradient()
    Image.fromarray(pixels, mode="L").save(tmp_path / "spine_lat.png")
    result = scan(tmp_path)
    assert not result.problems and len(result.series) == 1
    source = result.series[0]
    assert source.kind == "raster" and source.modality == "DX" and SPACING_UNKNOWN in source.warnings
    volume = load_series(source)
    assert volume.is_2d and volume.shape == (7, 4, 1) and volume.modality == "DX"
    assert np.array_equal(volume.data[:, :, 0], pixels.T)  # data[i = column, j = row]
    assert volume.spacing == (1.0, 1.0, 1.0)


def test_sixteen_bit_png_keeps_its_depth(tmp_path):
    pixels = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    Image.fromarray(pixels).save(tmp_path / "xray16.png")
    volume = load_series(scan(tmp_path).series[0])
    assert volume.data.dtype == np.uint16 and np.array_equal(volume.data[:, :, 0], pixels.T)


def test_rgb_jpeg_becomes_grayscale(tmp_path):
    rgb = np.zeros((8, 16, 3), dtype=np.uint8)
    rgb[..., :] = 128
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "photo.jpg", quality=95)
    volume = load_series(scan(tmp_path / "photo.jpg").series[0])
    assert volume.shape == (16, 8, 1) and volume.data.dtype == np.uint8
    assert abs(int(volume.data.mean()) - 128) <= 2


def test_file_type_is_decided_by_content_not_name(tmp_path):
    Image.fromarray(_gradient(), mode="L").save(tmp_path / "image.bin", format="PNG")
    nib.save(nib.Nifti1Image(np.arange(8, dtype=np.int16).reshape(2, 2, 2), np.eye(4)), tmp_path / "v.nii.gz")
    (tmp_path / "v.nii.gz").rename(tmp_path / "volume.data")
    result = scan(tmp_path)
    assert not result.problems
    assert sorted(s.kind for s in result.series) == ["nifti", "raster"]
    nifti = next(s for s in result.series if s.kind == "nifti")
    assert load_series(nifti).data.ravel().tolist() == np.arange(8).reshape(2, 2, 2).ravel().tolist()


def test_folder_without_images_gives_one_problem(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    (tmp_path / "info.json").write_text("{}")
    (tmp_path / "DICOMDIR").write_bytes(b"\x00" * 64)
    (tmp_path / "sub").mkdir()
    result = scan(tmp_path)
    assert result.series == []
    assert len(result.problems) == 1
    assert result.problems[0].path == tmp_path
    assert result.problems[0].reason == f"no images found in {tmp_path}"


def test_missing_path_is_a_problem(tmp_path):
    result = scan(tmp_path / "nowhere")
    assert not result.series and result.problems[0].reason == "does not exist"


def test_corrupt_png_is_reported(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(_gradient(), mode="L").save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:20])
    (tmp_path / "fake.jpg").write_text("not a jpeg")
    result = scan(tmp_path)
    assert [s.files[0].name for s in result.series] == ["good.png"]
    reasons = {p.path.name: p.reason for p in result.problems}
    assert set(reasons) == {"cut.png", "fake.jpg"}
    assert reasons["fake.jpg"].startswith("not a PNG/JPEG image")


def _zip_of(tmp_path, members: dict[str, bytes]):
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return archive


def _png_bytes(tmp_path) -> bytes:
    path = tmp_path / "tmp.png"
    Image.fromarray(_gradient(), mode="L").save(path)
    data = path.read_bytes()
    path.unlink()
    return data


def test_zip_import_extracts_into_extract_dir_and_scans(tmp_path):
    members = {"export/xr/ap.png": _png_bytes(tmp_path), "export/notes.txt": b"hello"}
    ct = SAMPLES / "ts_ct_dicom_T11-T12" / "dicom"  # added when present; the PNG alone still tests the zip path
    if ct.is_dir():
        for f in sorted(ct.iterdir()):
            members[f"export/ct/{f.name}"] = f.read_bytes()
    archive = _zip_of(tmp_path, members)
    extract = tmp_path / "extracted"
    result = scan(archive, extract_dir=extract)
    assert not result.problems
    kinds = sorted((s.kind, s.n_images) for s in result.series)
    assert kinds == sorted([("raster", 1)] + ([("dicom", 20)] if ct.is_dir() else []))
    for source in result.series:
        assert all(extract in f.parents for f in source.files)
        assert isinstance(load_series(source), Volume)


def test_zip_rejects_path_traversal(tmp_path):
    png = _png_bytes(tmp_path)
    archive = _zip_of(tmp_path, {"../evil.png": png, "/abs/evil2.png": png, "a/../../evil3.png": png, "ok/ap.png": png})
    extract = tmp_path / "out"
    result = scan(archive, extract_dir=extract)
    assert [s.files[0].name for s in result.series] == ["ap.png"]
    unsafe = [p for p in result.problems if "unsafe path" in p.reason]
    assert len(unsafe) == 3 and all(str(p.path).startswith(str(archive)) for p in unsafe)
    assert not list(tmp_path.rglob("evil*.png"))


def test_zip_needs_an_extract_dir(tmp_path):
    archive = _zip_of(tmp_path, {"a.png": _png_bytes(tmp_path)})
    with pytest.raises(ValueError, match="extract_dir"):
        scan(archive)


def test_problems_inside_a_zip_are_named_by_their_place_in_the_archive(tmp_path):
    archive = _zip_of(tmp_path, {"inner/bad.dcm": b"\x01" * 500, "inner/ok.png": _png_bytes(tmp_path)})
    result = scan(archive, extract_dir=tmp_path / "x")
    assert [p.path for p in result.problems] == [archive / "inner" / "bad.dcm"]


def test_load_series_reports_a_missing_file(tmp_path):
    Image.fromarray(_gradient(), mode="L").save(tmp_path / "a.png")
    source = scan(tmp_path).series[0]
    (tmp_path / "a.png").unlink()
    with pytest.raises(StudyLoadError) as err:
        load_series(source)
    assert err.value.path == tmp_path / "a.png"
    assert "a.png" in str(err.value) and "not found" in str(err.value)


def test_load_series_rejects_unknown_kind(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(_gradient(), mode="L").save(path)
    with pytest.raises(StudyLoadError, match="unknown series kind"):
        load_series(SeriesSource(kind="video", series_uid="1", files=[path]))


def test_scan_reports_progress_from_zero_to_one(tmp_path):
    for n in range(3):
        Image.fromarray(_gradient(), mode="L").save(tmp_path / f"{n}.png")
    seen = []
    scan(tmp_path, progress=lambda fraction, message: seen.append(fraction))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


def test_cancelled_scan_raises(tmp_path):
    Image.fromarray(_gradient(), mode="L").save(tmp_path / "a.png")
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        scan(tmp_path, cancel=token)
