"""DICOM de-identification (PS3.15 Basic Profile): read the written files back and check every identifying tag."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from curation.sources.deid import (
    PROFILE,
    BurnedInAnnotationError,
    Deidentifier,
    deidentify_folder,
    name_token_hash,
    remap_uid,
    strict_pydicom,
)

SALT = b"test-salt-0123456789abcdef"
STUDY = "1.2.826.0.1.3680043.8.498.1001"
FOR = "1.2.826.0.1.3680043.8.498.1002"


def _phi_file(path, sop_uid: str, ref_uid: str | None = None, burned_in: str | None = None) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "ST_MARYS_PACS"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = STUDY + ".1"
    ds.FrameOfReferenceUID = FOR
    ds.PatientName = "Doe^Johnathan"
    ds.PatientID = "MRN-12345678"
    ds.PatientBirthDate = "19610214"
    ds.PatientSex = "M"
    ds.PatientAge = "063Y"
    ds.PatientAddress = "1 High Street, Springfield"
    ds.OtherPatientIDs = "99887766"
    ds.InstitutionName = "St Mary Hospital"
    ds.InstitutionAddress = "Springfield"
    ds.ReferringPhysicianName = "Smith^Alice"
    ds.OperatorsName = "Tech^Bob"
    ds.StudyDate = "20240105"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC778899"
    ds.StudyDescription = "CT LSPINE for Johnathan Doe"
    ds.Modality = "CT"
    ds.BodyPartExamined = "LSPINE"
    ds.Rows, ds.Columns = 8, 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = (np.arange(64, dtype=np.int16) * 7).tobytes()
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    # a nested sequence with a person name and a reference to the other instance
    item = Dataset()
    item.PersonName = "Nurse^Carol"
    item.ReferencedSOPClassUID = CTImageStorage
    item.ReferencedSOPInstanceUID = ref_uid or sop_uid
    ds.ReferencedImageSequence = Sequence([item])
    ds.add_new(0x00091010, "LO", "private vendor note: Johnathan")
    ds.add_new(0x60003000, "OW", b"\x00" * 8)  # overlay data
    ds.save_as(path, enforce_file_format=True)


def test_profile_keywords_are_all_known():
    from pydicom.datadict import tag_for_keyword

    assert all(tag_for_keyword(kw) is not None for kw in PROFILE)


def test_strict_mode_makes_unknown_keywords_raise():
    ds = Dataset()
    with strict_pydicom(), pytest.raises(ValueError):
        ds.PatientsName = "Doe^John"  # an old/misspelt keyword: silently ignored without strict mode
    with pytest.warns(UserWarning):
        ds.PatientsName2 = "x"  # the default behaviour is back after the context


def test_basic_profile_read_back(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    uid_a, uid_b = generate_uid(), generate_uid()
    _phi_file(src / "Doe_Johnathan_1.dcm", uid_a, ref_uid=uid_b)
    _phi_file(src / "Doe_Johnathan_2.dcm", uid_b, ref_uid=uid_a)
    out = tmp_path / "out"
    reports, refused = deidentify_folder(src, out, SALT)
    assert not refused and len(reports) == 2
    written = sorted(out.glob("*.dcm"))
    assert len(written) == 2 and not any("Doe" in p.name for p in written)
    back = [pydicom.dcmread(p) for p in written]
    for ds in back:
        text = str(ds) + str(ds.file_meta)
        for secret in ("Johnathan", "Doe", "12345678", "19610214", "High Street", "St Mary", "Smith", "Tech^Bob",
                       "Nurse", "ACC778899", "99887766", "ST_MARYS_PACS", "20240105"):
            assert secret not in text, secret
        for kw in ("PatientAddress", "OtherPatientIDs", "InstitutionName", "InstitutionAddress", "OperatorsName",
                   "StudyDescription", "PatientAge"):
            assert kw not in ds, kw
        assert ds.PatientName == "" and ds.PatientBirthDate == "" and ds.StudyDate == ""
        assert ds.PatientID.startswith("ANON-")
        assert ds.PatientIdentityRemoved == "YES"
        assert "PS3.15" in ds.DeidentificationMethod
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert not any(elem.tag.is_private for elem in ds)
        assert 0x60003000 not in ds
        assert ds.StudyInstanceUID == remap_uid(STUDY, SALT) and ds.StudyInstanceUID.startswith("2.25.")
        assert ds.FrameOfReferenceUID == remap_uid(FOR, SALT)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID == CTImageStorage  # DICOM-defined UIDs are kept
        assert ds.Modality == "CT" and ds.BodyPartExamined == "LSPINE"  # non-identifying attributes stay
        assert np.array_equal(ds.pixel_array.ravel(), np.arange(64, dtype=np.int16) * 7)
    # consistent within the study: one study UID, and the cross references point at the new instance UIDs
    assert len({ds.StudyInstanceUID for ds in back}) == 1
    sops = {ds.SOPInstanceUID for ds in back}
    assert {ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID for ds in back} == sops
    assert {remap_uid(uid_a, SALT), remap_uid(uid_b, SALT)} == sops
    # the PN tokens come back as salted hashes (for the PHI scan), never as names
    hashes = set(reports[0].name_hashes)
    assert name_token_hash("johnathan", SALT) in hashes and name_token_hash("carol", SALT) in hashes
    assert not any("john" in h.lower() for h in hashes)


def test_burned_in_annotation_refused_or_flagged(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _phi_file(src / "a.dcm", generate_uid(), burned_in="YES")
    reports, refused = deidentify_folder(src, tmp_path / "out", SALT)
    assert not reports and len(refused) == 1 and "BurnedInAnnotation" in refused[0]
    with pytest.raises(BurnedInAnnotationError):
        Deidentifier(SALT).deidentify_file(src / "a.dcm", tmp_path / "out")
    report = Deidentifier(SALT, allow_burned_in=True).deidentify_file(src / "a.dcm", tmp_path / "out2")
    assert any("burned-in" in f for f in report.flags)


def test_retain_patient_characteristics_option(tmp_path):
    _phi_file(tmp_path / "a.dcm", generate_uid())
    rep = Deidentifier(SALT, retain_patient_characteristics=True).deidentify_file(tmp_path / "a.dcm", tmp_path / "o")
    ds = pydicom.dcmread(rep.output)
    assert ds.PatientAge == "063Y" and ds.PatientSex == "M"
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113108"]


def test_real_ct_series_keeps_pixels(tmp_path, bundled_ct):
    """The bundled real CT (JPEG 2000, with a real institution address in its header)."""
    reports, refused = deidentify_folder(bundled_ct, tmp_path / "out", SALT)
    assert not refused and len(reports) == 20
    first = min(bundled_ct.iterdir())
    original = pydicom.dcmread(first)
    rep = next(r for r in reports if r.source == first)
    back = pydicom.dcmread(rep.output)
    assert "InstitutionAddress" in original and "InstitutionAddress" not in back
    assert "DeviceSerialNumber" not in back and "StationName" not in back
    assert back.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert np.array_equal(back.pixel_array, original.pixel_array)
    assert len({pydicom.dcmread(r.output).FrameOfReferenceUID for r in reports}) == 1
