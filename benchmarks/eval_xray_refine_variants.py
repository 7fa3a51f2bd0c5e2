"""Compare second-stage variants of the radiograph landmark model (test-time flip, number of re-centred passes,
averaging the last passes) on one half of the patient-wise validation split, SMAPE as the AASCE challenge scores it.

The validation radiographs (``validation_files.json`` of the model folder) are split by patient into halves A and B
(:func:`core.xray.evaluate.patient_halves`, seed 16). Variants are chosen on half A only; ``--report`` also prints
half B and the whole split, for the figures published after the choice. The first stage runs once per image; each
variant re-runs only the second stage. Reads the AASCE radiographs from ``../shared`` (never copied).

    .venv/bin/python benchmarks/eval_xray_refine_variants.py [--refine-onnx FILE] [--report]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.xray import refine as R
from core.xray.aasce import broken_vertebrae, read_dataset
from core.xray.cobb import aasce_angles
from core.xray.evaluate import load_gray, patient_halves
from core.xray.landmarks import LandmarkModel
from core.xray.metrics import landmark_errors, smape

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "xray-aasce-train"
MODEL = Path(__file__).resolve().parents[1] / "resources" / "models" / "spinemed-xray-landmarks"
# (passes, flip, average of the last N passes)
VARIANTS = [(p, f, a) for f in (False, True) for p in (1, 2, 3) for a in range(1, p + 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--model-dir", type=Path, default=MODEL)
    ap.add_argument("--refine-onnx", type=Path, help="second-stage weights to try instead of the model folder's")
    ap.add_argument("--report", action="store_true", help="also print half B and the whole split")
    args = ap.parse_args()
    labels = args.data / "labels"
    if not (args.data / "images").is_dir():
        print(f"{args.data}: no AASCE images folder here", file=sys.stderr)
        return 2
    model = LandmarkModel(args.model_dir, threads=1)
    if args.refine_onnx:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        model.refine_session = ort.InferenceSession(str(args.refine_onnx), opts, providers=["CPUExecutionProvider"])
    refine_session, model.refine_session = model.refine_session, None     # first stage alone, once per image
    name = refine_session.get_inputs()[0].name
    run = lambda x: refine_session.run(None, {name: x.astype(np.float32)})[0]
    val = json.loads((args.model_dir / "validation_files.json").read_text(encoding="utf-8"))["validation_files"]
    half_a, _ = patient_halves(val)
    records = [r for r in read_dataset(labels / "filenames.csv", labels / "landmarks.csv", labels / "angles.csv")
               if r.name in set(val)]
    rows = {v: [] for v in VARIANTS}      # per image: (half, predicted angles, reference angles, corner error)
    for n, r in enumerate(records, start=1):
        gray = load_gray(args.data / "images" / r.name)
        h, w = gray.shape
        ref_px = r.landmarks_px(w, h)
        if broken_vertebrae(ref_px):
            continue
        first = model.predict(gray)
        work, sx, sy = R.working_image(gray)
        outputs = {f: R.refine_passes(run, work, (sx, sy), first.landmarks, 3, f) for f in (False, True)}
        for v in VARIANTS:
            p, f, a = v
            lm = R.combine_passes(outputs[f][:p], first.landmarks, (sx, sy), a) if first.confident else first.landmarks
            rows[v].append(("A" if r.name in half_a else "B", aasce_angles(lm, h), r.angles,
                            float(np.mean(landmark_errors(lm, ref_px)))))
        print(f"\r{n}/{len(records)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    halves = ("A", "B", "all") if args.report else ("A",)
    n_img = {h: sum(1 for x in rows[VARIANTS[0]] if h in ("all", x[0])) for h in halves}
    title = {"A": "half A", "B": "half B", "all": "whole split"}
    print("passes flip average | " + " | ".join(f"{title[h]} ({n_img[h]} images): SMAPE, corner px" for h in halves))
    for v, data in rows.items():
        cells = []
        for h in halves:
            sel = [x for x in data if h in ("all", x[0])]
            cells.append(f"{smape([x[1] for x in sel], [x[2] for x in sel]):.2f} %, {np.mean([x[3] for x in sel]):.1f}")
        print(f"{v[0]} {'yes' if v[1] else 'no '} {v[2]} | " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
