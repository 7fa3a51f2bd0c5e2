"""The learned labeller (ONNX through onnxruntime): naming from anchor classes, the weights it records, missing and
corrupt weights, bad images, and inference on real samples."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from core.spine.autolabel import AutoLabelError, get_backend
from core.spine.autolabel.learned import DEFAULT_DIR, LearnedLevels, name_detections
from core.studies.volume import Volume

SHIPPED = DEFAULT_DIR / "model.onnx"


def _probs(kinds: str, sure: float = 0.95) -> np.ndarray:
    """Anchor-class probabilities from letters: 2 = C2, c = C3-C7, t, l, s; ``sure`` on the letter's class."""
    idx = {"2": 1, "c": 2, "t": 3, "l": 4, "s": 5}
    out = np.full((len(kinds), 6), (1.0 - sure) / 5)
    for i, k in enumerate(kinds):
        out[i, idx[k]] = sure
    return out / out.sum(axis=1, keepdims=True)


def test_naming_from_the_sacrum():
    names, conf, config, anchor, evidence, _ = name_detections(_probs("llllls"))
    assert names == ["L1", "L2", "L3", "L4", "L5", "S1"] and config.is_standard
    assert anchor == "S1" and "sacrum" in evidence and conf > 0.8


def test_naming_from_c2_and_from_the_thoracolumbar_junction():
    names, conf, _, anchor, _, _ = name_detections(_probs("2ccccc"))
    assert names == ["C2", "C3", "C4", "C5", "C6", "C7"] and anchor == "C2" and conf > 0.8
    names, conf, _, anchor, _, _ = name_detections(_probs("tttll"))
    assert names == ["T10", "T11", "T12", "L1", "L2"] and anchor == "T12" and conf > 0.6


def test_no_anchor_names_nothing():
    names, conf, _, anchor, _, _ = name_detections(_probs("lll"))
    assert names == [None, None, None] and anchor is None and conf < 0.6
    names, _, _, anchor, _, _ = name_detections(_probs("tttt"))
    assert names == [None] * 4 and anchor is None


def test_weak_types_name_nothing():
    """Types the network is not sure of are no anchor: nothing is named rather than a guess."""
    names, _, _, anchor, _, _ = name_detections(_probs("tttll", sure=0.45))
    assert names == [None] * 5 and anchor is None


def test_six_lumbar_types_above_the_sacrum_are_not_forced_into_a_standard_spine():
    """One vertebra more than the standard spine has: either named with L6, or left unnamed with a note; never the
    standard names over a vertebra whose type does not fit them."""
    names, _, config, _, _, notes = name_detections(_probs("tlllllls", sure=0.99))
    if names[0] is not None:
        assert config.lumbar == 6 and names[-2:] == ["L6", "S1"]
    else:
        assert any("transitional" in n for n in notes)


@pytest.fixture
def weights_copy(tmp_path):
    if not SHIPPED.exists():
        pytest.fail(f"the shipped weights {SHIPPED} are missing")
    dest = tmp_path / "model"
    shutil.copytree(DEFAULT_DIR, dest)
    return dest


def test_missing_weights_file_is_a_clear_message(weights_copy):
    (weights_copy / "model.onnx").unlink()
    backend = LearnedLevels(weights_copy)
    ok, why = backend.available()
    assert not ok and "model.onnx" in why and "missing" in why
    vol = Volume(np.zeros((40, 40, 40), np.float32), np.eye(4), modality="MR")
    with pytest.raises(AutoLabelError, match="missing"):
        backend.run(vol)


def test_corrupt_weights_file_is_a_clear_message(weights_copy):
    path = weights_copy / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\0" * 64
    path.write_bytes(bytes(data))
    ok, why = LearnedLevels(weights_copy).available()
    assert not ok and "corrupt" in why
    # the same damage without a checksum to catch it: onnxruntime refuses the file, still a clear message
    path.write_bytes(b"not an onnx model")
    meta = json.loads((weights_copy / "labeller.json").read_text())
    meta.pop("sha256")
    (weights_copy / "labeller.json").write_text(json.dumps(meta))
    vol = Volume(np.zeros((40, 40, 40), np.float32), np.eye(4), modality="MR")
    with pytest.raises(AutoLabelError, match="cannot be loaded"):
        LearnedLevels(weights_copy).run(vol)


def test_cli_with_corrupt_weights_says_so(weights_copy, tmp_path, samples):
    (weights_copy / "model.onnx").write_bytes(b"\0" * 100)
    image = samples / "tptbox_mri_cervical_crop_C5-C7" / "sub-mri_label-6_T2w.nii.gz"
    env = {**__import__("os").environ, "SPINEMED_LEVELS_MODEL_DIR": str(weights_copy)}
    proc = subprocess.run([sys.executable, "-m", "app.cli", "levels", "auto", str(image), "--backend", "learned",
                           "-q"], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 2
    assert "corrupt" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_images():
    backend = LearnedLevels()
    with pytest.raises(AutoLabelError, match="single slice"):
        backend.run(Volume(np.zeros((64, 64, 1), np.float32), np.eye(4), modality="MR"))
    with pytest.raises(AutoLabelError, match="anisotropic"):
        backend.run(Volume(np.zeros((64, 64, 8), np.float32), np.diag([0.5, 0.5, 10.0, 1.0]), modality="MR"))
    with pytest.raises(AutoLabelError, match="no vertebral body"):  # nothing in view: a flat image
        backend.run(Volume(np.full((80, 80, 80), 100.0, np.float32), np.eye(4), modality="MR"))


def test_real_ct_crop_records_the_weights(samples):
    from core.library.opener import load_volume
    from core.spine.numbering import get_numbering
    from core.spine.reference import reference_from_labelmap

    folder = samples / "tptbox_ct_lumbar_crop_L2-L4"
    vol, _ = load_volume(folder / "sub-ct_label-22_ct.nii.gz")
    ref = reference_from_labelmap(load_volume(folder / "sub-ct_seg-vert_label-22_msk.nii.gz")[0],
                                  get_numbering("verse"), canal_from_neighbours=True)
    lab = get_backend("learned").run(vol)
    sha = hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert lab.provenance.method == "spinemed-levels-synth" and lab.provenance.weights_sha256 == sha
    assert lab.provenance.version == "0.1.0+pipeline3" and sha[:12] in lab.provenance.describe()
    pts = np.array([v.centroid for v in lab.vertebrae])
    nearest = np.linalg.norm(pts - np.asarray(ref.points["L3"]), axis=1).min()
    assert nearest < 8.0  # L3, the one whole vertebra of the crop, is found
    assert not any(v.name for v in lab.vertebrae)  # L2-L4: no anchor in view, nothing named
