"""The first landmark stage's training (``spinemed-train xray train``) on a tiny run: synthetic radiographs in the
AASCE layout, a patient-wise split, one epoch, a resumed second epoch, curves, and an ONNX export that runs in
onnxruntime with the shapes the workstation reads."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.xray_support import reopen_finished_run, write_aasce_folder


def test_tiny_first_stage_run_resumes_and_exports(tmp_path):
    pytest.importorskip("torch")
    import onnxruntime as ort

    from training.xray.config import XrayTrainConfig
    from training.xray.ship import export_onnx
    from training.xray.train import run_training

    data = tmp_path / "data"
    write_aasce_folder(data, n=4)
    cfg = XrayTrainConfig(data_dir=str(data), output_dir=str(tmp_path / "run"), input_height=128, input_width=64,
                          epochs=1, batch_size=2, eval_every=1, val_fraction=0.25, augment=False)
    r1 = run_training(cfg, progress_bar=False)
    assert r1.finished and r1.epochs_done == 1 and np.isfinite(r1.validation["smape"])
    assert (tmp_path / "run" / "training_curves.png").stat().st_size > 0
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert (split["validation_patients"], split["train_patients"]) == (1, 3)  # one of four patients held out
    # a longer run in the same folder resumes from the checkpoint
    reopen_finished_run(tmp_path / "run", epochs=2)
    run_training(cfg, progress_bar=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and "val" in history[-1]
    onnx_path = tmp_path / "model.onnx"
    export_onnx(tmp_path / "run", onnx_path)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in sess.get_outputs()],
                       sess.run(None, {"image": np.zeros((1, 1, 128, 64), np.float32)})))
    assert set(outputs) == {"coords", "spread", "peak"}
    assert outputs["coords"].shape[-1] == 2 and np.all(np.isfinite(outputs["coords"]))


def test_both_stages_share_their_common_settings_and_every_field_has_help(tmp_path):
    import dataclasses

    from training.xray.config import LandmarkRunConfig, XrayRefineConfig, XrayTrainConfig

    shared = {f.name for f in dataclasses.fields(LandmarkRunConfig)}
    for cls in (XrayTrainConfig, XrayRefineConfig):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        assert shared <= set(fields) and all(f.metadata.get("help") for f in fields.values())
    refine = XrayRefineConfig()
    assert (refine.batch_size, refine.output_dir) == (32, "runs/xray-refine")   # its own defaults, shared help
    assert XrayTrainConfig().batch_size == 8
    refine.init_from = "runs/x"
    refine.save(tmp_path / "c.json")
    assert XrayRefineConfig.load(tmp_path / "c.json") == refine
    (tmp_path / "bad.json").write_text(json.dumps({"jitter": 0.3}))
    with pytest.raises(ValueError, match="unknown fields"):
        XrayTrainConfig.load(tmp_path / "bad.json")


def test_shipping_new_second_stage_weights_raises_the_minor_version():
    from training.xray.refine_ship import _pipeline_text, next_version

    assert (next_version("1.2"), next_version("1.9"), next_version("2")) == ("1.3", "1.10", "2.1")
    text = _pipeline_text({"passes": 3, "flip": True, "average_passes": 3})
    assert "Run 3 time(s)" in text and "mean of the last 3 passes" in text and "mirrored" in text
    assert "mirrored" not in _pipeline_text({"passes": 2})
