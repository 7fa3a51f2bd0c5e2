"""Both labellers side by side on every real labelled study in ../shared and tests/data: runs
``spinemed levels eval`` once per study and labeller and prints a table of identification rate, localisation error,
semi-automatic figures (the user names one level) and the time of each run.

    .venv/bin/python benchmarks/eval_levels.py [--samples ../shared/data/spine-samples] [--markdown]
        [--public .cache/eval-public-ct/reference_files]   (the two CTs benchmarks/eval_public_ct.py fetches)
        [--learned-dir runs/levels]   (other learned weights than the shipped ones, e.g. a training run's folder)

The classical labeller is classical-ct on CT and classical-mr on MR; the learned one is ``learned`` (weights in
resources/models/spinemed-levels-synth, or ``--learned-dir``; the version is printed beside it). The learned
labeller was trained on synthetic images only; of these studies its weights saw no image and no label map (the only
real label map it was trained with is VerSe's sub-verse004 mask, whose CT is not here).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Study:
    name: str
    modality: str
    image: Path
    reference: Path
    numbering: str


def studies(samples: Path, public: Path | None) -> list[Study]:
    s = samples
    out = [
        Study("tptbox_ct_lumbar_crop_L2-L4", "CT", s / "tptbox_ct_lumbar_crop_L2-L4/sub-ct_label-22_ct.nii.gz",
              s / "tptbox_ct_lumbar_crop_L2-L4/sub-ct_seg-vert_label-22_msk.nii.gz", "verse"),
        Study("ts_ct_dicom_T11-T12", "CT", s / "ts_ct_dicom_T11-T12/dicom",
              s / "ts_ct_dicom_T11-T12/seg_total_v2.nii.gz", "totalseg"),
        Study("sct_cervical_t2_mri_C2-C5", "MR", s / "sct_cervical_t2_mri_C2-C5/t2.nii.gz",
              s / "sct_cervical_t2_mri_C2-C5/t2_cordseg_labeled_by_level.nii.gz", "sct"),
        Study("tptbox_mri_cervical_crop_C5-C7", "MR", s / "tptbox_mri_cervical_crop_C5-C7/sub-mri_label-6_T2w.nii.gz",
              s / "tptbox_mri_cervical_crop_C5-C7/sub-mri_seg-vert_label-6_msk.nii.gz", "verse"),
        Study("totalseg_example_ct (tests/data)", "CT", REPO / "tests/data/totalseg_example_ct/ct.nii.gz",
              REPO / "tests/data/totalseg_example_ct/seg_vertebrae_totalseg.nii.gz", "totalseg"),
    ]
    if public is not None:
        t12 = public / "aorta_T12_totalseg.nii.gz"  # written by benchmarks/eval_public_ct.py
        if t12.exists():
            out.append(Study("TotalSegmentator aorta chest CT", "CT", public / "aorta_report/example_ct.nii.gz",
                             t12, "totalseg"))
    return [st for st in out if st.image.exists() and st.reference.exists()]


def _num(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    return m.group(1) if m else "-"


def _env(learned_dir: Path | None) -> dict:
    env = dict(os.environ)
    if learned_dir is not None:
        env["SPINEMED_LEVELS_MODEL_DIR"] = str(learned_dir.resolve())
    return env


def learned_version(learned_dir: Path | None) -> str:
    from core.spine.autolabel.learned import PIPELINE

    folder = learned_dir or REPO / "resources/models/spinemed-levels-synth"
    try:
        return str(json.loads((folder / "labeller.json").read_text())["version"]) + PIPELINE
    except (OSError, ValueError, KeyError):
        return "?"


def run(study: Study, backend: str, learned_dir: Path | None = None) -> dict:
    spinemed = str(Path(sys.executable).with_name("spinemed"))
    t0 = time.perf_counter()
    proc = subprocess.run([spinemed, "levels", "eval", str(study.image), "--reference", str(study.reference),
                           "--numbering", study.numbering, "--backend", backend, "-q"],
                          capture_output=True, text=True, check=False, env=_env(learned_dir))
    seconds = time.perf_counter() - t0
    out = proc.stdout
    semi = re.search(r"semi-automatic .*?identification rate ([\d.]+), localisation error mm ([\d.\-]+)", out)
    return {
        "ident": _num(r"identification rate: ([\d.]+)", out),
        "loc": _num(r"localisation error mm: ([\d.\-]+)", out),
        "pred": _num(r"predicted vertebrae: (\d+ \(\d+ named\))", out),
        "refs": _num(r"reference vertebrae: (\d+)", out),
        "semi": f"{semi.group(1)} / {semi.group(2)}" if semi else "-",
        "failed": _num(r"labelling failed: (.*)", out),
        "seconds": seconds,
        "stdout": out + proc.stderr,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=REPO.parent / "shared" / "data" / "spine-samples")
    parser.add_argument("--public", type=Path, default=REPO / ".cache/eval-public-ct/reference_files")
    parser.add_argument("--verbose", action="store_true", help="print each eval's full output")
    parser.add_argument("--only", choices=("classical", "learned"), help="run one labeller only")
    parser.add_argument("--learned-dir", type=Path, help="learned weights folder (labeller.json + model.onnx)")
    args = parser.parse_args()
    learned = f"learned {learned_version(args.learned_dir)}"
    found = studies(args.samples, args.public if args.public.is_dir() else None)
    if not found:
        print(f"error: no labelled study found under {args.samples} or tests/data", file=sys.stderr)
        return 2
    print("| study | labeller | identification rate | localisation error mm | semi-automatic rate / error mm | "
          "predicted (named) / reference | time s |")
    print("|---|---|---|---|---|---|---|")
    for st in found:
        classical = "classical-ct" if st.modality == "CT" else "classical-mr"
        for backend in (classical, "learned"):
            if args.only and not backend.startswith(args.only):
                continue
            r = run(st, backend, args.learned_dir)
            note = f" (failed: {r['failed']})" if r["failed"] != "-" else ""
            name = learned if backend == "learned" else backend
            print(f"| {st.name} ({st.modality}) | {name} | {r['ident']}{note} | {r['loc']} | {r['semi']} | "
                  f"{r['pred']} / {r['refs']} | {r['seconds']:.1f} |", flush=True)
            if args.verbose:
                print(r["stdout"])
    lumbar = args.samples / "sct_t2_lumbar_T9-L3/t2_lumbar.nii.gz"
    if lumbar.exists():  # one known level only (the T9-T10 disc point): detection counts, no score
        print("\nsct_t2_lumbar_T9-L3 (MR T2, about T9-L3, no anchor in view; only the T9-T10 disc is known):")
        for backend in ("classical-mr", "learned"):
            if args.only and not backend.startswith(args.only):
                continue
            spinemed = str(Path(sys.executable).with_name("spinemed"))
            t0 = time.perf_counter()
            proc = subprocess.run([spinemed, "levels", "auto", str(lumbar), "--backend", backend, "-q"],
                                  capture_output=True, text=True, check=False, env=_env(args.learned_dir))
            rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("  ")]
            named = sum(1 for ln in rows if not ln.strip().startswith("#"))
            first = proc.stdout.splitlines()[0] if proc.stdout else proc.stderr.strip()
            name = learned if backend == "learned" else backend
            print(f"- {name}: {len(rows)} vertebrae, {named} named, {time.perf_counter() - t0:.1f} s: {first}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
