"""The second landmark stage: crops cut where the geometry says, corners mapped back exactly (with an oracle in
place of the network), the column kept in order when two crops settle on one vertebra, model settings checked, and
a tiny training run that resumes and whose export runs in onnxruntime."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from core.xray import refine as R
from tests.xray_support import column, write_aasce_folder


def test_crop_geometry_round_trip_and_where_a_dot_lands():
    m = R.crop_matrix((300.0, 500.0), 160.0, angle_deg=20.0, flip=True)
    pts = np.array([[310.0, 480.0], [250.0, 560.0]])
    assert R.from_crop(m, R.to_crop(m, pts)) == pytest.approx(pts)
    assert R.to_crop(m, np.array([300.0, 500.0])) == pytest.approx([R.CROP / 2, R.CROP / 2])
    # flipped: a point to the image's left of the centre lands on the crop's right half
    assert R.to_crop(m, np.array([260.0, 500.0]))[0] > R.CROP / 2
    img = np.zeros((1000, 600), np.uint8)
    img[518:523, 338:343] = 255                         # a dot centred on pixel (340, 520)
    work = Image.fromarray(img, mode="L")
    m0 = R.crop_matrix((300.0, 500.0), 128.0)           # 1 working pixel per crop pixel
    crop = R.cut(work, m0).astype(float)
    ys, xs = np.nonzero(crop > 128)
    expected = R.to_crop(m0, np.array([340.5, 520.5]))  # pixel centre, pixel i covering [i, i + 1)
    assert np.hypot(xs.mean() + 0.5 - expected[0], ys.mean() + 0.5 - expected[1]) < 1.0


def _truth():
    return column(np.repeat(np.linspace(15, -15, 17), 2), pitch=120, half_width=55, height=80, top=(500, 200))


def test_refinement_maps_an_oracle_back_to_the_truth():
    """With a 'network' that answers the true corners of the vertebra nearest each crop's centre, first-stage
    guesses off by a third of a vertebra come back to the truth, in original pixels, through the working copy."""
    truth = _truth()                                    # original pixels of a 1100 x 2600 image
    image = np.full((2600, 1100), 50, np.uint8)
    work, sx, sy = R.working_image(image)
    assert work.size[1] == R.WORK_HEIGHT and (sx, sy) == pytest.approx((R.WORK_HEIGHT / 2600,) * 2, rel=1e-3)
    verts = truth.reshape(17, 4, 2) * [sx, sy]
    calls = []

    def oracle(x):
        calls.append(x.shape)
        return np.stack([R.to_crop(m, verts[np.argmin(np.linalg.norm(verts.mean(1) - R.from_crop(
            m, np.array([R.CROP / 2, R.CROP / 2])), axis=1))]) for m in oracle.mats])

    first = truth + np.array([35.0, -40.0])            # every vertebra a third of a vertebra off
    real_crops_for = R.crops_for

    def spy(work_, centres, pitch):
        crops, mats = real_crops_for(work_, centres, pitch)
        oracle.mats = mats
        return crops, mats

    R.crops_for = spy
    try:
        refined = R.refine_landmarks(oracle, image, first, passes=2)
    finally:
        R.crops_for = real_crops_for
    assert calls == [(17, 1, R.CROP, R.CROP)] * 2
    assert refined == pytest.approx(truth, abs=0.05)


def test_two_crops_on_one_vertebra_keep_the_column_in_order():
    first = _truth().reshape(17, 4, 2)
    refined = first.copy()
    refined[5] = first[6]                               # vertebra 5's crop settled on vertebra 6
    out = R._keep_order(first, refined)
    assert out[5] == pytest.approx(first[5]) and out[6] == pytest.approx(first[6])
    assert np.all(np.diff(out.mean(axis=1)[:, 1]) > 0)


def test_model_settings_must_match_the_crops(tmp_path):
    from core.xray.landmarks import LandmarkModel, LandmarkModelError, default_model_dir

    src = default_model_dir()
    d = tmp_path / "m"
    d.mkdir()
    shutil.copy(src / "model.onnx", d / "model.onnx")
    settings = json.loads((src / "model.json").read_text())
    settings["refine"] = {"file": "refine.onnx", "crop": 64, "side_pitches": R.SIDE_PITCHES,
                          "work_height": R.WORK_HEIGHT}
    (d / "model.json").write_text(json.dumps(settings))
    with pytest.raises(LandmarkModelError, match="model.json: the refinement stage was trained on crops"):
        LandmarkModel(d)
    settings["refine"]["crop"] = R.CROP
    (d / "model.json").write_text(json.dumps(settings))
    with pytest.raises(LandmarkModelError, match=r"refine.onnx: missing"):
        LandmarkModel(d)


def test_tiny_training_run_resumes_and_exports(tmp_path):
    """Two synthetic radiographs in the AASCE layout, one epoch, then a second epoch resumed from the checkpoint;
    the exported refine.onnx runs in onnxruntime on the crops core.xray.refine cuts."""
    pytest.importorskip("torch")
    import onnxruntime as ort

    from core.xray.landmarks import default_model_dir
    from training.xray.config import XrayRefineConfig
    from training.xray.refine_ship import export_refine_onnx
    from training.xray.refine_train import run_refine_training

    data = tmp_path / "data"
    names = write_aasce_folder(data)
    first = tmp_path / "first"
    first.mkdir()
    shutil.copy(default_model_dir() / "model.onnx", first / "model.onnx")
    settings = json.loads((default_model_dir() / "model.json").read_text())
    settings.pop("refine", None)                        # the first stage alone
    (first / "model.json").write_text(json.dumps(settings))
    (first / "validation_files.json").write_text(json.dumps({"validation_files": [names[1]]}))
    cfg = XrayRefineConfig(data_dir=str(data), output_dir=str(tmp_path / "run"), first_stage=str(first), epochs=1,
                           batch_size=8, eval_every=1)
    r1 = run_refine_training(cfg, progress_bar=False)
    assert r1["finished"] and r1["epochs_done"] == 1
    assert r1["validation"]["images"] == 1 and np.isfinite(r1["validation"]["smape"])
    assert (tmp_path / "run" / "training_curves.png").stat().st_size > 0
    # a longer run in the same folder resumes at epoch 1 (the saved settings are kept, only the epochs grow)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    saved["epochs"] = 2
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    import torch

    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    ck["state"]["finished"] = False
    torch.save(ck, tmp_path / "run" / "checkpoint.pt")
    r2 = run_refine_training(cfg, progress_bar=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert r2["epochs_done"] == 2 and [h["epoch"] for h in history] == [1, 2]
    onnx_path = tmp_path / "refine.onnx"
    export_refine_onnx(tmp_path / "run", onnx_path)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    crops = R.standardise_crops(np.random.default_rng(0).integers(0, 255, (3, R.CROP, R.CROP), dtype=np.uint8))
    (out,) = sess.run(None, {"crops": crops})
    assert out.shape == (3, 4, 2) and np.all(np.isfinite(out))


def test_shipped_second_stage_brings_the_endplates_closer_on_held_out_radiographs():
    """The shipped model runs both stages; on five validation radiographs (never trained on) the endplate tilts of
    both stages are nearer the manual ones than the first stage's alone."""
    from core.xray.aasce import read_dataset
    from core.xray.cobb import endplate_tilts
    from core.xray.landmarks import LandmarkModel
    from tests.xray_support import aasce_dir

    root = aasce_dir()
    model = LandmarkModel(threads=1)
    assert model.refine_session is not None and model.settings["refine"]["crop"] == R.CROP
    first_only = LandmarkModel(threads=1)
    first_only.refine_session = None
    names = json.loads((model.model_dir / "validation_files.json").read_text())["validation_files"][:5]
    labels = root / "labels"
    records = {r.name: r for r in read_dataset(labels / "filenames.csv", labels / "landmarks.csv",
                                               labels / "angles.csv")}
    err_both, err_first = [], []
    for name in names:
        with Image.open(root / "images" / name) as im:
            gray = np.asarray(im.convert("L"))
        both, first = model.predict(gray), first_only.predict(gray)
        assert both.refined and not first.refined
        ref = endplate_tilts(records[name].landmarks_px(gray.shape[1], gray.shape[0]))
        err_both.append(np.abs(endplate_tilts(both.landmarks) - ref).mean())
        err_first.append(np.abs(endplate_tilts(first.landmarks) - ref).mean())
    assert np.mean(err_both) < np.mean(err_first), (err_both, err_first)
