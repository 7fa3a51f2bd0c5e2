"""Training loop of the learned labeller: synthetic samples in, a resumable run out, then the ONNX export.

Each step draws ``batch_size`` samples (:mod:`synth`) from a pool of random spines (:mod:`spine_model`) that is
renewed as training goes, so no two samples are alike. Loss: heatmaps of body and disc centres (mean squared error,
weighted towards the peaks) plus the anchor class of body pixels (cross entropy, background down-weighted). The run
folder keeps a checkpoint (model, optimiser, schedule, every random state, history) written atomically every few
steps; running the same command again resumes from it. At the end the weights go to ONNX (:mod:`export`) with a
model card and the curves.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.levels import spine_model as sm
from training.levels.config import LevelsTrainConfig, config_dict
from training.levels.synth import SynthOptions, draw_sample

log = logging.getLogger(__name__)
REGION_WEIGHTS = (0.1, 3.0, 1.0, 1.0, 1.0, 2.0)


@dataclass
class LevelsRunResult:
    output_dir: Path
    steps: int
    final_val_loss: float | None
    onnx_path: Path | None
    curves_png: Path | None
    minutes: float


class SamplePool:
    """Random spines (and real maps) to draw samples from; one spine replaced every ``new_every`` samples."""

    def __init__(self, rng: np.random.Generator, size: int, new_every: int, real: list | None = None,
                 real_fraction: float = 0.0, opt: SynthOptions | None = None) -> None:
        self.rng = rng
        self.new_every = new_every
        self.spines = [sm.generate_spine(rng) for _ in range(size)]
        self.real = real or []
        self.real_fraction = real_fraction if self.real else 0.0
        self.count = 0
        self.opt = opt or SynthOptions()

    def sample(self):
        self.count += 1
        if self.count % self.new_every == 0:
            self.spines[self.rng.integers(len(self.spines))] = sm.generate_spine(self.rng)
        if self.real and self.rng.random() < self.real_fraction:
            spine = self.real[self.rng.integers(len(self.real))]
        else:
            spine = self.spines[self.rng.integers(len(self.spines))]
        return draw_sample(spine, self.rng, self.opt)

    def batch(self, n: int):
        samples = [self.sample() for _ in range(n)]
        return (np.stack([s.image for s in samples]), np.stack([s.heat for s in samples]),
                np.stack([s.region for s in samples]))


def losses(out, heat, region, torch, disc_penalty: float = 0.0):
    """(total, heat part, region part) for network output ``out`` (N, 8, H, W). With ``disc_penalty`` the body
    channel's error at disc centres (and the disc channel's at body centres) weighs that much more, like an error at
    its own centres: the network is taught not to answer "body" between two endplates a disc apart."""
    pred = torch.sigmoid(out[:, :2])
    w = 1.0 + 20.0 * heat
    if disc_penalty:
        w = w + disc_penalty * heat[:, [1, 0]]
    l_heat = (w * (pred - heat) ** 2).mean() * 10.0
    weights = torch.tensor(REGION_WEIGHTS, dtype=out.dtype, device=out.device)
    l_reg = torch.nn.functional.cross_entropy(out[:, 2:], region, weight=weights)
    return l_heat + l_reg, l_heat, l_reg


def synth_options(cfg: LevelsTrainConfig) -> SynthOptions:
    return SynthOptions(rows=cfg.rows, cols=cfg.cols, p_lateral=cfg.p_lateral, lateral_max_mm=cfg.lateral_max_mm,
                        midline_sigma_mm=cfg.midline_sigma_mm, max_texture=cfg.max_texture, p_flat=cfg.p_flat,
                        p_side_empty=cfg.p_side_empty, min_fov_rows=cfg.min_fov_rows,
                        min_fov_cols=cfg.min_fov_cols, p_small_fov=cfg.p_small_fov)


def _validation(cfg: LevelsTrainConfig, path: Path):
    if path.exists():
        d = np.load(path)
        return d["image"], d["heat"], d["region"]
    rng = np.random.default_rng(cfg.seed + 10_000)
    pool = SamplePool(rng, max(2, cfg.val_samples // 8), 10**9, opt=synth_options(cfg))
    image, heat, region = pool.batch(cfg.val_samples)
    np.savez_compressed(path, image=image, heat=heat, region=region)
    return image, heat, region


def run_levels_training(cfg: LevelsTrainConfig, real_maps: list | None = None, progress: bool = True
                        ) -> LevelsRunResult:
    import torch
    from tqdm import tqdm

    from training.levels.net import LevelNet

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, cfg.threads))
    device = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = LevelNet(cfg.width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.learning_rate, total_steps=cfg.steps,
                                                pct_start=0.05, final_div_factor=50.0)
    ckpt = out / "checkpoint.pt"
    history: list[dict] = []
    step = 0
    elapsed_before = 0.0
    synth_opt = synth_options(cfg)
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, history, elapsed_before = state["step"], state["history"], state.get("elapsed", 0.0)
        if state["steps_total"] == cfg.steps:
            sched.load_state_dict(state["sched"])
        elif cfg.steps > step:  # more steps than the run was planned for: a new warm-up and decay for the rest
            log.info("continuing a %s-step run to %s steps: new schedule for the remaining %s",
                     state["steps_total"], cfg.steps, cfg.steps - step)
            peak = cfg.learning_rate_resume or cfg.learning_rate
            for group in opt.param_groups:
                group["lr"] = peak
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak, total_steps=cfg.steps - step,
                                                        pct_start=0.05, final_div_factor=50.0)
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = state["numpy_rng"]  # the pool is drawn again from where the run was
        log.info("resumed from %s at step %d", ckpt, step)
    pool = SamplePool(rng, cfg.pool_size, cfg.new_spine_every, real_maps, cfg.real_fraction, synth_opt)
    vi, vh, vr = _validation(cfg, out / "val.npz")
    val = [torch.from_numpy(a).to(device) for a in (vi, vh, vr)]

    def evaluate() -> dict:
        model.eval()
        with torch.no_grad():
            tot = hh = rr = 0.0
            for i in range(0, len(val[0]), 16):
                o = model(val[0][i:i + 16])
                t, h, r = losses(o, val[1][i:i + 16], val[2][i:i + 16], torch, cfg.disc_penalty)
                n = len(o)
                tot, hh, rr = tot + float(t) * n, hh + float(h) * n, rr + float(r) * n
        model.train()
        n = len(val[0])
        return {"val_loss": tot / n, "val_heat": hh / n, "val_region": rr / n}

    def save() -> None:
        state = {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step,
                 "history": history, "torch_rng": torch.get_rng_state(), "numpy_rng": pool.rng.bit_generator.state,
                 "steps_total": cfg.steps, "elapsed": elapsed_before + (time.time() - t_start),
                 "config": config_dict(cfg)}
        tmp = ckpt.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(ckpt)

    t_start = time.time()
    model.train()
    bar = tqdm(total=cfg.steps, initial=step, desc="levels", unit="step", disable=not progress)
    running = []
    while step < cfg.steps:
        if cfg.time_limit_min and time.time() - t_start > cfg.time_limit_min * 60:
            log.info("time limit reached at step %d", step)
            break
        img, heat, region = pool.batch(cfg.batch_size)
        o = model(torch.from_numpy(img).to(device))
        loss, lh, lr_ = losses(o, torch.from_numpy(heat).to(device), torch.from_numpy(region).to(device), torch,
                               cfg.disc_penalty)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        step += 1
        running.append((loss.item(), lh.item(), lr_.item()))
        bar.update(1)
        if step % 10 == 0 or step == cfg.steps:
            m = np.mean(running, axis=0)
            running = []
            entry = {"step": step, "loss": float(m[0]), "heat": float(m[1]), "region": float(m[2]),
                     "lr": float(sched.get_last_lr()[0]), "minutes": (elapsed_before + time.time() - t_start) / 60}
            if step % cfg.eval_every == 0 or step == cfg.steps:
                entry.update(evaluate())
            history.append(entry)
            bar.set_postfix(loss=f"{m[0]:.3f}", val=f"{entry.get('val_loss', float('nan')):.3f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save()
    bar.close()
    save()
    if not history or "val_loss" not in history[-1]:
        history.append({"step": step, **evaluate(), "minutes": (elapsed_before + time.time() - t_start) / 60})
    (out / "history.json").write_text(json.dumps(history, indent=1))
    curves = plot_levels_curves(history, out / "curves.png", cfg.name)
    from training.levels.export import export_onnx

    onnx_path = export_onnx(model.cpu().eval(), out / "model.onnx", cfg)
    minutes = (elapsed_before + time.time() - t_start) / 60
    info = {"config": config_dict(cfg), "steps": step, "minutes": minutes, "device": device,
            "final": history[-1], "real_maps": [getattr(r, "notes", []) for r in (real_maps or [])]}
    (out / "run_info.json").write_text(json.dumps(info, indent=1, default=str))
    return LevelsRunResult(out, step, history[-1].get("val_loss"), onnx_path, curves, minutes)


def plot_levels_curves(history: list[dict], out_png: Path, title: str) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return None
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    steps = [h["step"] for h in history if "loss" in h]
    for key, label in (("loss", "train total"), ("heat", "train heatmaps"), ("region", "train anchor classes")):
        ax[0].plot(steps, [h[key] for h in history if "loss" in h], label=label)
    vs = [h for h in history if "val_loss" in h]
    for key, label in (("val_loss", "val total"), ("val_heat", "val heatmaps"), ("val_region", "val classes")):
        ax[1].plot([h["step"] for h in vs], [h[key] for h in vs], marker="o", label=label)
    for a in ax:
        a.set_xlabel("step")
        a.set_yscale("log")
        a.legend()
    ax[0].set_title(f"{title}: training")
    ax[1].set_title("validation (fixed synthetic samples)")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
