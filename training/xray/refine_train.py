"""Training of the second landmark stage (one crop per vertebra -> its four corners): seeded, resumable (a
checkpoint after every epoch), with a progress bar, validation of both stages together on the first stage's held-out
images, and training curves.

Crops are cut by :mod:`core.xray.refine` exactly as at run time, around each training vertebra's true centre moved
by a random offset (the first stage's error), with a random spacing estimate, rotation and horizontal flip; the
target is the vertebra nearest the crop's centre. Images with a broken manual annotation are left out.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.xray import refine as R
from core.xray.aasce import broken_vertebrae, read_dataset
from core.xray.cobb import aasce_angles
from core.xray.metrics import angle_mae, landmark_errors, smape
from training.xray.config import XrayRefineConfig
from training.xray.train import _lr, load_trained, record_epoch, save_checkpoint

log = logging.getLogger(__name__)


@dataclass
class RefineData:
    names: list[str]
    work: np.ndarray          # (N, WORK_HEIGHT, Wmax) uint8 working images, zero-padded on the right
    widths: np.ndarray        # (N,) working width
    scale: np.ndarray         # (N, 2) working / original (x, y)
    landmarks: np.ndarray     # (N, 17, 4, 2) manual corners, working pixels
    sizes: np.ndarray         # (N, 2) original (width, height)
    angles: np.ndarray        # (N, 3) reference angles
    broken: np.ndarray        # (N,) bool
    is_val: np.ndarray        # (N,) bool
    first: np.ndarray         # (N, 68, 2) first-stage landmarks, original pixels (validation images only; else 0)

    def work_image(self, i: int) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(self.work[i, :, :self.widths[i]]), mode="L")


def load_refine_data(cfg: XrayRefineConfig, cache: Path, progress=None) -> RefineData:
    data_dir = Path(cfg.data_dir)
    labels = data_dir / "labels"
    records = read_dataset(labels / "filenames.csv", labels / "landmarks.csv", labels / "angles.csv")
    names = [r.name for r in records]
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if list(z["names"]) == names:
            return RefineData(names, z["work"], z["widths"], z["scale"], z["landmarks"], z["sizes"], z["angles"],
                              z["broken"], z["is_val"], z["first"])
    from core.xray.landmarks import LandmarkModel

    first_dir = Path(cfg.first_stage)
    val_names = set(json.loads((first_dir / "validation_files.json").read_text(encoding="utf-8"))["validation_files"])
    model = LandmarkModel(first_dir, threads=cfg.threads)
    n = len(records)
    works, widths, scale = [], np.zeros(n, np.int64), np.zeros((n, 2))
    lms, sizes = np.zeros((n, 17, 4, 2)), np.zeros((n, 2), np.int64)
    broken, first = np.zeros(n, bool), np.zeros((n, 68, 2))
    is_val = np.array([nm in val_names for nm in names])
    for i, r in enumerate(records):
        with Image.open(data_dir / "images" / r.name) as im:
            arr = np.asarray(im.convert("L"))
        h, w = arr.shape
        sizes[i] = (w, h)
        work, sx, sy = R.working_image(arr)
        works.append(np.asarray(work))
        widths[i] = work.size[0]
        scale[i] = (sx, sy)
        px = r.landmarks_px(w, h)
        broken[i] = bool(broken_vertebrae(px))
        lms[i] = (px * scale[i]).reshape(17, 4, 2)
        if is_val[i]:
            first[i] = model.predict(arr).landmarks
        if progress:
            progress(i + 1, n)
    wmax = max(widths)
    stack = np.zeros((n, R.WORK_HEIGHT, wmax), np.uint8)
    for i, a in enumerate(works):
        stack[i, :, :a.shape[1]] = a
    angles = np.stack([r.angles for r in records])
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, names=np.array(names), work=stack, widths=widths, scale=scale, landmarks=lms, sizes=sizes,
             angles=angles, broken=broken, is_val=is_val, first=first)
    tmp.replace(cache)
    return RefineData(names, stack, widths, scale, lms, sizes, angles, broken, is_val, first)


def sample_crop(data: RefineData, work: Image.Image, i: int, v: int, cfg: XrayRefineConfig,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One training crop (CROP, CROP) uint8 and its target corners (4, 2) in crop pixels."""
    verts = data.landmarks[i]
    centres = verts.mean(axis=1)
    pitch = R.local_pitch(centres)[v]
    sd = cfg.jitter * (0.1 if rng.random() < 0.25 else 1.0)
    off = np.clip(rng.normal(0, sd, 2), -0.9, 0.9) * pitch
    centre = centres[v] + off
    est = pitch * float(np.clip(np.exp(rng.normal(0, 0.12)), 0.75, 1.33))
    t = int(np.argmin(np.linalg.norm(centres - centre, axis=1)))
    flip = bool(rng.random() < 0.5)
    m = R.crop_matrix(centre, R.SIDE_PITCHES * est, rng.uniform(-cfg.rotation_deg, cfg.rotation_deg), flip)
    target = R.to_crop(m, verts[t])
    if flip:
        target = target[R.FLIP_CORNERS]
    return R.cut(work, m), target


def _intensity(x, g):
    import torch

    b = x.shape[0]
    rnd = lambda lo, hi: lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=g)
    x = x.clamp(0, 1) ** torch.exp(rnd(-0.4, 0.4))
    x = x * rnd(0.8, 1.2) + rnd(-0.1, 0.1)
    x = x + 0.03 * torch.randn(x.shape, generator=g) * torch.rand(b, 1, 1, 1, generator=g)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    s = x.std(dim=(1, 2, 3), keepdim=True, correction=0).clamp_min(1e-3)
    return (x - m) / s


def _loss(cfg: XrayRefineConfig, corners, logits, target):
    import torch

    b, k, hh, ww = logits.shape
    l1 = (corners - target).abs().sum(-1).mean()
    pv = corners[:, [1, 3]] - corners[:, [0, 2]]
    tv = target[:, [1, 3]] - target[:, [0, 2]]
    end = (pv - tv).abs().sum(-1).mean()
    cell = R.CROP / ww
    ys = torch.arange(hh, dtype=corners.dtype) + 0.5
    xs = torch.arange(ww, dtype=corners.dtype) + 0.5
    tx = (target[..., 0] / cell).unsqueeze(-1)
    ty = (target[..., 1] / cell).unsqueeze(-1)
    gmap = torch.exp(-0.5 * (ys - ty) ** 2).unsqueeze(-1) * torch.exp(-0.5 * (xs - tx) ** 2).unsqueeze(-2)
    gmap = gmap / gmap.sum(dim=(-1, -2), keepdim=True).clamp_min(1e-12)
    logp = torch.log_softmax(logits.reshape(b, k, -1), dim=-1).reshape(b, k, hh, ww)
    ce = -(gmap * logp).sum(dim=(-1, -2)).mean()
    return l1 + cfg.endplate_weight * end + cfg.heatmap_weight * ce, float(l1.detach())


def torch_runner(net):
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(x))[0].numpy()
    return run


def shipped_pipeline(first_stage: str | Path) -> dict:
    """How the shipped second stage is run (passes, flip, average_passes, from the first stage folder's model.json),
    so that validation during training measures what the app will run; the defaults when it says none."""
    try:
        refine = json.loads((Path(first_stage) / "model.json").read_text(encoding="utf-8")).get("refine") or {}
    except (OSError, ValueError):
        refine = {}
    return {"passes": int(refine.get("passes", 2)), "flip": bool(refine.get("flip", False)),
            "average": int(refine.get("average_passes", 1))}


def evaluate_two_stage(run, data: RefineData, passes: int = 2, flip: bool = False, average: int = 1) -> dict:
    """AASCE figures of the first stage alone and of both stages, on the validation images with an intact annotation,
    the second stage run ``passes`` times (with the mirrored crops when ``flip``, the mean of the last ``average``)."""
    idx = [i for i in np.flatnonzero(data.is_val) if not data.broken[i]]
    a1, a2, ref, e1, e2 = [], [], [], [], []
    for i in idx:
        h = data.sizes[i][1]
        first = data.first[i]
        refined = R.refine_on_work(run, data.work_image(i), data.scale[i], first, passes, flip, average)
        true = (data.landmarks[i].reshape(68, 2) / data.scale[i])
        a1.append(aasce_angles(first, h))
        a2.append(aasce_angles(refined, h))
        ref.append(data.angles[i])
        e1.append(landmark_errors(first, true))
        e2.append(landmark_errors(refined, true))
    mae = angle_mae(a2, ref)
    return {"images": len(idx), "left_out_broken": int(data.is_val.sum()) - len(idx),
            "smape": smape(a2, ref), "mae_pt": float(mae[0]), "mae_mt": float(mae[1]), "mae_tl": float(mae[2]),
            "landmark_px": float(np.mean(e2)), "landmark_px_median": float(np.median(e2)),
            "first_stage_smape": smape(a1, ref), "first_stage_landmark_px": float(np.mean(e1))}


def run_refine_training(cfg: XrayRefineConfig, progress_bar: bool = True) -> dict:
    import torch
    from tqdm import tqdm

    from training.xray.refine_model import RefineNet

    torch.set_num_threads(max(1, cfg.threads))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.is_file():
        saved = XrayRefineConfig.load(cfg_path)
        saved.max_minutes = cfg.max_minutes
        cfg = saved
    cfg.save(cfg_path)
    bar = tqdm(total=1, desc="preparing images", disable=not progress_bar)

    def _prog(i, n):
        bar.total, bar.n = n, i
        bar.refresh()

    data = load_refine_data(cfg, out / f"cache_work{R.WORK_HEIGHT}.npz", _prog)
    pipeline = shipped_pipeline(cfg.first_stage)
    log.info("validation runs the second stage as shipped: %s", pipeline)
    bar.close()
    train = [i for i in range(len(data.names)) if not data.is_val[i] and not data.broken[i]]
    samples = [(i, v) for i in train for v in range(17)]
    torch.manual_seed(cfg.seed)
    net = RefineNet(crop=R.CROP)
    if cfg.init_from:
        load_trained(net, Path(cfg.init_from))
        net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    state = {"epoch": 0, "step": 0, "history": [], "wall_seconds": 0.0}
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():
        saved = torch.load(ckpt, weights_only=False)
        net.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        gen.set_state(saved["generator"])
        rng.bit_generator.state = saved["numpy_rng"]
        state = saved["state"]
        log.info("resumed at epoch %d", state["epoch"])
    works = {}
    steps_per_epoch = math.ceil(len(samples) / cfg.batch_size)
    started = time.monotonic()
    wall_before = state["wall_seconds"]
    sched = type("S", (), {"learning_rate": cfg.learning_rate, "warmup_epochs": cfg.warmup_epochs,
                           "epochs": cfg.epochs})

    def progress(step):
        minutes = (wall_before + time.monotonic() - started) / 60
        by_steps = step / max(1, cfg.epochs * steps_per_epoch)
        return max(by_steps, minutes / cfg.max_minutes) if cfg.max_minutes else by_steps

    while state["epoch"] < cfg.epochs and not state.get("finished"):
        epoch = state["epoch"] + 1
        net.train()
        order = rng.permutation(len(samples))
        losses, l1s = [], []
        pbar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress_bar,
                    leave=False)
        for s in pbar:
            crops, targets = [], []
            for j in order[s * cfg.batch_size:(s + 1) * cfg.batch_size]:
                i, v = samples[j]
                if i not in works:
                    works[i] = data.work_image(i)
                c, t = sample_crop(data, works[i], i, v, cfg, rng)
                crops.append(c)
                targets.append(t)
            x = torch.from_numpy(np.stack(crops)).float().div(255).unsqueeze(1)
            x = _intensity(x, gen)
            y = torch.from_numpy(np.stack(targets)).float()
            for group in opt.param_groups:
                group["lr"] = _lr(sched, state["step"], steps_per_epoch, progress(state["step"]))
            corners, logits = net(x)
            loss, l1 = _loss(cfg, corners, logits, y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            state["step"] += 1
            losses.append(float(loss))
            l1s.append(l1)
            pbar.set_postfix(loss=f"{np.mean(losses):.2f}", l1=f"{np.mean(l1s):.2f}")
        pbar.close()
        entry = {"epoch": epoch, "train_loss": float(np.mean(losses)), "train_coord_px": float(np.mean(l1s)) / 4,
                 "lr": opt.param_groups[0]["lr"]}
        done = epoch >= cfg.epochs or progress(state["step"]) >= 1.0
        if epoch % cfg.eval_every == 0 or done:
            net.eval()
            entry["val"] = evaluate_two_stage(torch_runner(net), data, **pipeline)
        state["epoch"] = epoch
        state["history"].append(entry)
        state["wall_seconds"] = wall_before + time.monotonic() - started
        if done:
            state["finished"] = True
        save_checkpoint(ckpt, net, opt, gen, state, numpy_rng=rng.bit_generator.state)
        print(record_epoch(out, state["history"], "crop px"), flush=True)
        if done:
            break
    if state.get("finished"):
        torch.save(net.state_dict(), out / "model_final.pt")
    last_val = next((h["val"] for h in reversed(state["history"]) if "val" in h), {})
    return {"output_dir": str(out), "epochs_done": state["epoch"], "finished": bool(state.get("finished")),
            "wall_minutes": state["wall_seconds"] / 60, "validation": last_val}
