"""The training loop of the radiograph landmark model: seeded, resumable (a checkpoint after every epoch),
with a progress bar, validation figures as the AASCE challenge reports them, and training curves."""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.xray.cobb import aasce_angles
from core.xray.metrics import angle_mae, landmark_errors, smape
from training.xray.config import XrayTrainConfig
from training.xray.data import XrayData, augment_batch, load_data, patient_split, write_split

log = logging.getLogger(__name__)


@dataclass
class XrayRunResult:
    output_dir: Path
    epochs_done: int
    finished: bool
    wall_minutes: float
    validation: dict


def _torch():
    import torch

    return torch


def _standardise(x):
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    s = x.std(dim=(1, 2, 3), keepdim=True, correction=0).clamp_min(1e-3)
    return (x - m) / s


def _loss(cfg: XrayTrainConfig, coords, logits, target, valid):
    torch = _torch()
    b, k, hh, ww = logits.shape
    h, w = cfg.input_height, cfg.input_width
    px = torch.tensor([w, h], dtype=coords.dtype)
    vm = valid.float()
    denom = vm.sum().clamp_min(1.0)
    coord_l1 = ((coords - target).abs() * px).sum(-1)
    coord_loss = (coord_l1 * vm).sum() / denom
    # endplate vectors (right corner minus left corner) of both endplates of each vertebra
    pv = (coords[:, 1::2] - coords[:, 0::2]) * px
    tv = (target[:, 1::2] - target[:, 0::2]) * px
    ev = (vm[:, 1::2] * vm[:, 0::2])
    end_loss = ((pv - tv).abs().sum(-1) * ev).sum() / ev.sum().clamp_min(1.0)
    # heatmap cross-entropy against a Gaussian (sigma 1 cell) at the true corner
    ys = torch.arange(hh, dtype=coords.dtype) + 0.5
    xs = torch.arange(ww, dtype=coords.dtype) + 0.5
    tx = (target[..., 0] * ww).unsqueeze(-1)
    ty = (target[..., 1] * hh).unsqueeze(-1)
    gx = torch.exp(-0.5 * (xs - tx) ** 2)
    gy = torch.exp(-0.5 * (ys - ty) ** 2)
    g = gy.unsqueeze(-1) * gx.unsqueeze(-2)
    g = g / g.sum(dim=(-1, -2), keepdim=True).clamp_min(1e-12)
    logp = torch.log_softmax(logits.reshape(b, k, -1), dim=-1).reshape(b, k, hh, ww)
    ce = -(g * logp).sum(dim=(-1, -2))
    hm_loss = (ce * vm).sum() / denom
    total = coord_loss + cfg.endplate_weight * end_loss + cfg.heatmap_weight * hm_loss
    return total, {"coord_px": float(coord_loss.detach()), "endplate_px": float(end_loss.detach()),
                   "heatmap_ce": float(hm_loss.detach())}


def predict_normalised(net, images_u8: np.ndarray, batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Network outputs for (N, H, W) uint8 cached inputs: coords (N, 68, 2) in [0, 1], spread (N, 68)."""
    torch = _torch()
    net.eval()
    coords, spreads = [], []
    with torch.no_grad():
        for i in range(0, len(images_u8), batch):
            x = torch.from_numpy(images_u8[i:i + batch]).float().div(255).unsqueeze(1)
            c, s, _ = net(_standardise(x))
            coords.append(c.numpy())
            spreads.append(s.numpy())
    return np.concatenate(coords), np.concatenate(spreads)


def evaluate(coords: np.ndarray, data: XrayData, idx: list[int]) -> dict:
    """AASCE figures on the images ``idx``; images whose manual annotation is broken are left out of them."""
    keep = [j for j, i in enumerate(idx) if not data.broken[i]]
    pred_angles, ref_angles, errs = [], [], []
    for j in keep:
        i = idx[j]
        w, h = data.sizes[i]
        pred_px = coords[j] * np.array([w, h])
        ref_px = data.landmarks[i] * np.array([w, h])
        pred_angles.append(aasce_angles(pred_px, h))
        ref_angles.append(data.angles[i])
        errs.append(landmark_errors(pred_px, ref_px))
    pred_angles, ref_angles = np.array(pred_angles), np.array(ref_angles)
    mae = angle_mae(pred_angles, ref_angles)
    return {"images": len(keep), "left_out_broken": len(idx) - len(keep),
            "smape": smape(pred_angles, ref_angles), "mae_pt": float(mae[0]), "mae_mt": float(mae[1]),
            "mae_tl": float(mae[2]), "landmark_px": float(np.mean(errs)),
            "landmark_px_median": float(np.median(errs))}


def _progress(cfg: XrayTrainConfig, step: int, steps_per_epoch: int, minutes: float) -> float:
    """How far the run is, 0..1: by steps, or by wall time when a time budget is set and it runs out first (the
    learning rate then still anneals fully within the budget)."""
    by_steps = step / max(1, cfg.epochs * steps_per_epoch)
    return max(by_steps, minutes / cfg.max_minutes) if cfg.max_minutes else by_steps


def _lr(cfg: XrayTrainConfig, step: int, steps_per_epoch: int, progress: float) -> float:
    warm = cfg.warmup_epochs * steps_per_epoch
    if step < warm:
        return cfg.learning_rate * (step + 1) / warm
    warm_frac = warm / max(1, cfg.epochs * steps_per_epoch)
    t = (progress - warm_frac) / max(1e-9, 1 - warm_frac)
    return cfg.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, t))))


def save_checkpoint(path: Path, net, opt, gen, state: dict, **extra) -> None:
    """The run's checkpoint (model, optimizer, random generator, run state), written atomically for resume."""
    torch = _torch()
    tmp = path.with_suffix(".tmp")
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                "state": state, **extra}, tmp)
    tmp.replace(path)


def load_trained(net, run_dir: Path):
    """``net`` with a run's weights: the final ones when the run finished, else its last checkpoint."""
    torch = _torch()
    final = run_dir / "model_final.pt"
    if final.is_file():
        net.load_state_dict(torch.load(final, weights_only=True))
    else:
        net.load_state_dict(torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"])
    return net.eval()


def record_epoch(out: Path, history: list[dict], unit: str) -> str:
    """After an epoch: the run's history.json and curves rewritten, and the epoch's log line (logged and returned).
    ``unit`` names the pixels of the training corner error ("input px" for the whole image, "crop px")."""
    (out / "history.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
    plot_curves(history, out / "training_curves.png", unit)
    entry = history[-1]
    msg = f"epoch {entry['epoch']}: loss {entry['train_loss']:.3f}, corner L1 {entry['train_coord_px']:.2f} {unit}"
    if "val" in entry:
        v = entry["val"]
        first = f" (first stage {v['first_stage_smape']:.1f}%)" if "first_stage_smape" in v else ""
        msg += (f"; validation SMAPE {v['smape']:.1f}%{first}, landmark {v['landmark_px']:.1f} px, MAE "
                f"{v['mae_pt']:.1f}/{v['mae_mt']:.1f}/{v['mae_tl']:.1f} deg")
    log.info(msg)
    return msg


def plot_curves(history: list[dict], path: Path, unit: str = "input px") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    ep = [h["epoch"] for h in history]
    ax[0].plot(ep, [h["train_loss"] for h in history], label="train loss")
    ax[0].plot(ep, [h["train_coord_px"] for h in history], label=f"train corner L1 ({unit})")
    ax[0].set_xlabel("epoch")
    ax[0].legend()
    ax[0].set_yscale("log")
    val = [h for h in history if "val" in h]
    ax[1].plot([h["epoch"] for h in val], [h["val"]["landmark_px"] for h in val], "o-")
    ax[1].set_title("validation landmark error (original px)")
    ax[1].set_xlabel("epoch")
    ax[2].plot([h["epoch"] for h in val], [h["val"]["smape"] for h in val], "o-")
    ax[2].set_title("validation SMAPE (%)")
    ax[2].set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_training(cfg: XrayTrainConfig, progress_bar: bool = True) -> XrayRunResult:
    torch = _torch()
    from tqdm import tqdm

    from training.xray.model import LandmarkNet

    torch.set_num_threads(max(1, cfg.threads))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.is_file():
        saved = XrayTrainConfig.load(cfg_path)
        if saved.epochs != cfg.epochs or saved.seed != cfg.seed or saved.input_height != cfg.input_height:
            log.warning("resuming with the settings saved in %s", cfg_path)
        saved.max_minutes = cfg.max_minutes
        cfg = saved
    cfg.save(cfg_path)
    bar = tqdm(total=1, desc="preparing images", disable=not progress_bar)

    def _prog(i, n):
        bar.total = n
        bar.n = i
        bar.refresh()

    data = load_data(Path(cfg.data_dir), out / f"cache_{cfg.input_height}x{cfg.input_width}.npz",
                     cfg.input_height, cfg.input_width, _prog)
    bar.close()
    train_idx, val_idx = patient_split(data.names, cfg.val_fraction, cfg.seed)
    write_split(out / "split.json", data.names, train_idx, val_idx, cfg.seed)
    torch.manual_seed(cfg.seed)
    net = LandmarkNet()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    state = {"epoch": 0, "step": 0, "history": [], "wall_seconds": 0.0}
    ckpt = out / "checkpoint.pt"
    gen = torch.Generator().manual_seed(cfg.seed)
    if ckpt.is_file():
        saved = torch.load(ckpt, weights_only=False)
        net.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        gen.set_state(saved["generator"])
        state = saved["state"]
        log.info("resumed at epoch %d", state["epoch"])
    images = torch.from_numpy(data.images)
    lms = torch.from_numpy(data.landmarks).float()
    valid = torch.from_numpy(data.valid)
    steps_per_epoch = math.ceil(len(train_idx) / cfg.batch_size)
    started = time.monotonic()
    wall_before = state["wall_seconds"]
    while state["epoch"] < cfg.epochs and not state.get("finished"):
        epoch = state["epoch"] + 1
        net.train()
        order = torch.randperm(len(train_idx), generator=gen).tolist()
        losses, parts = [], []
        pbar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress_bar,
                    leave=False)
        for s in pbar:
            batch = [train_idx[j] for j in order[s * cfg.batch_size:(s + 1) * cfg.batch_size]]
            x = images[batch].float().div(255).unsqueeze(1)
            x, y, v = augment_batch(x, lms[batch], valid[batch], gen, cfg.augment)
            minutes = (wall_before + time.monotonic() - started) / 60
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, state["step"], steps_per_epoch,
                                  _progress(cfg, state["step"], steps_per_epoch, minutes))
            coords, _, logits = net(_standardise(x))
            loss, part = _loss(cfg, coords, logits, y, v)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            state["step"] += 1
            losses.append(float(loss))
            parts.append(part["coord_px"])
            pbar.set_postfix(loss=f"{np.mean(losses):.2f}", px=f"{np.mean(parts):.1f}")
        pbar.close()
        entry = {"epoch": epoch, "train_loss": float(np.mean(losses)), "train_coord_px": float(np.mean(parts)),
                 "lr": opt.param_groups[0]["lr"]}
        minutes = (wall_before + time.monotonic() - started) / 60
        done = epoch >= cfg.epochs or _progress(cfg, state["step"], steps_per_epoch, minutes) >= 1.0
        if epoch % cfg.eval_every == 0 or done:
            coords, _ = predict_normalised(net, data.images[val_idx])
            entry["val"] = evaluate(coords, data, val_idx)
        state["epoch"] = epoch
        state["history"].append(entry)
        state["wall_seconds"] = wall_before + time.monotonic() - started
        save_checkpoint(ckpt, net, opt, gen, state)
        record_epoch(out, state["history"], "input px")
        if done:
            state["finished"] = True
            save_checkpoint(ckpt, net, opt, gen, state)
            if epoch < cfg.epochs:
                log.info("time budget of %.0f min used after epoch %d (learning rate annealed)", cfg.max_minutes,
                         epoch)
            break
    finished = bool(state.get("finished"))
    if finished:
        torch.save(net.state_dict(), out / "model_final.pt")
    last_val = next((h["val"] for h in reversed(state["history"]) if "val" in h), {})
    return XrayRunResult(out, state["epoch"], finished, state["wall_seconds"] / 60, last_val)
