"""``spinemed-train xray ...``: train the radiograph landmark model and ship it (ONNX + card).

    spinemed-train xray train [--data DIR] [--output RUN] [--epochs N] [--max-minutes M] [--set FIELD=VALUE ...]
    spinemed-train xray ship RUN [--dest resources/models]
    spinemed-train xray refine-train [--output RUN] [--epochs N] [--max-minutes M] [--set FIELD=VALUE ...]
    spinemed-train xray refine-ship RUN [--model-dir resources/models/spinemed-xray-landmarks]
    spinemed-train xray fields
"""
from __future__ import annotations

import argparse
import dataclasses
import sys


def _apply_sets(cfg, items: list[str]) -> bool:
    fields = {f.name for f in dataclasses.fields(cfg)}
    for item in items:
        key, _, value = item.partition("=")
        if key not in fields:
            print(f"spinemed-train xray: unknown field {key!r} (see `spinemed-train xray fields`)", file=sys.stderr)
            return False
        typ = type(getattr(cfg, key))
        try:
            setattr(cfg, key, value.lower() in ("1", "true", "yes") if typ is bool else typ(value))
        except ValueError:
            print(f"spinemed-train xray: {key}={value!r} is not a {typ.__name__}", file=sys.stderr)
            return False
    return True


def _cmd_refine_train(args: argparse.Namespace) -> int:
    from training.xray.config import XrayRefineConfig
    from training.xray.refine_train import run_refine_training

    cfg = XrayRefineConfig()
    if not _apply_sets(cfg, args.set):
        return 2
    for key in ("output_dir", "epochs", "max_minutes"):
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, key, value)
    result = run_refine_training(cfg, progress_bar=not args.no_progress)
    state = "finished" if result["finished"] else "stopped (resumable: run the same command again)"
    print(f"{state} after {result['epochs_done']} epochs, {result['wall_minutes']:.1f} min of training in total")
    v = result["validation"]
    if v:
        print(f"validation ({v['images']} images, both stages): SMAPE {v['smape']:.1f}% (first stage alone "
              f"{v['first_stage_smape']:.1f}%), landmark error {v['landmark_px']:.1f} px")
    print(f"run folder: {result['output_dir']}")
    return 0


def _cmd_refine_ship(args: argparse.Namespace) -> int:
    from training.xray.refine_ship import ship_refine

    print(ship_refine(args.run_dir, args.model_dir))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from training.xray.config import XrayTrainConfig
    from training.xray.train import run_training

    cfg = XrayTrainConfig()
    if not _apply_sets(cfg, args.set):
        return 2
    for key in ("data_dir", "output_dir", "epochs", "max_minutes"):
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, key, value)
    result = run_training(cfg, progress_bar=not args.no_progress)
    state = "finished" if result.finished else "stopped (resumable: run the same command again)"
    print(f"{state} after {result.epochs_done} epochs, {result.wall_minutes:.1f} min of training in total")
    v = result.validation
    if v:
        print(f"validation ({v['images']} images): SMAPE {v['smape']:.1f}%, landmark error {v['landmark_px']:.1f} px, "
              f"MAE {v['mae_pt']:.1f} / {v['mae_mt']:.1f} / {v['mae_tl']:.1f} deg")
    print(f"run folder: {result.output_dir}")
    return 0


def _cmd_ship(args: argparse.Namespace) -> int:
    from training.xray.ship import ship

    dest = ship(args.run_dir, args.dest)
    print(f"shipped to {dest}")
    return 0


def _cmd_fields(args: argparse.Namespace) -> int:
    from training.xray.config import XrayRefineConfig, XrayTrainConfig, describe

    print("train:\n" + describe(XrayTrainConfig) + "\n\nrefine-train:\n" + describe(XrayRefineConfig))
    return 0


def add_parser(sub) -> None:
    x = sub.add_parser("xray", help="radiograph landmark model (vertebra corners T1-L5, Cobb angles)")
    xs = x.add_subparsers(dest="xray_command", required=True)
    t = xs.add_parser("train", help="train (or resume) on data in the AASCE layout, patient-wise split")
    t.add_argument("--data", dest="data_dir", help="AASCE-layout folder (default ../shared/data/xray-aasce-train)")
    t.add_argument("--output", dest="output_dir", help="run folder (resumed when it holds a checkpoint)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--max-minutes", dest="max_minutes", type=float, help="wall-time budget (the schedule anneals within it)")
    t.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="any config field")
    t.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    t.set_defaults(func=_cmd_train)
    s = xs.add_parser("ship", help="export a run to ONNX with its settings, validation figures and model card")
    s.add_argument("run_dir")
    s.add_argument("--dest", default="resources/models", help="models folder (default resources/models)")
    s.set_defaults(func=_cmd_ship)
    r = xs.add_parser("refine-train", help="train (or resume) the second stage: one crop per vertebra, its corners")
    r.add_argument("--output", dest="output_dir", help="run folder (resumed when it holds a checkpoint)")
    r.add_argument("--epochs", type=int)
    r.add_argument("--max-minutes", dest="max_minutes", type=float, help="wall-time budget")
    r.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="any refine config field")
    r.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    r.set_defaults(func=_cmd_refine_train)
    rs = xs.add_parser("refine-ship", help="add a second-stage run to a model folder if it beats the first stage")
    rs.add_argument("run_dir")
    rs.add_argument("--model-dir", default="resources/models/spinemed-xray-landmarks")
    rs.set_defaults(func=_cmd_refine_ship)
    f = xs.add_parser("fields", help="list the settings of both training commands with their help")
    f.set_defaults(func=_cmd_fields)
