"""Label numberings (VerSe/TPTBox, TotalSegmentator, SCT): tables, round trips, and the samples' label JSONs."""
import json

import pytest

from core.spine.anatomy import STANDARD, SpineConfiguration
from core.spine.numbering import NUMBERINGS, configuration_from_values, convert, get_numbering


def test_documented_values():
    verse, ts, sct = get_numbering("verse"), get_numbering("totalseg"), get_numbering("sct")
    assert [verse.name_of(v) for v in (1, 7, 8, 19, 20, 24, 26)] == ["C1", "C7", "T1", "T12", "L1", "L5", "S1"]
    assert verse.name_of(25) == "L6" and verse.name_of(28) == "T13"
    assert [ts.name_of(v) for v in (26, 27, 31, 32, 43, 44, 50)] == ["S1", "L5", "L1", "T12", "T1", "C7", "C1"]
    assert ts.decode(79).name == "spinal_cord" and ts.decode(25).name == "sacrum" and ts.name_of(25) is None
    assert [sct.name_of(v) for v in (1, 7, 8, 19, 20, 24, 25)] == ["C1", "C7", "T1", "T12", "L1", "L5", "S1"]
    assert sct.on_cord and not verse.on_cord
    pp = get_numbering("totalseg_vertebrae_pp")
    assert pp.name_of(1) == "C1" and pp.name_of(24) == "L5" and pp.name_of(25) is None
    assert get_numbering("totalseg_vertebrae_mr").name_of(2) == "L5"
    assert get_numbering("totalseg_v1").name_of(18) == "L5"


def test_verse_discs_and_endplates_depend_on_configuration():
    verse = get_numbering("verse")
    assert verse.decode(105).name == "C5-C6" and verse.decode(105).kind == "disc"
    assert verse.decode(119).name == "T12-L1"
    assert verse.decode(119, SpineConfiguration(thoracic=13)).name == "T12-T13"
    assert verse.decode(128, SpineConfiguration(thoracic=13)).name == "T13-L1"
    assert verse.decode(124).name == "L5-S1"
    assert verse.decode(124, SpineConfiguration(lumbar=6)).name == "L5-L6"
    assert verse.decode(207).kind == "endplate" and verse.decode(207).name == "C7"
    assert verse.encode("L4-L5") == 123 and verse.encode("L4", "endplate") == 223
    assert verse.decode(0) is None and verse.decode(99) is None
    assert configuration_from_values(verse, [19, 28, 20]) == SpineConfiguration(thoracic=13)
    assert configuration_from_values(verse, [24, 25]) == SpineConfiguration(lumbar=6)


@pytest.mark.parametrize("key", sorted(NUMBERINGS))
def test_round_trip_every_value(key):
    numbering = get_numbering(key)
    for value, name in numbering.vertebrae.items():
        assert numbering.encode(name) == value
        assert numbering.name_of(value) == name
    for value, name in numbering.structures.items():
        assert numbering.encode(name, "structure") == value


def test_conversion_between_numberings():
    verse, ts, sct = get_numbering("verse"), get_numbering("totalseg"), get_numbering("sct")
    for name in STANDARD.vertebrae:
        assert convert(verse.encode(name), verse, ts) == ts.encode(name)
        assert convert(ts.encode(name), ts, sct) == sct.encode(name)
    assert convert(28, verse, ts) is None  # T13 has no TotalSegmentator label
    assert convert(105, verse, ts) is None  # nor do discs


@pytest.mark.parametrize("folder,file,key", [
    ("tptbox_ct_lumbar_crop_L2-L4", "labels_verse.json", "verse"),
    ("tptbox_mri_cervical_crop_C5-C7", "labels_verse.json", "verse"),
    ("verse004_labels_only_T9-L5", "labels_verse.json", "verse"),
    ("ts_ct_dicom_T11-T12", "labels_totalseg.json", "totalseg"),
    ("sct_cervical_t2_mri_C2-C5", "labels_sct.json", "sct"),
])
def test_sample_label_json_round_trip(samples, folder, file, key):
    table = json.loads((samples / folder / file).read_text())
    numbering = get_numbering(key)
    assert table, "empty label table"
    for value, name in table.items():
        meaning = numbering.decode(int(value))
        assert meaning is not None, f"{key} value {value} ({name}) is not known"
        assert meaning.name == name
        kind = "structure" if meaning.kind == "structure" else "vertebra"
        assert numbering.encode(name, kind) == int(value)


def test_sample_centroid_json_names_match_labels(samples):
    for folder, key in (("tptbox_ct_lumbar_crop_L2-L4", "verse"), ("ts_ct_dicom_T11-T12", "totalseg"),
                        ("sct_cervical_t2_mri_C2-C5", "sct"), ("verse004_labels_only_T9-L5", "verse"),
                        ("tptbox_mri_cervical_crop_C5-C7", "verse")):
        doc = json.loads((samples / folder / "centroids_DERIVED.json").read_text())
        numbering = get_numbering(key)
        for name, entry in doc["levels"].items():
            meaning = numbering.decode(entry["label"])
            if meaning.kind == "vertebra":
                assert meaning.name == name
            elif meaning.kind == "disc":
                assert name == f"IVD below {meaning.name.split('-')[0]}"
            else:
                assert name == f"endplate of {meaning.name}"
