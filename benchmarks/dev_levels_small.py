"""Development set of the learned labeller on small and short images: synthetic spines cropped to 40-90 mm tall.

Not a test and not the real table: the steps of the learned labeller for small bodies and short columns are chosen
here, never on the real studies of the README table. Each case is one random spine of
``training/levels/spine_model.py`` (1 mm label map, seeded) rendered with the synthesis intensities of
``training/levels/synth.py`` (CT-, T1- or T2-like, texture, bias, noise, gamma), acquired as a real study would be
(CT: 1 mm or 0.8 x 0.8 x 2 mm axial; MR: sagittal slices 3-4 mm thick, 0.8-1 mm in plane), and cropped around the
cervical or the lumbar column to 40-90 mm superior-inferior, framed tightly around the column (about 55 x 65 mm,
like a crop around the cord), medium (about 105 mm) or as wide as the map (160 x 200 mm).

Per case it runs the learned labeller (the same entry point as ``spinemed levels auto --backend learned``) and
counts: reference bodies (centre inside the image, at least 5 mm from its top and bottom), those with a detection
within 10 mm, extra detections (farther than 10 mm from every body centre of the spine, in view or not), the
automatic names right and wrong, and the semi-automatic rate (the user names the level nearest one detection, the
others follow: :func:`core.spine.evaluation.confirm_one`).

    .venv/bin/python benchmarks/dev_levels_small.py [--spines 16] [--seed 150] [--cache DIR] [-v]

Needs the ``train`` extra (training/ imports); one thread. Label maps are cached (``--cache``) so a change in the
labeller is measured on the same images.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.spine.autolabel import AutoLabelError
from core.spine.autolabel.learned import LearnedLevels
from core.spine.evaluation import evaluate
from core.spine.reference import ReferenceSet
from core.studies.volume import Volume
from training.levels import spine_model as sm
from training.levels import synth

STEP = 1.0  # label map voxels, mm
LR_MM, AP_MM = 160.0, 200.0
FOUND_MM = 10.0
EDGE_MM = 5.0
CERVICAL = ("C3", "C4", "C5", "C6")  # the crop is centred near one of these
LUMBAR = ("L1", "L2", "L3", "L4")


def _spine(seed: int, cache: Path | None, size: tuple[float, float]) -> sm.SpineLabelMap:
    path = cache / f"spine-{seed}-{size[0]:g}-{size[1]:g}.npz" if cache else None
    if path is not None and path.exists():
        z = np.load(path, allow_pickle=True)
        return z["spine"].item()
    opt = sm.SpineOptions(size_range=size)
    spine = sm.generate_spine(np.random.default_rng(seed), opt, lr_mm=LR_MM, ap_mm=AP_MM, step=STEP)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, spine=np.array(spine, dtype=object))
    return spine


def make_case(spine: sm.SpineLabelMap, rng: np.random.Generator, region: str, contrast: str, framing: str,
              tex: float = 0.2, noise: float = 0.1):
    """(volume, reference points in view, every body centre in mm, description) of one cropped acquisition."""
    names = [n for n in (CERVICAL if region == "cervical" else LUMBAR) if n in spine.centres]
    centre = spine.centres[names[rng.integers(len(names))]] + np.array([0.0, 0.0, rng.uniform(-8, 8) / STEP])
    height = rng.uniform(40.0, 90.0)
    shape = np.array(spine.tissue.shape)
    lo, hi = np.zeros(3, int), shape.copy()
    lo[2] = int(np.clip(centre[2] - height / 2 / STEP, 0, shape[2] - 1))
    hi[2] = int(min(shape[2], lo[2] + height / STEP))
    if framing != "wide":
        lr, ap = (rng.uniform(50, 60), rng.uniform(60, 70)) if framing == "tight" else (rng.uniform(95, 115),) * 2
        ap_c = centre[1] + (8.0 if framing == "tight" else 0.0) / STEP  # tight: body and canal, like a cord crop
        lo[0], hi[0] = int(max(0, centre[0] - lr / 2 / STEP)), int(min(shape[0], centre[0] + lr / 2 / STEP))
        lo[1], hi[1] = int(max(0, ap_c - ap / 2 / STEP)), int(min(shape[1], ap_c + ap / 2 / STEP))
    tissue = spine.tissue[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    vol = synth.intensities(tissue, rng, contrast) + synth.texture(tissue, rng, tex)
    vol = synth.degrade(vol, rng, synth.SynthOptions(p_thick=0.0, max_noise=noise), STEP)
    if contrast == "ct":
        factor = (1, 1, 1) if rng.random() < 0.5 else (1, 1, 2)  # 1 mm, or axial slices 2 mm apart
        if factor[2] == 2:
            vol = ndimage.gaussian_filter1d(vol, 2.0 / 2.355, axis=2)
        vol = vol * 1600.0 - 1000.0  # Hounsfield-like: air -1000, cortex ~ +250..+600
        modality = "CT"
    else:
        thick = float(rng.choice([3.0, 4.0]))
        vol = ndimage.gaussian_filter1d(vol, thick / 2.355 / STEP, axis=0)
        factor = (int(thick / STEP), 1, 1)
        vol = vol * 1000.0
        modality = "MR"
    data = np.ascontiguousarray(vol[:: factor[0], :: factor[1], :: factor[2]]).astype(np.float32)
    affine = np.diag([factor[0] * STEP, factor[1] * STEP, factor[2] * STEP, 1.0])
    affine[:3, 3] = lo * STEP
    volume = Volume(data, affine, modality=modality)
    top, bottom = lo[2] * STEP, (lo[2] + (data.shape[2] - 1) * factor[2]) * STEP
    every = {n: tuple(np.asarray(p, float) * STEP) for n, p in spine.centres.items()}
    in_view = {n: p for n, p in every.items()
               if top + EDGE_MM <= p[2] <= bottom - EDGE_MM
               and lo[0] * STEP <= p[0] <= hi[0] * STEP and lo[1] * STEP <= p[1] <= hi[1] * STEP}
    desc = (f"{region:8s} {contrast} {framing:6s} {height:4.0f} mm tall, {data.shape} voxels of "
            f"{[float(v) for v in np.diag(affine)[:3]]} mm")
    return volume, in_view, every, desc


def score(labeller: LearnedLevels, volume: Volume, in_view: dict, every: dict, config) -> dict:
    try:
        lab = labeller.run(volume)
        err = ""
    except AutoLabelError as exc:
        lab, err = None, str(exc)
    pts = np.array([v.centroid for v in lab.vertebrae], float).reshape(-1, 3) if lab else np.zeros((0, 3))
    allc = np.array(list(every.values()))
    found = sum(bool(len(pts)) and np.linalg.norm(pts - np.asarray(p), axis=1).min() <= FOUND_MM
                for p in in_view.values())
    extra = sum(np.linalg.norm(allc - q, axis=1).min() > FOUND_MM for q in pts)
    right = wrong = 0
    semi = None
    if lab and in_view:
        for v in lab.vertebrae:
            if v.name:
                near = min(every, key=lambda n: np.linalg.norm(np.asarray(every[n]) - v.centroid))
                right += near == v.name
                wrong += near != v.name
        ev = evaluate(lab, ReferenceSet(points=in_view, configuration=config))
        semi = ev.confirmed[1] if ev.confirmed else 0.0
    return {"n": len(in_view), "found": int(found), "extra": int(extra), "detections": len(pts), "right": right,
            "wrong": wrong, "semi": semi, "error": err}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spines", type=int, default=16)
    parser.add_argument("--seed", type=int, default=150)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/spinemed-dev-levels-small"))
    parser.add_argument("--model-dir", type=Path, default=None, help="weights folder (default: the shipped one)")
    parser.add_argument("--size", type=float, nargs=2, default=(0.78, 0.92), help="spine size range (training: "
                        "0.8-1.2; default: small adults, cervical bodies about 15 mm apart)")
    parser.add_argument("--texture", type=float, default=0.2, help="largest texture amplitude per tissue")
    parser.add_argument("--noise", type=float, default=0.1, help="largest noise standard deviation (0..1 scale)")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    args = parser.parse_args()
    try:
        labeller = LearnedLevels(args.model_dir, threads=1)
    except TypeError:  # an older labeller (pipeline3), to compare: no thread setting, onnxruntime's default
        labeller = LearnedLevels(args.model_dir)
    print(f"learned labeller {labeller.version} ({labeller.model_dir})")
    contrasts = ("ct", "t1", "t2")
    framings = ("tight", "medium", "wide")
    rows = []
    t0 = time.perf_counter()
    for k in range(args.spines):
        spine = _spine(args.seed + k, args.cache, tuple(args.size))
        for j, region in enumerate(("cervical", "lumbar")):
            rng = np.random.default_rng([args.seed + k, j])
            contrast = contrasts[(k + j) % 3]
            framing = framings[(k // 3 + j) % 3]
            volume, in_view, every, desc = make_case(spine, rng, region, contrast, framing, args.texture, args.noise)
            t = time.perf_counter()
            res = score(labeller, volume, in_view, every, spine.config)
            res.update(region=region, contrast=contrast, framing=framing, desc=desc, seconds=time.perf_counter() - t,
                       tall=volume.data.shape[2] * volume.spacing[2])
            rows.append(res)
            if args.verbose:
                semi = "-" if res["semi"] is None else f"{res['semi']:.2f}"
                print(f"{args.seed + k:4d} {desc}: found {res['found']}/{res['n']}, extra {res['extra']}, "
                      f"named {res['right']} right {res['wrong']} wrong, semi {semi}, {res['seconds']:.1f} s"
                      + (f"  [{res['error'][:70]}]" if res["error"] else ""))
    print(f"{len(rows)} cases in {time.perf_counter() - t0:.0f} s")

    def line(title: str, sel: list[dict]) -> None:
        if not sel:
            return
        n, found = sum(r["n"] for r in sel), sum(r["found"] for r in sel)
        semis = [r["semi"] for r in sel if r["semi"] is not None and r["n"]]
        semi = float(np.mean([r["semi"] if r["semi"] is not None else 0.0 for r in sel if r["n"]])) if semis else 0.0
        none = sum(bool(r["error"]) for r in sel)
        extra = sum(r["extra"] for r in sel)
        print(f"{title:22s} cases {len(sel):3d}  bodies found {found:3d} of {n:3d}  extra {extra:3d}"
              f"  no body found {none:2d}  named right {sum(r['right'] for r in sel):3d} wrong "
              f"{sum(r['wrong'] for r in sel):2d}  semi-automatic mean {semi:.2f}")

    line("all", rows)
    for region in ("cervical", "lumbar"):
        line(region, [r for r in rows if r["region"] == region])
    for c in contrasts:
        line(c, [r for r in rows if r["contrast"] == c])
    for f in framings:
        line(f"framing {f}", [r for r in rows if r["framing"] == f])
    line("under 60 mm tall", [r for r in rows if r["tall"] < 60])
    line("60 mm tall or more", [r for r in rows if r["tall"] >= 60])
    print(f"mean time per case {np.mean([r['seconds'] for r in rows]):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
