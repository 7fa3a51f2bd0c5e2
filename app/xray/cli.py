"""``spinemed xray``: landmarks and Cobb angles on AP spine radiographs, headless.

    spinemed xray landmarks IMAGE [--overlay OUT.png] [--model-dir DIR]
                     corners T1-L5, clinical Cobb curves, AASCE angles; IMAGE: PNG/JPEG or a DICOM CR/DX file
    spinemed xray eval IMAGES_DIR --landmarks CSV --angles CSV --filenames CSV [--validation-only] [--model-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _model(args):
    from core.xray.landmarks import LandmarkModel

    return LandmarkModel(args.model_dir)


def cmd_landmarks(args: argparse.Namespace) -> int:
    from core.library.opener import load_volume
    from core.studies import StudyLoadError
    from core.xray.cobb import REGIONS, find_curves
    from core.xray.landmarks import LandmarkModelError, radiograph_array
    from core.xray.levels import LEVELS

    try:
        volume, warnings = load_volume(args.image)
        gray = radiograph_array(volume)
        model = _model(args)
    except (StudyLoadError, ValueError, LandmarkModelError) as exc:
        print(f"error: {args.image}: {exc}" if isinstance(exc, ValueError) else f"error: {exc}", file=sys.stderr)
        return 2
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    result = model.predict_volume(volume)
    print(f"{args.image}: {result.message()}")
    if not result.confident:
        return 1
    for v, name in enumerate(LEVELS):
        corners = "  ".join(f"({x:.0f}, {y:.0f})" for x, y in result.landmarks[4 * v: 4 * v + 4])
        print(f"  {name:<4} {corners}")
    print("Cobb curves (image plane; decision support, check the end vertebrae):")
    curves = find_curves(result.landmarks)
    for c in curves:
        print(f"  {c.describe()}")
    regional = result.regional_cobb()
    for region in REGIONS:
        c = regional[region]
        print(f"  {region}: " + (f"{c.angle:.1f} deg ({c.upper_end_vertebra}-{c.lower_end_vertebra})" if c
                                 else "no curve of 5 deg or more"))
    pt, mt, tl = result.aasce_angles()
    print(f"AASCE challenge angles: {pt:.1f} / {mt:.1f} / {tl:.1f} deg")
    if args.overlay:
        from core.xray.overlay import render_overlay

        print(f"overlay: {render_overlay(gray, result.landmarks, args.overlay, max_height=args.overlay_height)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from core.xray.aasce import AasceFormatError
    from core.xray.evaluate import evaluate_dataset
    from core.xray.landmarks import LandmarkModelError

    images = Path(args.images_dir)
    if not images.is_dir():
        print(f"error: {images}: not a folder of images", file=sys.stderr)
        return 2
    try:
        model = _model(args)
        only = None
        if args.validation_only:
            split = model.model_dir / "validation_files.json"
            if not split.is_file():
                print(f"error: {split}: missing (the model does not list its validation images)", file=sys.stderr)
                return 2
            only = set(json.loads(split.read_text(encoding="utf-8"))["validation_files"])

        def progress(n, total, name):
            if not args.quiet:
                print(f"\r[{n}/{total}] {name[:60]:<60}", end="", file=sys.stderr, flush=True)

        rep = evaluate_dataset(images, Path(args.filenames), Path(args.landmarks) if args.landmarks else None,
                               Path(args.angles), model, only, progress)
        if not args.quiet:
            print(file=sys.stderr)
    except (AasceFormatError, LandmarkModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"model: {model.name} ({model.model_dir})" + (", its validation images only" if only else ""))
    for line in rep.lines():
        print(line)
    for problem in rep.unreadable:
        print(f"unreadable: {problem}", file=sys.stderr)
    for item in rep.not_confident:
        print(f"not confident: {item}", file=sys.stderr)
    return 0 if rep.scored else 1


def add_parser(sub) -> None:
    x = sub.add_parser("xray", help="AP spine radiographs: vertebra landmarks, Cobb angles, evaluation")
    xs = x.add_subparsers(dest="xray_command", required=True)
    lm = xs.add_parser("landmarks", help="find the vertebra corners T1-L5 and the Cobb angles of one radiograph")
    lm.add_argument("image", help="PNG/JPEG radiograph or DICOM CR/DX file")
    lm.add_argument("--overlay", help="also write a PNG of the (downscaled) image with landmarks, levels and curves")
    lm.add_argument("--overlay-height", type=int, default=1000, help="height of the overlay PNG in pixels")
    lm.add_argument("--model-dir", help="model folder (default: spinemed-xray-landmarks in the model folders)")
    lm.set_defaults(func=cmd_landmarks)
    ev = xs.add_parser("eval", help="score the model on radiographs in the AASCE layout (SMAPE, MAE, px)")
    ev.add_argument("images_dir")
    ev.add_argument("--filenames", required=True, help="CSV: one image file name per row")
    ev.add_argument("--landmarks", help="CSV: 136 normalised numbers per row (x1..x68, y1..y68)")
    ev.add_argument("--angles", required=True, help="CSV: 3 Cobb angles per row, degrees")
    ev.add_argument("--validation-only", action="store_true",
                    help="only the images the model card lists as its validation split")
    ev.add_argument("--model-dir", help="model folder (default: spinemed-xray-landmarks in the model folders)")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress")
    ev.set_defaults(func=cmd_eval)
