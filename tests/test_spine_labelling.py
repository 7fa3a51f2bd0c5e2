"""Labelling JSON round trip, storage in a real SQLite library file, and semi-automatic renaming."""
import json

import pytest

from core.library import Library
from core.library.migrations import MIGRATIONS, applied
from core.spine.anatomy import SpineConfiguration
from core.spine.labelling import DiscLabel, Provenance, SpineLabelling, VertebraLabel
from core.spine.store import LevelStore


def _unnamed(n=5, series_uid="1.2.3"):
    vertebrae = [VertebraLabel(None, (0.0, 0.0, -30.0 * i), 0.0) for i in range(n)]
    discs = [DiscLabel(None, (0.0, 0.0, -30.0 * i - 15.0), (0.0, 0.0, 1.0), 0.8) for i in range(n - 1)]
    return SpineLabelling(vertebrae, discs, Provenance("classical-ct", "0.1"), series_uid=series_uid,
                          message="not named")


def test_json_round_trip():
    lab = _unnamed().renamed_from(0, "L1", user="dr_a")
    lab.vertebrae[2].mask_ref = "seg.nii.gz#22"
    lab.vertebrae[4].partial = True
    lab.notes.append("possible L6")
    again = SpineLabelling.from_json(lab.to_json())
    assert again == lab
    doc = json.loads(lab.to_json())
    assert doc["format"] == "spinemed.levels" and doc["coordinates"] == "LPS mm"
    with pytest.raises(ValueError):
        SpineLabelling.from_dict({"format": "other"})


def test_rename_from_one_click_names_all_along_the_spine():
    lab = _unnamed(6)
    assert lab.needs_confirmation and not lab.named
    named = lab.renamed_from(2, "L3", user="dr_b")
    assert [v.name for v in named.vertebrae] == ["L1", "L2", "L3", "L4", "L5", "S1"]
    assert [d.name for d in named.discs] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert named.provenance.method == "user" and named.provenance.user == "dr_b"
    assert named.provenance.based_on == "classical-ct" and named.anchor == "L3" and not named.needs_confirmation
    assert lab.vertebrae[0].name is None  # the original is untouched
    # the others are named by counting: not doubtful ("L2?") in the views any more, but short of the user's own 1.0
    assert [v.confidence for v in named.vertebrae] == [0.75, 0.75, 1.0, 0.75, 0.75, 0.75]
    # past the end of the spine: names run out instead of inventing S2
    low = lab.renamed_from(0, "L5")
    assert [v.name for v in low.vertebrae] == ["L5", "S1", None, None, None, None]
    assert low.discs[0].name == "L5-S1" and low.discs[1].name is None
    # junctions
    assert [v.name for v in lab.renamed_from(0, "C6").vertebrae][:4] == ["C6", "C7", "T1", "T2"]
    assert lab.renamed_from(0, "C6").discs[1].name == "C7-T1"


def test_rename_with_variant_configuration():
    lab = _unnamed(6).renamed_from(5, "S1")
    assert [v.name for v in lab.vertebrae] == ["L1", "L2", "L3", "L4", "L5", "S1"]
    l6 = lab.with_configuration(SpineConfiguration(lumbar=6), user="dr_c")
    assert [v.name for v in l6.vertebrae] == ["L2", "L3", "L4", "L5", "L6", "S1"]
    assert l6.discs[-1].name == "L6-S1" and l6.configuration.lumbar == 6
    lstv = lab.with_configuration(SpineConfiguration(lumbar=4))
    assert [v.name for v in lstv.vertebrae] == ["T12", "L1", "L2", "L3", "L4", "S1"]
    assert lstv.discs[-1].name == "L4-S1"
    with pytest.raises(ValueError):
        lab.renamed_from(0, "L6")


def test_nearest_vertebra_for_a_click():
    lab = _unnamed(4)
    assert lab.nearest_vertebra((1.0, 2.0, -58.0)) == 2
    assert SpineLabelling([]).nearest_vertebra((0, 0, 0)) is None


def test_store_round_trip_in_a_real_library_file(tmp_path):
    path = tmp_path / "library.db"
    lib = Library(path)
    assert "003_levels" in applied(lib.db) and "003_levels" in [n for n, _ in MIGRATIONS]
    store = LevelStore(lib.db)
    auto = _unnamed(series_uid="1.2.840.1")
    store.save(auto)
    edited = auto.renamed_from(1, "L2", user="dr_d")
    store.save(edited)
    lib.close()

    store2 = LevelStore.open(path)  # a new connection to the same file
    assert store2.load("1.2.840.1") == edited
    history = store2.history("1.2.840.1")
    assert [h.provenance.method for h in history] == ["classical-ct", "user"] and history[0] == auto
    assert store2.labelled_series() == ["1.2.840.1"] and store2.load("other") is None
    store2.delete("1.2.840.1")
    assert store2.load("1.2.840.1") is None and len(store2.history("1.2.840.1")) == 2
    with pytest.raises(ValueError):
        store2.save(_unnamed(series_uid=""))


def test_numpy_confidences_from_a_labeller_save(tmp_path):
    """The classical MR labeller gave a disc a numpy float32 confidence: 'Levels not saved: Object of type float32
    is not JSON serializable' on a real MR. Labels coerce their numbers, so the store saves them."""
    import numpy as np

    lab = SpineLabelling([VertebraLabel("L4", (0, 0, 40), np.float32(0.8), partial=np.bool_(True)),
                          VertebraLabel("L5", (0, 0, 0), np.float64(0.9))],
                         [DiscLabel("L4-L5", (0, 0, 20), (0, 0, 1), np.float32(0.625))],
                         confidence=np.float32(0.7), series_uid="uid-1")
    lib = Library(tmp_path / "library.db")
    LevelStore(lib.db).save(lab)
    back = LevelStore(lib.db).load("uid-1")
    assert back.discs[0].confidence == pytest.approx(0.625) and back.vertebrae[0].partial is True
    assert json.loads(lab.to_json())["confidence"] == pytest.approx(0.7)
