"""Importers on small files in the public formats: VerSe (real sample + written), TotalSegmentator (multi-label and
folder), SPIDER (MHA via SimpleITK + gradings CSV), RSNA 2024 (train.csv, coordinates, DICOM), local case folders."""
from __future__ import annotations

import csv
import itertools
import json

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from curation.sources.cases import import_case_folder, store_case
from curation.sources.mha import read_mha
from curation.sources.rsna import CONDITIONS, LEVELS, import_rsna
from curation.sources.spider import GRADING_COLUMNS, disc_for_ivd_label, import_spider
from curation.sources.totalseg import import_totalseg
from curation.sources.verse import import_verse
from curation.store import CurationStore
from tests.curation_support import box_labelmap, save_nifti, write_verse_subject

sitk = pytest.importorskip("SimpleITK")


def test_verse_real_sample(samples):
    cases = import_verse(samples / "verse004_labels_only_T9-L5")
    assert len(cases) == 1
    case = cases[0]
    assert case.case_id == "verse:sub-verse004" and case.image_path is None
    assert case.levels == ["T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    assert case.label_values["L5"] == 24 and case.label_values["T9"] == 16
    # the manual centroids (voxel indices of the PIR mask) in LPS: cranio-caudal order means decreasing z
    z = [p[2] for p in case.vertebrae.values()]
    assert all(a > b for a, b in itertools.pairwise(z))
    assert "CC BY-SA" in case.licence


def test_verse_written_subject(tmp_path):
    write_verse_subject(tmp_path / "derivatives" / "sub-verse900")
    (case,) = import_verse(tmp_path)
    assert case.levels == ["L1", "L2", "L3"]
    # ctd voxel (20, 14, 50) with the 1.5/1.5/2 mm RAS affine -> LPS (-30, -21, 100)
    assert np.allclose(case.vertebrae["L1"], (-30.0, -21.0, 100.0))


def test_totalsegmentator_multilabel_and_folder(tmp_path):
    data = box_labelmap([(31, 44, 56), (30, 28, 40)])
    data[18:22, 30:34, :] = 79  # spinal cord, behind the bodies
    ml = save_nifti(data, tmp_path / "segmentations.nii.gz")
    case = import_totalseg(ml)
    assert case.levels == ["L1", "L2"] and case.label_values == {"L1": 31, "L2": 30}
    folder = tmp_path / "segmentations"
    folder.mkdir()
    for name, (k0, k1) in {"L4": (28, 40), "L3": (44, 56)}.items():
        mask = np.zeros((40, 40, 60), dtype=np.uint8)
        mask[12:28, 10:24, k0:k1] = 1
        save_nifti(mask, folder / f"vertebrae_{name}.nii.gz")
    save_nifti(np.zeros((40, 40, 60), dtype=np.uint8), folder / "spinal_cord.nii.gz")
    case = import_totalseg(folder, case_id="s0001")
    assert case.case_id == "totalseg:s0001" and case.levels == ["L3", "L4"]
    assert case.label_values == {"L3": 29, "L4": 28}
    assert any("model output" in n for n in case.notes)


def _write_mha(array_zyx: np.ndarray, path, spacing=(0.6, 0.6, 4.0), origin=(-50.0, 20.0, 10.0)):
    img = sitk.GetImageFromArray(array_zyx)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection((0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0))  # sagittal-like stack
    sitk.WriteImage(img, str(path), useCompression=True)
    return img


def test_mha_reader_matches_simpleitk(tmp_path):
    arr = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    img = _write_mha(arr, tmp_path / "x.mha")
    vol = read_mha(tmp_path / "x.mha")
    assert vol.shape == (5, 4, 3)
    for idx in [(0, 0, 0), (4, 3, 2), (1, 2, 1)]:
        assert vol.data[idx] == arr[idx[2], idx[1], idx[0]]
        assert np.allclose(vol.voxel_to_patient(idx), img.TransformIndexToPhysicalPoint(idx))


def test_spider_mha_and_gradings(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    image = np.random.default_rng(0).integers(0, 400, size=(12, 40, 30)).astype(np.int16)  # z (slices), y, x
    mask = np.zeros_like(image)
    # vertebrae counted from the bottom: 1 = L5 (lowest, large y index = caudal here), 2 = L4; 201 = L5-S1 disc;
    # 102 would be a partly visible vertebra; 100 spinal canal
    mask[3:9, 28:36, 5:20] = 1
    mask[3:9, 18:26, 5:20] = 2
    mask[3:9, 36:39, 5:20] = 201
    mask[3:9, 26:28, 5:20] = 202
    mask[3:9, 2:16, 5:20] = 103
    mask[3:9, 0:40, 22:25] = 100
    for name, arr in (("images", image), ("masks", mask)):
        _write_mha(arr, tmp_path / name / "7_t2.mha")
    with open(tmp_path / "radiological_gradings.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(GRADING_COLUMNS)
        w.writerow([7, 1, 2, 0, 1, 0, 1, 1, 0, 4])
        w.writerow([7, 2, 0, 0, 0, 0, 0, 0, 1, 2])
        w.writerow([7, 0, 0, 0, 0, 0, 0, 0, 0, 1])  # IVD label 0 names no disc (present in the public file)
    (tmp_path / "overview.csv").write_text("new_file_name,subset\n7_t2,training\n")
    assert disc_for_ivd_label(1) == "L5-S1" and disc_for_ivd_label(2) == "L4-L5"
    (case,) = import_spider(tmp_path)
    assert case.case_id == "spider:7" and case.modality == "MR" and case.extra["sequence"] == "t2"
    assert case.levels == ["L3", "L4", "L5"] and "L3" in case.partial
    assert set(case.discs) == {"L4-L5", "L5-S1"}
    got = {(f.level, f.name): f.value for f in case.findings}
    assert got[("L5-S1", "pfirrmann")] == "4" and got[("L5-S1", "modic")] == "type 2"
    assert got[("L5-S1", "disc_herniation")] == "present" and got[("L4-L5", "disc_bulging")] == "present"
    assert got[("L4-L5", "disc_narrowing")] == "absent"
    assert all("radiological_gradings.csv row" in f.location for f in case.findings)


def _rsna_dicom(path, instance: int) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.InstanceNumber = "MR", instance
    ds.Rows, ds.Columns = 32, 32
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = (np.arange(32 * 32, dtype=np.uint16) % 300).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def test_rsna_csvs_and_coordinates(tmp_path):
    columns = ["study_id"] + [f"{c}_{lv}" for c in CONDITIONS for lv in LEVELS]
    with open(tmp_path / "train.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        values = ["Normal/Mild"] * 25
        values[3] = "Moderate"  # spinal_canal_stenosis_l4_l5
        values[9] = "Severe"  # left_neural_foraminal_narrowing_l5_s1
        values[24] = ""  # right_subarticular_stenosis_l5_s1 not graded
        w.writerow(["4003253"] + values)
    (tmp_path / "train_series_descriptions.csv").write_text(
        "study_id,series_id,series_description\n4003253,702807833,Sagittal T2/STIR\n")
    (tmp_path / "train_label_coordinates.csv").write_text(
        "study_id,series_id,instance_number,condition,level,x,y\n"
        "4003253,702807833,8,Spinal Canal Stenosis,L4/L5,15.5,20.25\n"
        "4003253,702807833,8,Spinal Canal Stenosis,L5/S1,16.0,26.0\n")
    _rsna_dicom(tmp_path / "train_images" / "4003253" / "702807833" / "8.dcm", 8)
    (case,) = import_rsna(tmp_path)
    assert case.case_id == "rsna:4003253" and len(case.findings) == 24
    got = {(f.level, f.name): f.value for f in case.findings}
    assert got[("L4-L5", "spinal_canal_stenosis")] == "Moderate"
    assert got[("L5-S1", "left_neural_foraminal_narrowing")] == "Severe"
    assert ("L5-S1", "right_subarticular_stenosis") not in got
    coords = case.extra["coordinates"]
    assert [c["level"] for c in coords] == ["L4-L5", "L5-S1"] and coords[0]["series_description"] == "Sagittal T2/STIR"
    assert pydicom.dcmread(coords[0]["dicom"]).InstanceNumber == 8


def test_rsna_rejects_unknown_severity(tmp_path):
    columns = ["study_id"] + [f"{c}_{lv}" for c in CONDITIONS for lv in LEVELS]
    (tmp_path / "train.csv").write_text(",".join(columns) + "\n1," + ",".join(["Mild"] * 25) + "\n")
    with pytest.raises(ValueError, match="unknown severity"):
        import_rsna(tmp_path)


def test_local_case_folder_with_findings_sheet(tmp_path):
    folder = tmp_path / "case"
    folder.mkdir()
    save_nifti(box_labelmap([(22, 44, 56), (23, 28, 40), (24, 12, 24)]), folder / "spine_seg.nii.gz")
    save_nifti(np.full((40, 40, 60), 100, dtype=np.int16), folder / "t2.nii.gz")
    (folder / "labels_verse.json").write_text(json.dumps({"22": "L3"}))
    (folder / "findings.csv").write_text("level,finding,value,note\nl4/5,pfirrmann,3,\nL5-S1,modic,type 1,\n")
    case, _notes = import_case_folder(folder, case_id="c1", workdir=tmp_path / "w", salt=b"0123456789abcdef!")
    assert case.image_path.name == "t2.nii.gz" and case.label_path.name == "spine_seg.nii.gz"
    assert case.levels == ["L3", "L4", "L5"]
    assert [(f.level, f.name, f.value) for f in case.findings] == [("L4-L5", "pfirrmann", "3"),
                                                                    ("L5-S1", "modic", "type 1")]
    store = CurationStore(tmp_path / "c.db")
    sid = store_case(store, case)
    ids = {c["id"] for c in store.chunks(sid)}
    assert f"{sid}#vertebra-L4" in ids and f"{sid}#finding-0-L4-L5-pfirrmann" in ids
    assert store.source(sid)["meta"]["vertebrae_lps"][0][0] == "L3"  # order preserved through the store
    store.close()
