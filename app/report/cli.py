"""Headless reports: ``spinemed report STUDY -o report.pdf [-o report.dcm ...]``. No Qt.

STUDY is a path (DICOM folder, NIfTI, image; the largest series is used) or the series uid of a library series. The
levels come from ``--levels`` (a levels JSON written by ``spinemed levels auto -o``), ``--labelmap`` (a reference
label map with ``--numbering``), or the labelling stored in the library; without levels the draft has no level rows
and says so (``--require-levels`` refuses instead). Each ``-o`` extension picks the format: .pdf .docx .txt .json
.dcm. The draft is saved as a new report version in the library unless ``--no-save``; ``--report-id`` exports a
stored report (for example a signed one) without drafting.

Exit codes: 0 written, 1 written but the draft is incomplete, 2 bad input (study, levels, model), 3 no levels and
``--require-levels``, 4 an output could not be written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="study path (folder/file) or library series uid")
    p.add_argument("-o", "--output", action="append", required=True, type=Path,
                   help="output file; the extension picks the format (.pdf .docx .txt .json .dcm); repeatable")
    p.add_argument("--levels", type=Path, help="levels JSON (spinemed levels auto -o ...)")
    p.add_argument("--labelmap", type=Path, help="reference label map (NIfTI) naming the vertebrae")
    p.add_argument("--numbering", default="totalseg", help="numbering of --labelmap: verse, totalseg, sct ...")
    p.add_argument("--measurements", type=Path, help='measurements JSON: [{"name", "level", "value", "unit"}]')
    p.add_argument("--template", choices=["ct", "mri", "xray"], help="report template (default: from the modality)")
    p.add_argument("--require-levels", action="store_true", help="refuse to draft without level labels")
    p.add_argument("--report-id", help="export this stored report instead of drafting a new one")
    p.add_argument("--author", default="spinemed report (command line)", help="author of the saved version")
    p.add_argument("--no-save", action="store_true", help="do not store the draft in the library")
    p.add_argument("--model", dest="report_model", type=Path, help="GGUF model (default: the selected model)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model (default: 1 on small CPUs)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _progress(fraction: float, message: str) -> None:
    print(f"  {fraction * 100:5.1f}% {message}", file=sys.stderr)


def _labelling(args: argparse.Namespace, study) -> None:
    from core.spine.labelling import SpineLabelling
    from core.spine.labelmap import labelling_from_labelmap

    if args.levels:
        study.labelling = SpineLabelling.from_json(args.levels.read_text(encoding="utf-8"))
    elif args.labelmap:
        study.labelling = labelling_from_labelmap(args.labelmap, args.numbering, study.series_uid, study.volume)


def _backend(args: argparse.Namespace, study):
    """The model named with --model, else the department server when it is on, else the registry's choice; a
    server is told the study's identifiers, which it never receives (core.inference.deidentify)."""
    from core.inference.choice import choose_model
    from core.inference.deidentify import identifiers_of_source

    explicit = args.report_model or getattr(args, "model", None)
    backend = choose_model(explicit, study.study_key, n_threads=args.threads).create()
    if hasattr(backend, "set_identifiers"):
        backend.set_identifiers(identifiers_of_source(study.source))
    return backend


def _keep_draft(report, output: Path) -> Path | None:
    """The report as JSON beside a failed output (``report.pdf`` -> ``report.draft.json``); None when that fails."""
    from core.report import ExportError, export_report

    try:
        return export_report(report, output.with_name(output.stem + ".draft.json"))
    except ExportError:
        return None


def cmd_report(args: argparse.Namespace) -> int:
    from core.inference.backend import BackendError
    from core.report import ExportError, NeedsLabellingError, ReportStore, draft_report, export_report
    from core.report.study import ReportStudy, load_measurements
    from core.report.templates import load_template
    from core.spine.labelmap import LabelMapError
    from core.studies import StudyLoadError

    try:
        study = ReportStudy.open(args.study, progress=None if args.quiet else _progress)
        _labelling(args, study)
        if args.measurements:
            study.context.measurements = load_measurements(args.measurements)
    except (StudyLoadError, LabelMapError, ValueError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for w in study.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.require_levels and not args.report_id and not (study.labelling and study.labelling.named):
        print("error: this study has no named vertebral levels: label the levels first "
              "(spinemed levels auto, --levels or --labelmap)", file=sys.stderr)
        return 3
    store = None if args.no_save and not args.report_id else ReportStore()
    if args.report_id:
        try:
            report = store.load(args.report_id)
        except KeyError as exc:
            print(f"error: {exc.args[0]}", file=sys.stderr)
            return 2
    else:
        try:
            backend = _backend(args, study)
            template = load_template(args.template) if args.template else None
            report = draft_report(backend, study.context, study.labelling, template=template,
                                  require_levels=args.require_levels, progress=None if args.quiet else _progress,
                                  **study.draft_kwargs())
        except NeedsLabellingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        except (ValueError, BackendError) as exc:  # no model, a broken model, a server that is down
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if store is not None:
            info = store.save(report, author=args.author, study_key=study.study_key)
            print(f"saved report {report.report_id} version {info.version}", file=sys.stderr)
    failed = False
    for out in args.output:
        try:
            print(f"written {export_report(report, out, volume=study.volume)}")
        except ExportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
    if failed and store is None:  # --no-save: keep the draft so that a failed export loses nothing
        kept = _keep_draft(report, args.output[0])
        print(f"the draft was kept in {kept}" if kept else "error: the draft could not be kept either",
              file=sys.stderr)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if failed:
        return 4
    return 1 if report.incomplete else 0
