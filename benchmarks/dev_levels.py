"""Development set of the learned vertebral-level labeller: the images its design and training choices may be tuned on
(never the real studies of ``benchmarks/eval_levels.py``).

    .venv/bin/python benchmarks/dev_levels.py [--model-dir DIR] [--spines 36] [--seed 2026] [--no-real] [--per-case]

Cases (seeded, so two runs see the same images):
- ``--spines`` random whole spines from ``training/levels/spine_model.py`` (C1 to the sacrum, every variant the model
  draws), rendered CT-, T2- and T1-like in turn (``training/levels/synth.py``: a jittered prior intensity per
  tissue, texture, blur with a thick-slice axis, bias field, noise, gamma) and cropped along the column to
  150-300 mm at a random height;
- VerSe's sub-verse004 label map (T9-L5, ``../shared``) synthesised the same way, CT-, T2- and T1-like, uncropped
  (its geometry was among the 0.1.0 training maps);
- TotalSegmentator's MR example (``ts_mr_abdomen_generic_vertebrae_discs``: 20 axial slices of 3 mm, two vertebrae
  with generic masks and no level names): bodies found only.

Each image goes through the real inference (``core.spine.autolabel.learned.LearnedLevels.run``, onnxruntime) of the
weights in ``--model-dir`` (default: the shipped ones). Printed: body centres found within 10 mm of a detection /
all bodies in view, the mean error of those found, detections more than 10 mm from every body centre (away from the
image's ends, and within 12 mm of them: vertebrae cut by the crop), named right / wrong, and the anchor-type accuracy
per region (how often the network's class of the detection nearest a found body is that body's region: C2, C3-C7,
thoracic, lumbar, sacrum).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from core.spine.autolabel import learned as learned_mod
from core.spine.autolabel.base import AutoLabelError
from core.studies.volume import Volume
from training.levels import spine_model as sm
from training.levels.synth import SynthOptions, degrade, intensities, texture

FOUND_MM = 10.0
EDGE_MM = 12.0
CONTRASTS = ("ct", "t2", "t1")
SAMPLES = REPO.parent / "shared" / "data" / "spine-samples"


@dataclass
class Case:
    name: str
    volume: Volume
    truth: dict[str, np.ndarray]  # body name -> LPS mm
    kind: str  # synthetic, verse, mr-example
    named: bool = True  # the truth has level names


@dataclass
class Result:
    case: str
    kind: str
    bodies: int = 0
    found: int = 0
    errors: list[float] = field(default_factory=list)
    extra_inner: int = 0
    extra_edge: int = 0
    named_right: int = 0
    named_wrong: int = 0
    types: Counter = field(default_factory=Counter)  # (true region, network region) -> count
    detections: int = 0
    failed: str = ""
    seconds: float = 0.0


def render_volume(spine: sm.SpineLabelMap, rng: np.random.Generator, contrast: str, k0: int, k1: int,
                  max_texture: float = 0.05) -> Volume:
    """The label map's rows ``k0:k1`` along S rendered with ``contrast`` (ct, t1, t2) as a Volume on its 2 mm
    LPS grid (CT in Hounsfield-like units, MR in arbitrary units)."""
    tissue = spine.tissue[:, :, k0:k1]
    vol = intensities(tissue, rng, contrast) + texture(tissue, rng, max_texture)
    vol = degrade(vol, rng, SynthOptions(), spine.step)
    data = vol * 2000.0 - 1000.0 if contrast == "ct" else vol * 1000.0
    affine = np.diag([spine.step, spine.step, spine.step, 1.0])
    affine[2, 3] = k0 * spine.step
    return Volume(data.astype(np.float32), affine, modality="CT" if contrast == "ct" else "MR",
                  series_description=f"dev {contrast}")


def _truth(spine: sm.SpineLabelMap, k0: int, k1: int) -> dict[str, np.ndarray]:
    return {n: np.asarray(p, float) * spine.step for n, p in spine.centres.items() if k0 <= p[2] <= k1 - 1}


def synthetic_cases(n: int, seed: int, contrasts: tuple[str, ...] = CONTRASTS) -> list[Case]:
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        spine = sm.generate_spine(rng)
        contrast = contrasts[i % len(contrasts)]
        ks = [p[2] for p in spine.centres.values()]
        length = int(rng.uniform(150.0, 300.0) / spine.step)
        mid = rng.uniform(min(ks), max(ks))
        k0 = int(np.clip(mid - length / 2, 0, max(0, spine.tissue.shape[2] - length)))
        k1 = min(spine.tissue.shape[2], k0 + length)
        vol = render_volume(spine, rng, contrast, k0, k1)
        out.append(Case(f"spine{i:02d}-{contrast}", vol, _truth(spine, k0, k1), "synthetic"))
    return out


def verse_cases(seed: int) -> list[Case]:
    path = SAMPLES / "verse004_labels_only_T9-L5" / "sub-verse004_seg-vert_msk.nii.gz"
    if not path.exists():
        return []
    from training.levels.real_maps import real_label_map

    spine = real_label_map(path, "verse")
    out = []
    for j, contrast in enumerate(CONTRASTS):
        rng = np.random.default_rng([seed, 1000 + j])
        n_k = spine.tissue.shape[2]
        out.append(Case(f"verse004-{contrast}", render_volume(spine, rng, contrast, 0, n_k),
                        _truth(spine, 0, n_k), "verse"))
    return out


def mr_example_case() -> list[Case]:
    folder = SAMPLES / "ts_mr_abdomen_generic_vertebrae_discs"
    if not (folder / "mr.nii.gz").exists():
        return []
    from scipy import ndimage

    from core.library.opener import load_volume

    vol, _ = load_volume(folder / "mr.nii.gz")
    seg, _ = load_volume(folder / "seg_total_mr.nii.gz")
    seg = seg.as_closest_lps()
    lab, n = ndimage.label(np.rint(np.asarray(seg.data)) == 19)  # 19: vertebrae (all levels in one label)
    truth = {}
    for i in range(1, n + 1):
        ijk = np.argwhere(lab == i)
        if len(ijk) >= 200:
            truth[f"#{i}"] = seg.voxel_to_patient(ijk.mean(0))
    return [Case("ts_mr_example", vol, truth, "mr-example", named=False)]


def evaluate(case: Case, labeller) -> Result:
    res = Result(case.name, case.kind, bodies=len(case.truth))
    captured: dict = {}
    real_detect = learned_mod.detect

    def detect(*args, **kwargs):  # the labeller's own step; kept to read each body's anchor class
        out = real_detect(*args, **kwargs)
        captured["bodies"] = out[0]
        return out

    learned_mod.detect = detect
    t0 = time.perf_counter()
    try:
        labelling = labeller.run(case.volume)
    except AutoLabelError as exc:
        res.failed = str(exc)
        return res
    finally:
        learned_mod.detect = real_detect
        res.seconds = time.perf_counter() - t0
    dets = [np.asarray(v.centroid, float) for v in labelling.vertebrae]
    names = [v.name for v in labelling.vertebrae]
    regions = [int(np.argmax(b["region"])) for b in sorted(captured.get("bodies", []), key=lambda b: b["r"])]
    if len(regions) != len(dets):  # the labelling keeps detect's bodies in order; anything else: no types
        regions = [-1] * len(dets)
    res.detections = len(dets)
    truth_names = list(case.truth)
    truth_pts = np.array([case.truth[n] for n in truth_names]) if truth_names else np.zeros((0, 3))
    z_lo, z_hi = _z_range(case.volume)
    if dets and len(truth_pts):
        dist = np.linalg.norm(np.array(dets)[:, None] - truth_pts[None], axis=2)  # detections x truths
        for t, name in enumerate(truth_names):
            d = int(np.argmin(dist[:, t]))
            if dist[d, t] > FOUND_MM:
                continue
            res.found += 1
            res.errors.append(float(dist[d, t]))
            if case.named and regions[d] >= 0:
                res.types[(sm.region_of(name), regions[d])] += 1
        for d, p in enumerate(dets):
            t = int(np.argmin(dist[d]))
            if dist[d, t] > FOUND_MM:
                if min(p[2] - z_lo, z_hi - p[2]) < EDGE_MM:
                    res.extra_edge += 1
                else:
                    res.extra_inner += 1
            elif names[d] and case.named:
                if names[d] == truth_names[t]:
                    res.named_right += 1
                else:
                    res.named_wrong += 1
    else:
        res.extra_inner = len(dets)
    return res


def _z_range(volume: Volume) -> tuple[float, float]:
    corners = np.array([[i, j, k] for i in (0, volume.shape[0] - 1) for j in (0, volume.shape[1] - 1)
                        for k in (0, volume.shape[2] - 1)], float)
    z = volume.voxel_to_patient(corners)[:, 2]
    return float(z.min()), float(z.max())


def summary(results: list[Result], label: str) -> list[str]:
    n_b = sum(r.bodies for r in results)
    found = sum(r.found for r in results)
    errs = [e for r in results for e in r.errors]
    mean = f"{np.mean(errs):.1f}" if errs else "-"
    lines = [(f"{label}: bodies found {found} of {n_b} (mean error {mean} mm); extra detections "
              f"{sum(r.extra_inner for r in results)} inside + {sum(r.extra_edge for r in results)} within "
              f"{EDGE_MM:.0f} mm of an end; named {sum(r.named_right for r in results)} right, "
              f"{sum(r.named_wrong for r in results)} wrong; failed {sum(1 for r in results if r.failed)}")]
    types = Counter()
    for r in results:
        types.update(r.types)
    if types:
        parts = []
        for reg in range(1, len(sm.REGIONS)):
            tot = sum(v for (t, _p), v in types.items() if t == reg)
            if tot:
                ok = types[(reg, reg)]
                called = Counter({sm.REGIONS[p]: v for (t, p), v in types.items() if t == reg and p != reg})
                worst = f", else mostly {called.most_common(1)[0][0]}" if called else ""
                parts.append(f"{sm.REGIONS[reg]} {ok}/{tot} ({ok / tot:.2f}{worst})")
        lines.append("  anchor types: " + "; ".join(parts))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="learned weights folder (labeller.json + model.onnx); "
                        "default: the shipped model")
    parser.add_argument("--spines", type=int, default=36, help="synthetic spines (default 36)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--no-real", action="store_true", help="synthetic spines only (no VerSe map, no MR example)")
    parser.add_argument("--contrasts", default=",".join(CONTRASTS), help=(
        "contrasts of the synthetic spines in turn (ct, t1, t2, random, flat; default ct,t2,t1: the development "
        "figures); `flat` is the 0.3.0 training's flat contrast, a stress test, not the development set"))
    parser.add_argument("--per-case", action="store_true", help="one line per image")
    args = parser.parse_args(argv)
    labeller = learned_mod.LearnedLevels(args.model_dir)
    ok, why = labeller.available()
    if not ok:
        print(f"error: {why}", file=sys.stderr)
        return 2
    print(f"learned {labeller.version} from {labeller.model_dir}")
    t0 = time.perf_counter()
    contrasts = tuple(c.strip() for c in args.contrasts.split(",") if c.strip())
    cases = synthetic_cases(args.spines, args.seed, contrasts)
    if not args.no_real:
        cases += verse_cases(args.seed) + mr_example_case()
    results = []
    for case in cases:
        r = evaluate(case, labeller)
        results.append(r)
        if args.per_case:
            err = f"{np.mean(r.errors):.1f}" if r.errors else "-"
            print(f"  {r.case}: {r.found}/{r.bodies} found ({err} mm), {r.detections} detections, extra "
                  f"{r.extra_inner}+{r.extra_edge}, named {r.named_right} right {r.named_wrong} wrong, "
                  f"{r.seconds:.1f} s{' FAILED: ' + r.failed if r.failed else ''}", flush=True)
    kinds = (("synthetic", f"synthetic spines ({args.spines}, {'/'.join(contrasts)}, 150-300 mm crops)"),
             ("verse", "VerSe sub-verse004 map (CT/T2/T1-like)"),
             ("mr-example", "TotalSegmentator MR example (generic masks)"))
    for kind, label in kinds:
        sel = [r for r in results if r.kind == kind]
        if sel:
            print("\n".join(summary(sel, label)))
    print("\n".join(summary(results, "all")))
    print(f"({len(cases)} images, {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
