"""The second landmark stage: crops cut where the geometry says, corners mapped back exactly (with an oracle in
place of the network), the column kept in order when two crops settle on one vertebra, model settings checked, and
a tiny training run that resumes and whose export runs in onnxruntime."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.xray import refine as R
from tests.xray_support import column, reopen_finished_run, write_aasce_folder


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


BIAS = 3.0      # crop pixels to the right: a network with a left-right bias


def _box_network(x: np.ndarray) -> np.ndarray:
    """A stand-in network that reads the crops: the corners of the bright box nearest each crop's centre (edges in
    crop pixels, pixel i covering [i, i + 1)), all moved BIAS pixels to the right."""
    from scipy import ndimage

    out = []
    for crop in x[:, 0]:
        labels, n = ndimage.label(crop > 0)
        centres = np.array(ndimage.center_of_mass(crop > 0, labels, range(1, n + 1)))
        k = 1 + int(np.argmin(np.linalg.norm(centres - (R.CROP / 2 - 0.5), axis=1)))
        ys, xs = np.nonzero(labels == k)
        x0, x1, y0, y1 = xs.min() + BIAS, xs.max() + 1 + BIAS, ys.min(), ys.max() + 1
        out.append([[x0, y0], [x1, y0], [x0, y1], [x1, y1]])
    return np.array(out, float)


def test_flip_averaging_makes_a_symmetric_crop_give_symmetric_corners():
    """Test-time flip: the crop is also run mirrored, its corners mirrored back with left and right swapped, and the
    two averaged. A left-right symmetric box then gets corners symmetric about the crop's centre line (the network's
    bias cancels); without the flip they are BIAS off. An off-centre box gets its true edges."""
    crops = np.zeros((2, R.CROP, R.CROP), np.uint8)
    crops[0, 50:78, 44:84] = 200                        # columns 44..83: symmetric about x = 64
    crops[1, 40:70, 30:60] = 200                        # off-centre: edges at x = 30 and 60
    plain = R.run_crops(_box_network, crops)
    flipped = R.run_crops(_box_network, crops, flip=True)
    assert plain[0, :, 0] == pytest.approx([44 + BIAS, 84 + BIAS] * 2)
    assert flipped[0, :, 0] == pytest.approx([44, 84, 44, 84])
    assert flipped[0, 0, 0] + flipped[0, 1, 0] == pytest.approx(R.CROP)          # symmetric about the centre
    assert flipped[0, :, 1] == pytest.approx([50, 50, 78, 78])
    assert flipped[1].ravel() == pytest.approx([30, 40, 60, 40, 30, 70, 60, 70])


def test_flip_through_the_whole_second_stage_finds_drawn_vertebrae():
    """A radiograph with one bright block per vertebra at known corners and first-stage guesses a third of a
    vertebra off: with the flip the biased stand-in network's corners come back to the blocks' corners in
    original pixels (through the working copy and each crop's geometry); without it they stay off to the right."""
    truth = column(np.zeros(34), pitch=120, half_width=55, height=80, top=(500, 200)).reshape(17, 4, 2)
    image = np.full((2600, 1100), 20, np.uint8)
    for v in truth:
        image[int(v[0, 1]):int(v[2, 1]), int(v[0, 0]):int(v[1, 0])] = 220
    first = truth.reshape(68, 2) + np.array([35.0, -40.0])
    with_flip = R.refine_landmarks(_box_network, image, first, passes=2, flip=True).reshape(17, 4, 2)
    without = R.refine_landmarks(_box_network, image, first, passes=2).reshape(17, 4, 2)
    px = R.SIDE_PITCHES * 120 / R.CROP                 # original pixels per crop pixel (spacing 120 px)
    # thresholding the resampled blocks places an edge within a crop pixel; the bias moves every corner
    assert np.abs(with_flip - truth).max() < 1.2 * px
    assert np.abs(with_flip.mean(axis=1) - truth.mean(axis=1)).max() < 0.5 * px
    shift = without.mean(axis=1)[:, 0] - truth.mean(axis=1)[:, 0]
    assert shift == pytest.approx(np.full(17, BIAS * px), abs=0.5 * px)


def test_passes_are_averaged_and_the_average_is_checked():
    first = _truth()
    shift = np.array([4.0, -2.0])
    outputs = [first.reshape(17, 4, 2) + shift, first.reshape(17, 4, 2) - shift, first.reshape(17, 4, 2) + 3 * shift]
    assert R.combine_passes(outputs, first, (1.0, 1.0), 2) == pytest.approx(first + shift)
    assert R.combine_passes(outputs, first, (1.0, 1.0), 1) == pytest.approx(first + 3 * shift)
    with pytest.raises(ValueError, match="last 3 of 2 passes"):
        R.refine_on_work(_box_network, Image.new("L", (10, 10)), (1.0, 1.0), first, passes=2, average=3)


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
    settings["refine"].update(crop=R.CROP, passes=2, average_passes=3)
    (d / "model.json").write_text(json.dumps(settings))
    with pytest.raises(LandmarkModelError, match=r"model.json: refine passes 2 and average_passes 3"):
        LandmarkModel(d)
    settings["refine"]["average_passes"] = 2
    (d / "model.json").write_text(json.dumps(settings))
    with pytest.raises(LandmarkModelError, match=r"refine.onnx: missing"):
        LandmarkModel(d)


def test_tiny_training_run_resumes_and_exports(tmp_path, capsys, monkeypatch):
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
    reopen_finished_run(tmp_path / "run", epochs=2)
    r2 = run_refine_training(cfg, progress_bar=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert r2["epochs_done"] == 2 and [h["epoch"] for h in history] == [1, 2]
    # the epoch line names the second stage's error unit: pixels of the crop
    assert re.search(r"epoch 2: loss [\d.]+, corner L1 [\d.]+ crop px; validation SMAPE", capsys.readouterr().out)
    # more training from the finished run: with a zero learning rate its weights come through unchanged
    import torch

    from training.xray.refine_model import RefineNet
    from training.xray.train import load_trained

    more = XrayRefineConfig(data_dir=str(data), output_dir=str(tmp_path / "more"), first_stage=str(first), epochs=1,
                            batch_size=8, eval_every=1, learning_rate=0.0, init_from=str(tmp_path / "run"))
    run_refine_training(more, progress_bar=False)
    before = dict(load_trained(RefineNet(crop=R.CROP), tmp_path / "run").named_parameters())
    after = dict(load_trained(RefineNet(crop=R.CROP), tmp_path / "more").named_parameters())
    assert before and all(torch.equal(before[k], after[k]) for k in before)   # (normalisation statistics move)
    onnx_path = tmp_path / "refine.onnx"
    export_refine_onnx(tmp_path / "run", onnx_path)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    crops = R.standardise_crops(np.random.default_rng(0).integers(0, 255, (3, R.CROP, R.CROP), dtype=np.uint8))
    (out,) = sess.run(None, {"crops": crops})
    assert out.shape == (3, 4, 2) and np.all(np.isfinite(out))
    _ship_keeps_halves_and_the_earlier_card(tmp_path / "run", first, monkeypatch)


def _ship_keeps_halves_and_the_earlier_card(run_dir, first, monkeypatch):
    """refine-ship on the tiny run: the onnxruntime evaluation (``evaluate_dataset``, tested with the shipped model
    in test_xray_cli) is replaced by fixed figures, so that 'both stages better' is certain; what is checked is
    what ship writes: the halves of the split measured on the new files, the old figures kept apart, and the old
    card kept below the new one."""
    from types import SimpleNamespace

    import training.xray.refine_ship as ship

    seen = []

    def figures(model_dir, data_dir, only):
        seen.append((Path(model_dir).name, set(only)))
        both = (Path(model_dir) / "refine.onnx").is_file()
        smape = (8.0 if both else 12.0) + len(only) / 10
        return SimpleNamespace(scored=len(only), broken_reference=[], smape=smape, mae=(3.0, 4.0, 5.0),
                               landmark_px=40.0, landmark_px_median=20.0, not_confident=[], seconds_per_image=0.4)

    monkeypatch.setattr(ship, "_evaluate", figures)
    names = [f"P-{n:03d} A AP.jpg" for n in range(6)]  # six patients (core.xray.aasce.patient_id: 'P-000', ...)
    (first / "validation_files.json").write_text(json.dumps({"validation_files": names}))
    settings = json.loads((first / "model.json").read_text())
    settings.update(version="1.2", validation={"smape": 9.9, "half_b": {"smape": 9.8}, "note": "chosen on A"})
    (first / "model.json").write_text(json.dumps(settings))
    (first / "spinemed-xray-landmarks.md").write_text("# spinemed-xray-landmarks 1.2\n\n## How 1.2 was chosen\nby hand")
    message = ship.ship_refine(run_dir, first)
    assert message.startswith("shipped") and "1.3" in message
    saved = json.loads((first / "model.json").read_text())
    v = saved["validation"]
    halves = [only for name, only in seen if name == "both"][1:]
    assert len(halves) == 2 and halves[0] | halves[1] == set(names) and not halves[0] & halves[1]
    assert v["half_a"]["images"] + v["half_b"]["images"] == 6 and v["images"] == 6
    assert "note" not in v and v["previous"] == {"version": "1.2", "smape": 9.9, "half_b": {"smape": 9.8},
                                                  "note": "chosen on A"}
    card = (first / "spinemed-xray-landmarks.md").read_text()
    assert card.startswith("# spinemed-xray-landmarks 1.3") and "half B SMAPE" in card
    assert "## The card of version 1.2, as it was shipped" in card and "### How 1.2 was chosen\nby hand" in card


def test_validation_during_training_runs_the_second_stage_as_shipped(tmp_path):
    from core.xray.landmarks import default_model_dir
    from training.xray.refine_train import shipped_pipeline

    shipped = json.loads((default_model_dir() / "model.json").read_text())["refine"]
    assert shipped_pipeline(default_model_dir()) == {"passes": shipped["passes"], "flip": shipped["flip"],
                                                     "average": shipped["average_passes"]}
    (tmp_path / "model.json").write_text(json.dumps({"name": "first stage only"}))
    assert shipped_pipeline(tmp_path) == {"passes": 2, "flip": False, "average": 1}


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
