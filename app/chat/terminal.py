"""Headless consultations: ``spinemed ask`` (one answer streamed to stdout) and ``spinemed chat`` (terminal loop).

No Qt here. STUDY is a path to import (folder, file or zip; already imported studies are not duplicated), a series
uid, or a study id from ``spinemed library``; the series is chosen by :mod:`core.library.opener`, as in every command. Notes, the model/device line and the knowledge passages used go to
stderr, the answer alone to stdout. Ctrl-C stops an answer (it is kept, marked as stopped).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # the parser is built on every start of the application: import the model stack only when used
    from core.consult import AnswerStream, Consultation, StudyContext

CHAT_HELP = """commands:
  /level L4-L5      select a level (used with the following questions)
  /levels A,B,...   set the levels in view
  /regen            regenerate the last answer
  /edit TEXT        replace the last question by TEXT and answer it again
  /new              start a new conversation
  /export FILE.md   export this conversation to Markdown
  /quit             leave (Ctrl-D works too); Ctrl-C stops an answer"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="study folder/file/zip to import, series uid, or library study id")
    p.add_argument("--level", help="selected level, e.g. L4-L5")
    p.add_argument("--levels", help="levels in view, comma separated (e.g. L3-L4,L4,L4-L5)")
    p.add_argument("--model", dest="consult_model", type=Path, help="GGUF file or HF folder (default: selected model)")
    p.add_argument("--adapter", help="LoRA adapter (GGUF for llama.cpp, PEFT folder for transformers); 'none' runs "
                   "the model alone (default: the model settings' choice, else the shipped SpineMed adapter)")
    p.add_argument("--mmproj", type=Path, help="vision projector GGUF of a multimodal model")
    p.add_argument("--gpu-layers", type=int, default=None,
                   help="layers to offload to the GPU (-1: all; default: as many as fit its memory, 0 without a GPU)")
    p.add_argument("--n-ctx", type=int, default=4096, help="context window in tokens")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: 1 on small CPUs)")
    p.add_argument("--max-tokens", type=int, default=384, help="longest answer in tokens")
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--conversation", type=int, help="continue this conversation id")
    p.add_argument("--no-knowledge", action="store_true", help="do not retrieve knowledge passages")
    p.add_argument("--raw", action="store_true", help="show the model's answer unchecked (no facts, no citations: "
                   "for comparison only; findings it states may rest on nothing)")


def resolve_study(study: str) -> tuple[StudyContext, str, str, Any]:
    """(context, study_key, series_uid, source): the series :mod:`core.library.opener` picks, as every command
    does; ``source`` is its SeriesSource (for the identifiers a server must never receive)."""
    from core.consult import StudyContext
    from core.library.opener import open_study
    from core.studies import StudyLoadError

    try:
        opened = open_study(study, add_to_library=True)
    except StudyLoadError as exc:
        raise SystemExit(f"spinemed: cannot open {study}: {exc.reason}") from exc
    ctx = StudyContext.from_series_source(opened.source)
    ctx.series = [StudyContext.from_series_source(s).series[0] for s in opened.sources]
    return ctx, opened.study_key, opened.series_uid, opened.source


def open_consultation(args: argparse.Namespace, err: TextIO) -> Consultation:
    from core.consult import Consultation, ConversationStore, default_retriever
    from core.inference.backend import BackendError, GenerationParams
    from core.inference.choice import choose_model
    from core.inference.deidentify import identifiers_of_source
    from core.inference.registry import ModelValidationError

    ctx, study_key, series_uid, source = resolve_study(args.study)
    if args.levels:
        ctx.levels_in_view = [x.strip() for x in args.levels.split(",") if x.strip()]
    elif args.level:
        ctx.levels_in_view = [args.level]
    ctx.selected_level = args.level
    options = {"n_ctx": args.n_ctx, "n_gpu_layers": args.gpu_layers, "n_threads": args.threads}
    if args.adapter:
        options["adapter"] = None if args.adapter == "none" else Path(args.adapter)
    if args.mmproj:
        options["mmproj"] = args.mmproj
    try:
        # a model named on the command line wins, else the department server when it is on, else the registry's
        backend = choose_model(args.consult_model or getattr(args, "model", None), study_key, **options).create()
        if hasattr(backend, "set_identifiers"):  # a server never receives the patient's identifiers
            backend.set_identifiers(identifiers_of_source(source))
        info = backend.load()
    except (BackendError, ModelValidationError) as exc:
        raise SystemExit(f"spinemed: {exc}") from exc
    where = "" if info.device.startswith("server") else f" ({Path(info.model_path).name})"
    print(f"model: {info.model_name}{where} on {info.device_label()}, "
          f"context {info.n_ctx} tokens" + (f", adapter {Path(info.lora_path).name}" if info.lora_path else ""),
          file=err)
    for note in info.notes:
        print(f"note: {note}", file=err)
    store = ConversationStore()
    store.mark_interrupted()
    params = GenerationParams(max_tokens=args.max_tokens, temperature=args.temperature)
    retriever = None if args.no_knowledge else default_retriever()
    facts = None
    if not getattr(args, "raw", False):
        from core.findings.study import facts_for_series

        # the levels given on the command line, else the stored labelling's; the series' stored measurements
        facts = facts_for_series(series_uid, levels=ctx.levels_in_view or None, modality=ctx.modality)
        if not ctx.levels_in_view:
            ctx.levels_in_view = list(facts.levels_in_view)
    return Consultation(backend, store, ctx, conversation_id=args.conversation, study_key=study_key,
                        series_uid=series_uid, retriever=retriever, params=params, facts=facts)


def stream_answer(answer: AnswerStream, out: TextIO, err: TextIO) -> str:
    for note in answer.notes:
        print(f"note: {note}", file=err)
    try:
        for piece in answer:
            out.write(piece)
            out.flush()
    except KeyboardInterrupt:
        out.write("\n")
        print("[answer stopped]", file=err)
        return "cancelled"
    out.write("\n")
    out.flush()
    if answer.passages:
        print("knowledge used: " + "; ".join(f"[{p.id}] {p.title}" for p in answer.passages), file=err)
    return answer.status


def cmd_ask(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from core.consult import ContextOverflowError

    out, err = out or sys.stdout, err or sys.stderr  # looked up now: a redirected stdout is honoured

    consult = open_consultation(args, err)
    try:
        answer = consult.ask(args.question, level=args.level)
    except ContextOverflowError as exc:
        print(f"spinemed: {exc}", file=err)
        return 1
    status = stream_answer(answer, out, err)
    print(f"conversation {consult.id}", file=err)
    return {"complete": 0, "cancelled": 130}.get(status, 1)


def cmd_chat(args: argparse.Namespace, inp: TextIO | None = None, out: TextIO | None = None,
             err: TextIO | None = None) -> int:
    from core.consult import ContextOverflowError

    inp, out, err = inp or sys.stdin, out or sys.stdout, err or sys.stderr

    consult = open_consultation(args, err)
    level = args.level
    print("SpineMed consultation: decision support, not a diagnosis. /help for commands.", file=err)
    while True:
        err.write(f"{level or 'no level'}> ")
        err.flush()
        try:
            line = inp.readline()
        except KeyboardInterrupt:
            err.write("\n")
            continue
        if not line:
            err.write("\n")
            return 0
        line = line.strip()
        if not line:
            continue
        try:
            answer = _chat_command(consult, line, level, err)
        except (ValueError, RuntimeError, ContextOverflowError) as exc:
            print(f"error: {exc}", file=err)
            continue
        if answer == "quit":
            return 0
        if isinstance(answer, tuple):  # a level change
            level = answer[1]
            consult.context.selected_level = level
            continue
        if answer is None:
            continue
        stream_answer(answer, out, err)


def _chat_command(consult: Consultation, line: str, level: str | None, err: TextIO) -> Any:
    if not line.startswith("/"):
        return consult.ask(line, level=level)
    cmd, _, rest = line.partition(" ")
    rest = rest.strip()
    if cmd in ("/quit", "/exit"):
        return "quit"
    if cmd == "/help":
        print(CHAT_HELP, file=err)
    elif cmd == "/level":
        return ("level", rest or None)
    elif cmd == "/levels":
        consult.context.levels_in_view = [x.strip() for x in rest.split(",") if x.strip()]
        print(f"levels in view: {', '.join(consult.context.levels_in_view) or 'none'}", file=err)
    elif cmd == "/regen":
        return consult.regenerate()
    elif cmd == "/edit":
        last = next((m for m in reversed(consult.messages()) if m.role == "user"), None)
        if last is None or not rest:
            raise ValueError("/edit needs a previous question and the new text")
        return consult.edit_and_resend(last.id, rest, level=level)
    elif cmd == "/new":
        consult.start_new()
        print("new conversation", file=err)
    elif cmd == "/export":
        from core.consult import conversation_markdown

        if consult.id is None or not rest:
            raise ValueError("/export needs a file name and a conversation with at least one question")
        Path(rest).write_text(conversation_markdown(consult.store, consult.id), encoding="utf-8")
        print(f"exported to {rest}", file=err)
    else:
        raise ValueError(f"unknown command {cmd} (/help lists them)")
    return None
