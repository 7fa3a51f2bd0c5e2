"""The shipped preset files are valid, and the validator rejects malformed ones (no Qt)."""
import copy
import itertools
import json

import numpy as np
import pytest

from app import presets
from app.presets import PresetError


def test_window_level_file_has_the_clinical_presets():
    wl = presets.load_window_level_presets()
    assert wl.get("bone").resolve(None) == (2000.0, 500.0)
    assert wl.get("soft_tissue").resolve(None) == (400.0, 40.0)
    assert wl.get("spine_mr_auto").auto_percentiles == (1.0, 99.0)
    assert wl.default_for("CT").name == "bone"
    assert wl.default_for("MR").name == "spine_mr_auto"
    assert wl.default_for("XA").name == wl.default_by_modality["*"]
    for p in wl.presets:
        assert p.label and p.description and p.modalities


def test_spine_mr_auto_spans_percentiles_of_the_data():
    data = np.arange(1001, dtype=np.float32)
    window, level = presets.load_window_level_presets().get("spine_mr_auto").resolve(data)
    assert level == pytest.approx(500, abs=1) and window == pytest.approx(980, abs=2)


def test_volume_rendering_file_is_valid_and_monotone():
    vr = presets.load_volume_rendering_presets()
    names = {p.name for p in vr.presets}
    assert {"ct_bone", "ct_soft_tissue", "mr_spine"} <= names
    for p in vr.presets:
        assert p.description
        for points in (p.color, p.opacity):
            values = [pt[0] for pt in points]
            assert values == sorted(values) and len(set(values)) == len(values)
        assert all(0 <= c <= 1 for pt in p.color for c in pt[1:])
        assert all(0 <= a <= 1 for _v, a in p.opacity)
    bone_iso = vr.isosurface_for("CT")
    assert bone_iso.value_mode == "absolute" and 200 <= bone_iso.value <= 300
    assert vr.default_for("CT").name == "ct_bone" and vr.default_for("MR").name == "mr_spine"


def test_percentile_preset_resolves_to_increasing_absolute_values_even_on_flat_histograms():
    mr = presets.load_volume_rendering_presets().get("mr_spine")
    data = np.concatenate([np.zeros(70_000), np.linspace(1, 900, 30_000)])  # 70 % empty background
    resolved = mr.resolve(data)
    assert resolved.value_mode == "absolute"
    for points in (resolved.color, resolved.opacity):
        values = [pt[0] for pt in points]
        assert all(b > a for a, b in itertools.pairwise(values))
    assert resolved.opacity[-1][0] == pytest.approx(900, rel=0.01)


def _vr_doc():
    return json.loads(presets.VOLUME_RENDERING_FILE.read_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["presets"][0]["opacity"].reverse(), "strictly increasing"),
        (lambda d: d["presets"][0]["color"][1].__setitem__(1, 1.5), "outside 0..1"),
        (lambda d: d["presets"][0].pop("description"), "missing key"),
        (lambda d: d["presets"][2]["opacity"][-1].__setitem__(0, 140), "within 0..100"),
        (lambda d: d["presets"][0].__setitem__("value_mode", "relative"), "value_mode"),
        (lambda d: d["default_by_modality"].__setitem__("CT", "nope"), "unknown preset"),
        (lambda d: d["presets"][1].__setitem__("name", "ct_bone"), "duplicate"),
    ],
)
def test_volume_rendering_validator_rejects(mutate, message):
    doc = copy.deepcopy(_vr_doc())
    mutate(doc)
    with pytest.raises(PresetError, match=message):
        presets.parse_volume_rendering(doc)


def test_window_level_validator_rejects_bad_window():
    doc = json.loads(presets.WINDOW_LEVEL_FILE.read_text())
    doc["presets"][0]["window"] = 0
    with pytest.raises(PresetError, match="window must be positive"):
        presets.parse_window_level(doc)
    doc = json.loads(presets.WINDOW_LEVEL_FILE.read_text())
    doc["presets"][2]["auto_percentiles"] = [99, 1]
    with pytest.raises(PresetError, match="auto_percentiles"):
        presets.parse_window_level(doc)


def test_unreadable_file_names_it(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(PresetError, match="broken.json"):
        presets.load_volume_rendering_presets(bad)
