"""Benchmark: radiograph landmark inference (onnxruntime, CPU), seconds per image including preprocessing.

Runs :meth:`core.xray.landmarks.LandmarkModel.predict` (both stages when the model ships the second,
``refine.onnx``; ``--first-stage-only`` to time the first alone) on real AP radiographs of ``../shared`` when present (the
model's validation images), else on synthetic 1000 x 2500 images; median of ``--repeats`` per image after a warm-up,
with onnxruntime's default threads and with one thread.

    .venv/bin/python benchmarks/bench_xray_landmarks.py [--images 10] [--repeats 3] [--first-stage-only]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.xray.evaluate import load_gray
from core.xray.landmarks import LandmarkModel

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "xray-aasce-train"


def _images(model: LandmarkModel, n: int) -> tuple[list[np.ndarray], str]:
    split = model.model_dir / "validation_files.json"
    if (SHARED / "images").is_dir() and split.is_file():
        names = json.loads(split.read_text())["validation_files"][:n]
        return [load_gray(SHARED / "images" / name) for name in names], f"{len(names)} real validation radiographs"
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (2500, 1000), dtype=np.uint8) for _ in range(n)], f"{n} synthetic 1000x2500 images"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--first-stage-only", action="store_true", help="time the whole-image stage alone")
    args = parser.parse_args()
    for threads in (0, 1):
        model = LandmarkModel(threads=threads)
        if args.first_stage_only:
            model.refine_session = None
        stages = "two stages" if model.refine_session is not None else "first stage only"
        print(f"{model.name} {model.settings.get('version')}, {stages}")
        images, what = _images(model, args.images)
        model.predict(images[0])  # warm-up
        per_image = []
        for img in images:
            runs = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                model.predict(img)
                runs.append(time.perf_counter() - t)
            per_image.append(statistics.median(runs))
        label = "default threads" if threads == 0 else "1 thread"
        print(f"{what}, {label}: median {statistics.median(per_image):.3f} s per image, "
              f"max {max(per_image):.3f} s (shape of the first: {images[0].shape})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
