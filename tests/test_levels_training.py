"""A tiny run of ``spinemed-train levels``: checkpoint, resume, curves, the ONNX export the run-time backend loads."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="the train extra (torch) is not installed")

from core.spine.autolabel.learned import LearnedLevels
from training.cli import main as train_main
from training.levels.config import load_levels_config
from training.levels.train import run_levels_training

TINY = ["steps=2", "batch_size=2", "rows=64", "cols=48", "pool_size=2", "new_spine_every=1000", "val_samples=4",
        "eval_every=1", "checkpoint_every=1", "width=4"]


def test_tiny_run_resumes_and_exports(tmp_path):
    out = tmp_path / "run"
    cfg = load_levels_config(None, [*TINY, f"output_dir={out}"])
    first = run_levels_training(cfg, progress=False)
    assert first.steps == 2
    for name in ("checkpoint.pt", "history.json", "curves.png", "model.onnx", "labeller.json", "val.npz"):
        assert (out / name).is_file(), name
    # logged every 10 steps and at the last one
    assert [h["step"] for h in json.loads((out / "history.json").read_text()) if "loss" in h] == [2]
    val_before = np.load(out / "val.npz")["image"]
    # the same command with more steps goes on from step 2, with the same validation samples
    cfg = load_levels_config(None, [*TINY, "steps=3", f"output_dir={out}"])
    second = run_levels_training(cfg, progress=False)
    assert second.steps == 3
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == [2, 3]
    assert np.array_equal(np.load(out / "val.npz")["image"], val_before)
    meta = json.loads((out / "labeller.json").read_text())
    assert meta["name"] == "spinemed-levels-synth" and len(meta["sha256"]) == 64
    backend = LearnedLevels(out)
    assert backend.available() == (True, "")
    session, _ = backend._load()
    res = session.run(None, {"stack": np.zeros((1, 3, 64, 48), np.float32)})[0]
    assert res.shape == (1, 8, 64, 48)


def test_cli_check_and_bad_config(tmp_path, capsys):
    assert train_main(["levels", "--check", "--set", "steps=5"]) == 0
    assert "5 steps" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("rows: 100\nbatch_size: 0\n")
    assert train_main(["levels", str(bad), "--check"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "multiples of 16" in err and "batch_size" in err
    missing = tmp_path / "m.yaml"
    missing.write_text("real_maps: ['/nowhere/mask.nii.gz:verse']\nsteps: 1\n")
    assert train_main(["levels", str(missing), "--set", f"output_dir={tmp_path / 'o'}"]) == 2
    assert "/nowhere/mask.nii.gz" in capsys.readouterr().err


def test_tiny_run_with_the_new_synthesis_states_it_in_the_card(tmp_path):
    """A run with stacks beside the body, fading targets and texture trains, and its model card says so."""
    from training.levels.card import write_card

    out = tmp_path / "run"
    cfg = load_levels_config(None, [*TINY, "steps=1", f"output_dir={out}", "p_lateral=0.5", "midline_sigma_mm=6",
                                    "max_texture=0.05", "version=9.9.9"])
    result = run_levels_training(cfg, progress=False)
    assert result.steps == 1 and result.onnx_path.is_file()
    card = write_card(out, tmp_path).read_text()
    assert "# spinemed-levels-synth 9.9.9" in card
    assert "stacks beside the body with empty targets (50%, up to 70 mm" in card
    assert "sigma 6 mm" in card and "texture per tissue (amplitude up to 0.05)" in card
    plain = tmp_path / "plain"
    run_levels_training(load_levels_config(None, [*TINY, "steps=1", f"output_dir={plain}"]), progress=False)
    (tmp_path / "p").mkdir()
    assert "beside the body" not in write_card(plain, tmp_path / "p").read_text()


def test_disc_penalty_weighs_body_answers_at_discs():
    """disc_penalty: a body-channel answer at a disc centre costs more, one at the body centre the same; a perfect
    prediction costs nothing either way."""
    import torch

    from training.levels.train import losses

    heat = torch.zeros(1, 2, 16, 16)
    heat[0, 0, 4, 4] = 1.0  # a body centre
    heat[0, 1, 11, 4] = 1.0  # a disc centre
    region = torch.zeros(1, 16, 16, dtype=torch.long)
    logit = torch.logit(heat.clamp(1e-4, 1 - 1e-4))
    out = torch.cat([logit, torch.zeros(1, 6, 16, 16)], dim=1)
    out[0, 2] = 10.0  # background class everywhere: the region part is the same
    for penalty in (0.0, 10.0):
        assert float(losses(out, heat, region, torch, penalty)[1]) < 1e-3
    on_disc = out.clone()
    on_disc[0, 0, 11, 4] = 5.0  # the body channel fires on the disc
    plain = float(losses(on_disc, heat, region, torch)[1])
    penalised = float(losses(on_disc, heat, region, torch, 10.0)[1])
    assert penalised > 5 * plain > 0
    off = out.clone()
    off[0, 0, 8, 12] = 5.0  # fires on neither: the same with or without the penalty
    assert float(losses(off, heat, region, torch, 10.0)[1]) == pytest.approx(float(losses(off, heat, region,
                                                                                            torch)[1]))


def test_tiny_run_with_the_0_3_synthesis_states_it_in_the_card(tmp_path, capsys):
    """Flat contrasts, empty side slabs, smaller crops and the disc penalty train, the card says so, and a minimum
    crop outside its range is refused with the field named."""
    from training.levels.card import write_card

    out = tmp_path / "run"
    cfg = load_levels_config(None, [*TINY, "steps=1", f"output_dir={out}", "p_flat=0.5", "p_side_empty=0.5",
                                    "min_fov_rows=0.15", "min_fov_cols=0.25", "p_small_fov=0.5",
                                    "disc_penalty=10", "version=9.9.9"])
    result = run_levels_training(cfg, progress=False)
    assert result.steps == 1 and np.isfinite(result.final_val_loss)
    card = write_card(out, tmp_path).read_text()
    assert "a flat contrast in 50%" in card and "empty side slabs in 50%" in card
    assert "small fields of view (50%) down to 19 mm tall and 24 mm front to back" in card
    assert "loss weight 10 on the body channel at disc centres" in card
    with pytest.raises(Exception, match="min_fov_rows"):
        load_levels_config(None, ["min_fov_rows=0.01"])
