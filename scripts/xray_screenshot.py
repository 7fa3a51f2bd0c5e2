"""Make docs/screenshots/xray_landmarks.png: a real AP radiograph of ../shared (one of the landmark model's
validation images, never a training one) downscaled, with the model's landmarks, level names and Cobb curves.

    .venv/bin/python scripts/xray_screenshot.py [--name FILE] [--height 900]

Only the downscaled picture goes into docs/ (the AASCE images themselves are research-use and never copied).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.cli import main as spinemed
from core.xray.landmarks import default_model_dir

SHARED = REPO.parent / "shared" / "data" / "xray-aasce-train" / "images"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="file name of a validation radiograph (default: the first listed)")
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("-o", "--output", default=str(REPO / "docs" / "screenshots" / "xray_landmarks.png"))
    args = parser.parse_args()
    model_dir = default_model_dir()
    if model_dir is None or not SHARED.is_dir():
        print(f"needs the shipped model and {SHARED}", file=sys.stderr)
        return 2
    names = json.loads((model_dir / "validation_files.json").read_text())["validation_files"]
    name = args.name or names[0]
    if name not in names:
        print(f"{name} is not a validation image of the model", file=sys.stderr)
        return 2
    return spinemed(["xray", "landmarks", str(SHARED / name), "--overlay", args.output,
                     "--overlay-height", str(args.height)])


if __name__ == "__main__":
    sys.exit(main())
