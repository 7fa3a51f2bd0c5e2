"""NIfTI loader: the real samples in every stored orientation, and files written with nibabel in tmp_path."""
from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from core.studies import StudyLoadError, load_series, scan
from core.studies.nifti import guess_modality

# (folder, image or label file, label map with a known label, label id, orientation as stored)
ORIENTATION_CASES = [
    ("sct_cervical_t2_mri_C2-C5", "t2.nii.gz", "t2_cordseg_labeled_by_level.nii.gz", 3, "PSR"),
    ("tptbox_ct_lumbar_crop_L2-L4", "sub-ct_label-22_ct.nii.gz", "sub-ct_seg-vert_label-22_msk.nii.gz", 22, "PIR"),
    ("ts_ct_dicom_T11-T12", "seg_total_v2.nii.gz", "seg_total_v2.nii.gz", 32, "LAS"),
    ("ts_mr_abdomen_generic_vertebrae_discs", "mr.nii.gz", "seg_total_mr.nii.gz", 19, "LPS"),
]


def _load_one(path):
    result = scan(path)
    assert not result.problems and len(result.series) == 1, (result.series, result.problems)
    return result.series[0], load_series(result.series[0])


@pytest.mark.parametrize(("folder", "image", "labels", "label", "code"), ORIENTATION_CASES,
                         ids=[c[-1] for c in ORIENTATION_CASES])
def test_sample_orientation_and_label_centroid_in_lps(samples, folder, image, labels, label, code):
    image_path, labels_path = samples / folder / image, samples / folder / labels
    if not image_path.is_file() or not labels_path.is_file():
        pytest.skip(f"sample {folder} incomplete")
    _, volume = _load_one(image_path)
    assert volume.orientation() == code
    assert volume.orientation() == "".join(nib.aff2axcodes(nib.load(image_path).affine))
    _, seg = _load_one(labels_path)
    assert seg.orientation() == code and seg.shape == volume.shape
    centroid = np.argwhere(seg.data == label).mean(axis=0)
    ras = nib.load(labels_path).affine @ np.append(centroid, 1.0)
    assert seg.voxel_to_patient(centroid) == pytest.approx([-ras[0], -ras[1], ras[2]], abs=1e-6)
    assert volume.voxel_to_patient(centroid) == pytest.approx(seg.voxel_to_patient(centroid), abs=1e-4)
    derived_file = samples / folder / "centroids_DERIVED.json"
    if derived_file.is_file():
        derived = json.loads(derived_file.read_text())
        if derived.get("source_mask") == labels:
            world = next(v["world_mm"] for v in derived["levels"].values() if v["label"] == label)
            assert seg.voxel_to_patient(centroid) == pytest.approx([-world[0], -world[1], world[2]], abs=0.1)


def test_sample_integer_types_are_kept(samples):
    path = samples / "sct_cervical_t2_mri_C2-C5" / "t2.nii.gz"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    source, volume = _load_one(path)
    assert volume.data.dtype == np.int16
    assert source.modality == volume.modality == "MR"
    assert volume.spacing == pytest.approx((1.0, 1.0, 1.0), abs=1e-3)


def _write(path, data, affine=None, slope=None, inter=None, descrip=None):
    img = nib.Nifti1Image(data, np.diag([-2.0, 3.0, 4.0, 1.0]) if affine is None else affine)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    if descrip:
        img.header["descrip"] = descrip
    nib.save(img, path)
    return path


def test_scaled_file_becomes_float32_and_unscaled_keeps_dtype(tmp_path):
    raw = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    _, scaled = _load_one(_write(tmp_path / "scaled.nii.gz", raw, slope=2.0, inter=-5.0))
    assert scaled.data.dtype == np.float32
    assert np.array_equal(scaled.data, raw * 2.0 - 5.0)
    _, plain = _load_one(_write(tmp_path / "plain.nii", raw.astype(np.uint8)))
    assert plain.data.dtype == np.uint8 and np.array_equal(plain.data, raw)


def test_affine_is_converted_from_ras_to_lps(tmp_path):
    affine = np.array([[0, 0, -1.5, 10], [2, 0, 0, -20], [0, -3, 0, 30], [0, 0, 0, 1]], dtype=float)
    _, volume = _load_one(_write(tmp_path / "oblique.nii.gz", np.zeros((2, 3, 4), np.int16), affine=affine))
    expected = affine.copy()
    expected[:2] *= -1
    assert np.allclose(volume.affine, expected)
    assert volume.orientation() == "".join(nib.aff2axcodes(affine))  # letters name the same directions


def test_four_d_file_shows_first_volume_with_a_warning(tmp_path):
    data = np.stack([np.full((2, 3, 4), t, dtype=np.int16) for t in range(3)], axis=-1)
    source, volume = _load_one(_write(tmp_path / "bold.nii.gz", data))
    assert volume.shape == (2, 3, 4) and np.all(volume.data == 0)
    assert any("first of 3 volumes" in w for w in source.warnings)


def test_modality_guess_from_name_and_description(tmp_path):
    assert guess_modality(tmp_path / "sub-01_T2w.nii.gz") == "MR"
    assert guess_modality(tmp_path / "patient_ct.nii") == "CT"
    assert guess_modality(tmp_path / "sub-ct_label-22_ct.nii.gz") == "CT"
    assert guess_modality(tmp_path / "seg_total_mr.nii.gz") == "SEG"
    assert guess_modality(tmp_path / "sub-verse004_seg-vert_msk.nii.gz") == "SEG"
    assert guess_modality(tmp_path / "scan.nii.gz", "T1 MPRAGE") == "MR"
    assert guess_modality(tmp_path / "volume.nii.gz") == "OT"
    source, _ = _load_one(_write(tmp_path / "volume.nii.gz", np.zeros((2, 2, 2), np.int16), descrip="CT abdomen"))
    assert source.modality == "CT"


def test_series_uid_follows_content_not_location(tmp_path):
    first = _write(tmp_path / "a.nii.gz", np.zeros((2, 2, 2), np.int16))
    copy = tmp_path / "elsewhere" / "b.nii.gz"
    copy.parent.mkdir()
    shutil.copy(first, copy)
    other = _write(tmp_path / "c.nii.gz", np.ones((2, 2, 2), np.int16))
    uid_a, uid_b, uid_c = (scan(p).series[0].series_uid for p in (first, copy, other))
    assert uid_a == uid_b != uid_c


def test_text_file_named_nii_is_a_problem_naming_the_file(tmp_path):
    bad = tmp_path / "fake.nii"
    bad.write_text("hello, not an image\n" * 40)
    result = scan(bad)
    assert not result.series
    assert len(result.problems) == 1 and result.problems[0].path == bad
    assert result.problems[0].reason.startswith("not a NIfTI file")
    assert "fake.nii" in str(result.problems[0])


def test_gzip_that_is_not_nifti_is_a_problem(tmp_path):
    import gzip

    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(gzip.compress(b"x" * 1000))
    result = scan(tmp_path)
    assert [p.path.name for p in result.problems] == ["broken.nii.gz"]


def test_nifti_truncated_after_scan_raises_study_load_error(tmp_path):
    path = _write(tmp_path / "cut.nii", np.zeros((20, 20, 20), np.int16))
    source = scan(path).series[0]
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(StudyLoadError) as err:
        load_series(source)
    assert "cut.nii" in str(err.value)


def test_unnamed_ct_is_recognised_by_its_hounsfield_units_and_says_so(tmp_path):
    ct = np.full((20, 20, 20), -1000, np.int16)  # air around a body of soft tissue with a bone core
    ct[4:16, 4:16, :] = 40
    ct[8:12, 8:12, :] = 700
    _, volume = _load_one(_write(tmp_path / "volume.nii.gz", ct))
    assert volume.modality == "CT"
    assert any("volume.nii.gz" in w and "Hounsfield" in w for w in volume.warnings)


def test_unnamed_image_without_hounsfield_units_stays_unknown(tmp_path):
    mr = np.random.default_rng(0).integers(0, 1200, (20, 20, 20)).astype(np.int16)  # magnitudes: never negative
    _, volume = _load_one(_write(tmp_path / "volume.nii.gz", mr))
    assert volume.modality == "OT" and not volume.warnings
    soft = np.full((20, 20, 20), -1000, np.int16)  # air and water only, no bone: not enough to call it CT
    soft[5:15, 5:15, :] = 0
    _, volume = _load_one(_write(tmp_path / "phantom.nii.gz", soft))
    assert volume.modality == "OT"
