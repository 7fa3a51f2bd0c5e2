"""Benchmark: automatic level labelling of a synthetic 512x512x400 CT (built-in CT method, or ``--backend learned``).

The phantom (core.synthetic.phantom: trunk, T8..S1 with discs, ribs, sacrum and iliac bones; 0.7 x 0.7 x 1.0 mm,
int16 HU) is made in memory; the time printed covers auto_label() only (resampling, column tracing, discs,
anchors, naming), the median of ``--repeats`` runs after one warm-up. With ``--backend learned --threads 1,2``
onnxruntime's thread counts are compared in the same run (runs interleaved, so a change of machine load hits both):
the median of each and their ratio.

    .venv/bin/python benchmarks/bench_levels.py [--repeats 3] [--slices 400] [--backend classical-ct|learned]
        [--threads 1,2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.spine.autolabel import auto_label, get_backend
from core.spine.evaluation import evaluate
from core.spine.reference import ReferenceSet
from core.synthetic.phantom import spine_phantom


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slices", type=int, default=400)
    parser.add_argument("--backend", default="classical-ct", help="a registered labeller (classical-ct, learned)")
    parser.add_argument("--threads", default="", help="learned only: onnxruntime thread counts to compare, e.g. 1,2 "
                        "(default: the labeller's own default)")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",") if t.strip()] or [None]
    backend = get_backend(args.backend)
    if threads != [None] and not hasattr(backend, "threads"):
        parser.error(f"--threads is for the learned labeller, not {args.backend}")
    t0 = time.perf_counter()
    ph = spine_phantom(first="T8", last="S1", shape=(512, 512, args.slices), spacing=(0.7, 0.7, 1.0))
    print(f"phantom {ph.volume.shape} {ph.volume.spacing} mm made in {time.perf_counter() - t0:.1f} s")
    times: dict = {n: [] for n in threads}
    labelling = None
    for n in range(args.repeats + 1):
        for k in threads:
            if k is not None:
                backend.threads = k
            t = time.perf_counter()
            labelling = auto_label(ph.volume, backend=args.backend)
            if n:  # the first run of each is a warm-up
                times[k].append(time.perf_counter() - t)
    ev = evaluate(labelling, ReferenceSet(ph.centres))
    print(f"labelled {len(labelling.vertebrae)} vertebrae, names {labelling.names()}")
    loc = ev.localisation_error_mm
    print(f"identification rate {ev.identification_rate:.2f}, localisation error "
          f"{'-' if loc is None else f'{loc:.1f}'} mm, detection error {ev.detection_error_mm:.1f} mm")
    for k, ts in times.items():
        how = "" if k is None else f" with {k} onnxruntime thread(s)"
        print(f"{args.backend} auto-labelling time{how}: median {statistics.median(ts):.2f} s (min {min(ts):.2f}, "
              f"max {max(ts):.2f}) over {len(ts)} runs")
    if len(threads) > 1:
        base = statistics.median(times[threads[0]])
        for k in threads[1:]:
            print(f"ratio {k} threads / {threads[0]} thread(s): {statistics.median(times[k]) / base:.2f}")
    return 0 if all(np.isfinite(statistics.median(ts)) for ts in times.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
