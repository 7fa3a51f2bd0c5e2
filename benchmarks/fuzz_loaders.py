"""Long mutation-fuzzing run of the study loaders: counts per outcome over thousands of mutants.

Mutants of real images (the bundled JPEG 2000 CT as stored and uncompressed, NIfTI-1/2 made from it and the
NIfTI samples in ../shared, JPEG/PNG radiographs rendered from it and the AASCE radiographs in ../shared when
present) are written one folder each; a child process under an address-space cap runs ``scan`` and
``load_series`` on each and classifies the outcome (see ``tests/studies_fuzz_support.py``):

    loaded       every series found opened, no problem reported
    clean error  problems / load errors from the loaders' own checks, in plain words
    fallback     the loaders' safety net caught an exception no check foresaw (or a message carried raw library text)
    escape       an exception other than StudyLoadError got out of scan / load_series (or an unusable Volume)
    memory       MemoryError, or the child killed while allocating
    hang         no answer within --timeout seconds
    crash        the child process died

    .venv/bin/python benchmarks/fuzz_loaders.py [--cases 3000] [--seed 19] [--mem-gb 4] [--timeout 60]

Prints the counts per outcome and per kind, and the distinct details of everything worse than "clean error".
"""
from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.studies_fuzz_support import (  # after the path set-up
    OUTCOMES,
    LoaderWorker,
    RandomChooser,
    make_seeds,
    mutate,
    temp_root,
    write_case,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=3000, help="number of mutants (split evenly over the kinds)")
    parser.add_argument("--seed", type=int, default=19, help="random seed of the mutations")
    parser.add_argument("--mem-gb", type=float, default=4.0, help="address-space cap of the child process (GB)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a case counts as a hang")
    parser.add_argument("--kinds", default="dicom,nifti,raster", help="comma-separated subset")
    parser.add_argument("--keep", type=Path, default=None, help="copy mutants worse than 'clean error' here")
    parser.add_argument("--reasons", type=int, default=0, help="also print the N most common clean-error reasons")
    args = parser.parse_args(argv)

    root = temp_root("spinemed-fuzz-")
    try:
        seeds = make_seeds(root / "seeds")
        kinds = [k for k in args.kinds.split(",") if k in seeds]
        rng = random.Random(args.seed)
        chooser = RandomChooser(rng)
        counts: dict[str, Counter] = {k: Counter() for k in kinds}
        details: dict[str, Counter] = defaultdict(Counter)
        reasons: Counter = Counter()
        start = time.monotonic()
        print("seeds: " + ", ".join(f"{k}: {len(seeds[k])}" for k in kinds), flush=True)
        with LoaderWorker(mem_cap=int(args.mem_gb * (1 << 30)), timeout=args.timeout) as worker:
            for n in range(args.cases):
                kind = kinds[n % len(kinds)]
                seed = chooser.choice(seeds[kind])
                data = mutate(kind, seed.data, chooser)
                case_dir = write_case(root / "cases", seed, data, n)
                outcome, detail = worker.run(case_dir, root / "extract")
                counts[kind][outcome] += 1
                if outcome == "clean error":
                    reasons[re.sub(r"\S*/case\d+/", "", detail)[:160]] += 1
                if OUTCOMES.index(outcome) > OUTCOMES.index("clean error"):
                    details[outcome][f"[{kind}/{seed.name}] {detail}"[:220]] += 1
                    if args.keep:
                        args.keep.mkdir(parents=True, exist_ok=True)
                        shutil.copytree(case_dir, args.keep / f"{outcome.replace(' ', '_')}-{n:06d}")
                shutil.rmtree(case_dir, ignore_errors=True)
                if (n + 1) % 250 == 0:
                    done = sum(sum(c.values()) for c in counts.values())
                    total = sum((counts[k] for k in kinds), Counter())
                    print(f"  {done} cases, {time.monotonic() - start:.0f} s: "
                          + ", ".join(f"{o} {total[o]}" for o in OUTCOMES if total[o]), flush=True)
        elapsed = time.monotonic() - start
    finally:
        shutil.rmtree(root, ignore_errors=True)
    total = sum(counts.values(), Counter())
    print(f"\n{sum(total.values())} mutants in {elapsed:.0f} s (seed {args.seed}, child capped at {args.mem_gb:g} GB, "
          f"hang after {args.timeout:g} s)")
    print(f"{'kind':<8}" + "".join(f"{o:>13}" for o in OUTCOMES))
    for kind in kinds:
        print(f"{kind:<8}" + "".join(f"{counts[kind][o]:>13}" for o in OUTCOMES))
    print(f"{'all':<8}" + "".join(f"{total[o]:>13}" for o in OUTCOMES))
    for outcome in OUTCOMES[2:]:
        if details[outcome]:
            print(f"\n{outcome}:")
            for text, k in details[outcome].most_common(30):
                print(f"  {k:4d} x {text}")
    if args.reasons:
        print(f"\nmost common clean errors ({len(reasons)} distinct):")
        for text, k in reasons.most_common(args.reasons):
            print(f"  {k:4d} x {text}")
    bad = sum(total[o] for o in ("escape", "memory", "hang", "crash"))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
