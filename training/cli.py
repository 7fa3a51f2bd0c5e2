"""``spinemed-train``: fine-tune, export and document SpineMed LoRA adapters.

    spinemed-train train CONFIG [--set optim.max_steps=10 ...] [--check]
    spinemed-train validate CONFIG [CONFIG ...]
    spinemed-train fields [--markdown]
    spinemed-train export-gguf ADAPTER_DIR -o OUT.gguf [--base BASE.gguf] [--merge q8_0|f16] [--register DIR]
    spinemed-train merge-hf ADAPTER_DIR --base BASE -o OUT_DIR
    spinemed-train card RUN_DIR [--spinebench-base B.json] [--spinebench-adapter A.json] [-o CARD.md]
    spinemed-train register ADAPTER.gguf [--dest MODELS_DIR]
    spinemed-train levels [CONFIG] [--set steps=1000 ...] [--ship resources/models]   (learned level labeller)
    spinemed-train xray train|ship|fields     radiograph landmark model (training/xray/cli.py)

Multi-GPU: ``accelerate launch --config_file resources/training/accelerate/ddp.yaml -m training.cli train CONFIG``
(docs/training.md).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _adapter_base(adapter_dir: Path) -> Path | None:
    info = adapter_dir / "spinemed_training.json"
    if info.is_file():
        base = json.loads(info.read_text(encoding="utf-8")).get("base", {})
        if base.get("gguf_base"):
            return Path(base["gguf_base"])
    return None


def cmd_train(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.train import run_training

    cfg = load_config(args.config, overrides=args.set)
    if args.plan:
        from training.train import plan_run

        total = 0
        for st in plan_run(cfg):
            total += st["tokens_to_train"]
            print(f"stage {st['stage']}: {st['summary']}; ~{st['optimizer_steps']} optimizer steps, "
                  f"~{st['tokens_to_train']:,} tokens to train")
        rate = args.tokens_per_second
        print(f"total ~{total:,} tokens: ~{total / rate / 3600:.1f} h at {rate:g} tokens/s "
              "(measure yours: benchmarks/bench_training.py)")
        return 0
    if args.check:
        print(f"{args.config}: valid; stages: {', '.join(s.name for s in cfg.effective_stages())}; "
              f"output: {cfg.output_dir}")
        return 0
    result = run_training(cfg)
    for s in result.stages:
        status = "skipped (finished before)" if s.skipped else f"{s.steps} steps, {s.tokens_per_second} tokens/s"
        print(f"stage {s.name}: {status}; train loss {s.train_loss}; val loss {s.eval_loss}")
    print(f"adapter: {result.adapter_dir}")
    for label, p in (("GGUF", result.gguf_path), ("merged", result.merged_path), ("card", result.card_path),
                     ("curves", result.curves_png)):
        if p:
            print(f"{label}: {p}")
    for p in result.registered:
        print(f"registered: {p}")
    print(f"peak memory: {result.peak_memory_mib} MiB on {result.device}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from training.config import ConfigError, load_config

    bad = 0
    for c in args.configs:
        try:
            load_config(c)
            print(f"{c}: valid")
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            bad += 1
    return 1 if bad else 0


def cmd_fields(args: argparse.Namespace) -> int:
    from training.config import describe_fields

    print(describe_fields(markdown=args.markdown))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from training import export

    adapter = Path(args.adapter_dir)
    base = Path(args.base) if args.base else _adapter_base(adapter)
    if base is None:
        print(f"{adapter}: no --base given and the adapter does not name its GGUF base", file=sys.stderr)
        return 2
    out = Path(args.output)
    if args.merge:
        path = export.merge_to_gguf(adapter, base, out, qtype=args.merge, name=args.name)
        print(f"merged model: {path}")
        return 0
    path = export.adapter_to_gguf(adapter, base, out, name=args.name or out.stem)
    info_file = adapter / "spinemed_training.json"
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else None
    export.write_sidecar(path, base, info)
    print(f"adapter GGUF: {path}")
    if args.register:
        for p in export.register_adapter(path, Path(args.register)):
            print(f"registered: {p}")
    return 0


def cmd_merge_hf(args: argparse.Namespace) -> int:
    from training import export

    print(f"merged folder: {export.merge_to_hf(args.adapter_dir, args.base, args.output)}")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from training.card import card_from_run

    print(card_from_run(args.run_dir, args.output, args.spinebench_base, args.spinebench_adapter))
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from training import export

    dest = Path(args.dest) if args.dest else None
    if dest is None:
        from core import paths

        dest = paths.data_dir() / "models"
    for p in export.register_adapter(args.gguf, dest):
        print(f"registered: {p}")
    return 0


def cmd_ship(args: argparse.Namespace) -> int:
    from training.ship import ShipError, ship

    try:
        d = ship(args.run_dir, args.models_dir, args.alpha)
    except ShipError as exc:
        print(f"spinemed-train ship: {exc}", file=sys.stderr)
        return 2
    print(d.reason)
    print(f"before/after table: {d.table_path}")
    print(f"default adapter: {'written ' + str(d.pointer_path) if d.ship else 'none (the base model is the default)'}")
    return 0


def cmd_levels(args: argparse.Namespace) -> int:
    from training.levels.config import load_levels_config
    from training.levels.real_maps import RealMapError, load_real_maps
    from training.levels.train import run_levels_training

    cfg = load_levels_config(args.config, args.set)
    if args.check:
        print(f"{args.config or 'defaults'}: valid; {cfg.steps} steps of {cfg.batch_size}; output: {cfg.output_dir}")
        return 0
    try:
        real = load_real_maps(cfg.real_maps)
    except RealMapError as exc:
        print(f"spinemed-train levels: {exc}", file=sys.stderr)
        return 2
    result = run_levels_training(cfg, real, progress=not args.no_progress)
    print(f"{result.steps} steps in {result.minutes:.1f} min; final validation loss {result.final_val_loss}")
    print(f"ONNX: {result.onnx_path}")
    if result.curves_png:
        print(f"curves: {result.curves_png}")
    if args.ship:
        from training.levels.card import write_card
        from training.levels.export import ship

        dest = ship(result.output_dir, Path(args.ship))
        print(f"shipped: {dest} (card: {write_card(result.output_dir, dest)})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spinemed-train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="fine-tune a LoRA adapter from a YAML/TOML config")
    t.add_argument("config")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set optim.max_steps=10 (repeatable)")
    t.add_argument("--check", action="store_true", help="validate the config and stop")
    t.add_argument("--plan", action="store_true",
                   help="tokenise the data (no model load) and print samples, steps, tokens and a time estimate")
    t.add_argument("--tokens-per-second", type=float, default=150.0,
                   help="training speed assumed by --plan (default 150, the embedded base on 2 CPU cores)")
    t.set_defaults(func=cmd_train)

    lv = sub.add_parser("levels", help="train the learned vertebral-level labeller on synthetic images (resumable)")
    lv.add_argument("config", nargs="?", help="YAML/TOML config (fields: training/levels/config.py); default: "
                                              "the defaults")
    lv.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a field, e.g. --set steps=20 (repeatable)")
    lv.add_argument("--check", action="store_true", help="validate the config and stop")
    lv.add_argument("--ship", metavar="MODELS_DIR", help="copy the ONNX, its description, curves and model card "
                                                         "into MODELS_DIR/<name>/ (e.g. resources/models)")
    lv.add_argument("--no-progress", action="store_true", help="no progress bar")
    lv.set_defaults(func=cmd_levels)

    v = sub.add_parser("validate", help="validate config files")
    v.add_argument("configs", nargs="+")
    v.set_defaults(func=cmd_validate)

    f = sub.add_parser("fields", help="list every config field with its help")
    f.add_argument("--markdown", action="store_true")
    f.set_defaults(func=cmd_fields)

    e = sub.add_parser("export-gguf", help="PEFT adapter -> llama.cpp LoRA GGUF (F16), or a merged model GGUF")
    e.add_argument("adapter_dir")
    e.add_argument("-o", "--output", required=True)
    e.add_argument("--base", help="the base GGUF (default: the one named in the adapter's spinemed_training.json)")
    e.add_argument("--name", help="general.name of the GGUF (default: the output file name)")
    e.add_argument("--merge", choices=("q8_0", "f16"), help="write base + adapter merged into one model GGUF")
    e.add_argument("--register", metavar="MODELS_DIR", help="also copy it into a models folder (e.g. resources/models)")
    e.set_defaults(func=cmd_export)

    m = sub.add_parser("merge-hf", help="merge the adapter into a Hugging Face folder (transformers backend)")
    m.add_argument("adapter_dir")
    m.add_argument("--base", required=True, help="base GGUF file or HF folder")
    m.add_argument("-o", "--output", required=True)
    m.set_defaults(func=cmd_merge_hf)

    c = sub.add_parser("card", help="(re)write a run's model card, with SpineBench results when given")
    c.add_argument("run_dir", help="the training output_dir (or its run_info.json)")
    c.add_argument("--spinebench-base", help="SpineBench JSON of the base model")
    c.add_argument("--spinebench-adapter", help="SpineBench JSON of base + adapter")
    c.add_argument("-o", "--output")
    c.set_defaults(func=cmd_card)

    r = sub.add_parser("register", help="copy an adapter GGUF (+ sidecar, card) into a models folder")
    r.add_argument("gguf")
    r.add_argument("--dest", help="models folder (default: <SpineMed data>/models)")
    r.set_defaults(func=cmd_register)

    s = sub.add_parser("ship", help="make a trained adapter the workstation's default if SpineBench shows it is "
                                    "significantly better than the base")
    s.add_argument("run_dir", help="the training output_dir (with eval/spinebench-base and eval/spinebench-adapter)")
    s.add_argument("--models-dir", default="resources/models", help="where the adapter is registered")
    s.add_argument("--alpha", type=float, default=0.05, help="significance level of the before/after comparison")
    s.set_defaults(func=cmd_ship)

    from training.xray.cli import add_parser as add_xray

    add_xray(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from training.config import ConfigError
    from training.data import DataError
    from training.export import ExportError

    try:
        from training.train import TrainError
    except ImportError:  # pragma: no cover
        TrainError = RuntimeError
    try:
        return int(args.func(args) or 0)
    except (ConfigError, DataError, ExportError, TrainError, FileNotFoundError) as exc:
        print(f"spinemed-train: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
