"""The ``spinemed`` command: the workstation GUI and headless subcommands.

    spinemed                       start the workstation
    spinemed open PATH...          start it and open studies (folder, file, zip)
    spinemed import PATH...        import into the library without a window
    spinemed library               list the library's studies and series
    spinemed info PATH             describe a study (series, geometry) without importing it
    spinemed models [--adapter default|none|PATH]   list local models; which model + adapter are used
    spinemed models check|add|remove|use ...        a GGUF's facts and fit; add (copy/link), remove, choose
    spinemed levels auto STUDY     label the vertebral levels (folder, file, zip, library series uid or study id)
    spinemed levels eval IMAGE --reference LABELMAP --numbering {verse,totalseg,sct}
                                   label IMAGE and score it against a reference label map
    spinemed ask STUDY [--level L4-L5] "question"   stream a consultation answer to stdout
    spinemed chat STUDY [--level L4-L5]             interactive consultation in the terminal
    spinemed report STUDY -o report.pdf             draft a structured report and export it (.pdf .docx .txt
                                                    .json .dcm; -o repeatable)
    spinemed xray landmarks IMAGE                   vertebra corners T1-L5 and Cobb angles of an AP radiograph
    spinemed xray eval IMAGES_DIR --landmarks CSV --angles CSV --filenames CSV
                                                    score the radiograph landmark model (SMAPE, MAE, px)

Qt is imported only by the GUI subcommands, so the headless ones run on machines without a display.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_gui(args: argparse.Namespace) -> int:
    from app.main import run_gui

    return run_gui([Path(p) for p in getattr(args, "paths", [])], model_path=args.model)


def _cmd_import(args: argparse.Namespace) -> int:
    from core.library import Library
    from core.studies import StudyLoadError

    lib = Library()
    failed = False
    for p in args.paths:
        try:
            rep = lib.import_path(Path(p), progress=_print_progress if args.progress else None)
        except StudyLoadError as exc:  # scan reports bad files as problems; this is a last line of defence
            print(f"{p}: nothing imported\n  problem: {exc.path}: {exc.reason}", file=sys.stderr)
            failed = True
            continue
        print(f"{p}: {rep.summary()}")
        for problem in rep.problems:
            print(f"  problem: {problem}", file=sys.stderr)
        failed |= not (rep.new_series or rep.existing_series)
    return 1 if failed else 0


def _cmd_library(args: argparse.Namespace) -> int:
    from core.library import Library

    lib = Library()
    for study in lib.studies():
        print(f"[{study['id']}] {study['description'] or '(no description)'}  {study['study_date'] or ''}  "
              f"{study['modalities']}  age={study['patient_age'] or '?'} sex={study['patient_sex'] or '?'}")
        for s in lib.series(study["id"]):
            print(f"    {s['series_uid']}  {s['modality']}  {s['n_images']} images  {s['description']}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    """Exit status 0 when every series found opens, 1 when none was found or one cannot be opened."""
    import tempfile

    from core.studies import StudyLoadError, load_series, scan

    with tempfile.TemporaryDirectory(prefix="spinemed-info-") as extract_dir:  # a zip is unpacked here
        result = scan(Path(args.path), extract_dir=extract_dir)
        for problem in result.problems:
            print(f"problem: {problem}", file=sys.stderr)
        opened = 0
        for source in result.series:
            try:
                vol = load_series(source)
            except StudyLoadError as exc:
                print(f"problem: {exc.path}: {exc.reason}", file=sys.stderr)
                continue
            opened += 1
            print(f"{source.kind} {source.modality} '{source.series_description}': shape {vol.shape}, "
                  f"spacing {tuple(round(s, 3) for s in vol.spacing)} mm, orientation {vol.orientation()}")
            for w in [*source.warnings, *vol.warnings]:
                print(f"  warning: {w}")
    return 0 if result.series and opened == len(result.series) else 1


def _cmd_ask(args: argparse.Namespace) -> int:
    from app.chat.terminal import cmd_ask

    return cmd_ask(args)


def _cmd_chat(args: argparse.Namespace) -> int:
    from app.chat.terminal import cmd_chat

    return cmd_chat(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from app.report.cli import cmd_report

    return cmd_report(args)


def _levels_run(study: str, backend: str | None, quiet: bool, threads: int | None = None):
    from core.library.opener import open_study
    from core.spine.autolabel import auto_label, get_backend

    if threads:  # the learned labeller's onnxruntime threads (default: 1 on small CPUs)
        get_backend("learned").threads = threads

    opened = open_study(study)  # a path, a .zip, a library series uid or study id
    volume = opened.load()
    for w in opened.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return auto_label(volume, backend, progress=None if quiet else _print_progress)


def _cmd_levels_auto(args: argparse.Namespace) -> int:
    from core.spine.autolabel import AutoLabelError
    from core.studies import StudyLoadError

    try:
        labelling = _levels_run(args.image, args.backend, args.quiet, args.threads)
    except AutoLabelError as exc:
        print(f"error: {args.image}: {exc}", file=sys.stderr)
        return 2
    except StudyLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(labelling.message)
    for note in labelling.notes:
        print(f"note: {note}")
    for n, v in enumerate(labelling.vertebrae):
        name = v.name or f"#{n + 1}"
        flag = " (partial)" if v.partial else ""
        print(f"  {name:<5} LPS ({v.centroid[0]:7.1f}, {v.centroid[1]:7.1f}, {v.centroid[2]:7.1f}) mm  "
              f"confidence {v.confidence:.2f}{flag}")
    if args.output:
        Path(args.output).write_text(labelling.to_json())
        print(f"written {args.output}")
    return 0


def _cmd_levels_eval(args: argparse.Namespace) -> int:
    from core.library.opener import load_volume
    from core.spine.autolabel import AutoLabelError
    from core.spine.evaluation import evaluate, format_report
    from core.spine.labelling import SpineLabelling
    from core.spine.numbering import get_numbering
    from core.spine.reference import reference_from_labelmap
    from core.studies import StudyLoadError

    try:
        labelmap, _ = load_volume(args.reference)
        # body centres with the canal line carried over from neighbouring vertebrae for masks cut by the field of view
        reference = reference_from_labelmap(labelmap, get_numbering(args.numbering), canal_from_neighbours=True)
        if not reference.points:
            print(f"error: no vertebra labels of the {args.numbering} numbering in {args.reference}", file=sys.stderr)
            return 2
        try:
            labelling = _levels_run(args.image, args.backend, args.quiet, args.threads)
        except AutoLabelError as exc:
            print(f"labelling failed: {exc}")
            labelling = SpineLabelling(vertebrae=[])
    except StudyLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if labelling.message:
        print(f"labeller: {labelling.message}")
    print(format_report(evaluate(labelling, reference)))
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1 is needed, not {text!r}")
    return value


def _print_progress(fraction: float, message: str) -> None:
    print(f"  {fraction * 100:5.1f}% {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spinemed", description="SpineMed Workstation (decision support only).")
    parser.add_argument("--model", type=Path, default=None, help="GGUF model to use instead of the default")
    parser.set_defaults(func=_cmd_gui, paths=[])
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("open", help="start the workstation and open studies")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=_cmd_gui)
    p = sub.add_parser("import", help="import studies into the library (headless)")
    p.add_argument("paths", nargs="+")
    p.add_argument("--progress", action="store_true")
    p.set_defaults(func=_cmd_import)
    p = sub.add_parser("library", help="list the study library")
    p.set_defaults(func=_cmd_library)
    from app.models_cli import add_parser as add_models_parser

    add_models_parser(sub)
    p = sub.add_parser("info", help="describe a study without importing it")
    p.add_argument("path")
    p.set_defaults(func=_cmd_info)
    from app.chat.terminal import add_arguments as add_consult_arguments

    p = sub.add_parser("ask", help="ask the model about a study; the answer streams to stdout (headless)")
    add_consult_arguments(p)
    p.add_argument("question")
    p.set_defaults(func=_cmd_ask)
    p = sub.add_parser("chat", help="interactive consultation about a study in the terminal (headless)")
    add_consult_arguments(p)
    p.set_defaults(func=_cmd_chat)
    p = sub.add_parser("levels", help="vertebral levels: automatic labelling and its evaluation (headless)")
    levels = p.add_subparsers(dest="levels_command", required=True)
    backends = ["auto", "learned", "classical-ct", "classical-mr", "totalsegmentator"]
    q = levels.add_parser("auto", help="label the vertebrae of a study (folder, file, zip, library series uid or "
                                        "study id; its largest series)")
    q.add_argument("image", metavar="STUDY")
    q.add_argument("-o", "--output", help="write the labelling as JSON")
    q.add_argument("--backend", choices=backends, default="auto")
    q.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    q.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads of the learned labeller's network (default: $SPINEMED_LEVELS_THREADS, else 1 on "
                        "small CPUs)")
    q.set_defaults(func=_cmd_levels_auto)
    q = levels.add_parser("eval", help="label an image and score it against a reference label map")
    q.add_argument("image")
    q.add_argument("--reference", required=True, help="label map (NIfTI) with vertebra labels")
    q.add_argument("--numbering", required=True, choices=["verse", "totalseg", "sct"])
    q.add_argument("--backend", choices=backends, default="auto")
    q.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    q.add_argument("--threads", type=_positive_int, default=None, help="CPU threads of the learned labeller's network")
    q.set_defaults(func=_cmd_levels_eval)
    from app.report.cli import add_arguments as add_report_arguments

    p = sub.add_parser("report", help="draft a structured report and export it: .pdf .docx .txt .json .dcm (headless)")
    add_report_arguments(p)
    p.set_defaults(func=_cmd_report)
    from app.xray.cli import add_parser as add_xray_parser

    add_xray_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
