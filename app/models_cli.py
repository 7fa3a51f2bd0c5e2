"""``spinemed models``: list the local models; add, remove and choose one (headless).

    spinemed models [--adapter default|none|PATH]        list; which model and adapter the workstation uses
    spinemed models check PATH [--mmproj P] [--ctx N]     header facts, memory needed vs RAM/VRAM, GPU layers that fit
    spinemed models add PATH [--link] [--mmproj P]       copy (sha256 checked) or link into the models folder
    spinemed models remove NAME
    spinemed models use NAME                             the choice persists (models.json)
    spinemed models server [--url URL] [--model M] [--token T] [--ca-file PEM] [--on|--off] [--test]
                                                         the department's OpenAI-compatible server (off by default)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _print_check(check) -> None:
    for key, value in check.facts().items():
        print(f"  {key:<17} {value}")
    for w in check.warnings:
        print(f"  warning: {w}")
    for p in check.problems:
        print(f"  refused: {p}")


def _cmd_list(args: argparse.Namespace) -> int:
    from core.inference.registry import ModelRegistry, ModelValidationError

    registry = ModelRegistry()
    if args.adapter:
        try:
            registry.select_adapter(None if args.adapter == "default" else args.adapter)
        except ModelValidationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    from core.inference.model_store import paired_projector

    model = args.model or registry.selected()
    in_use = Path(model).resolve() if model else None
    for entry in registry.list_models():
        what = entry.metadata.summary() if entry.metadata else f"unusable: {entry.error}"
        mark = "* " if in_use is not None and entry.path.resolve() == in_use else "  "
        proj = paired_projector(entry.path) if entry.path.is_file() else None
        print(f"{mark}{entry.path}  [{entry.source}]  {what}" + (f"  + projector {proj.name}" if proj else ""))
    status = registry.adapter_status(model)
    print(f"model used: {model or 'none found (run scripts/setup.sh)'}")
    print(f"adapter used: {status.adapter or 'none'} ({status.reason})")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from core.inference.model_store import ModelStore

    check = ModelStore().inspect(args.path, args.mmproj, n_ctx=args.ctx)
    print(f"{args.path}:")
    _print_check(check)
    return 0 if check.ok else 2


def _cmd_add(args: argparse.Namespace) -> int:
    from core.inference.model_store import ModelStore, ModelStoreError

    store = ModelStore()
    last = [-1]

    def progress(fraction: float, message: str) -> None:
        pct = int(fraction * 100)
        if pct // 10 != last[0] // 10:
            print(f"  {pct:3d}% {message}", file=sys.stderr)
        last[0] = pct

    try:
        added = store.add(args.path, link=args.link, mmproj=args.mmproj, progress=progress)
    except ModelStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'linked' if added.linked else 'copied'} {args.path} -> {added.path} (sha256 {added.sha256})")
    _print_check(added.check)
    print(f"use it: spinemed models use {added.name}")
    return 0


def _store_action(action: str, name: str, done: str) -> int:
    """Run ModelStore().<action>(name); print ``done`` with the path, or the store's refusal (exit 2)."""
    from core.inference.model_store import ModelStore, ModelStoreError

    try:
        path = getattr(ModelStore(), action)(name)
    except ModelStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{done} {path}")
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    return _store_action("remove", args.name, "removed")


def _cmd_use(args: argparse.Namespace) -> int:
    return _store_action("use", args.name, "model used from now on:")


def _cmd_server(args: argparse.Namespace) -> int:
    from core.inference.backend import BackendError
    from core.inference.server_backend import ServerBackend, ServerSettings, check_server_address

    settings = ServerSettings.load()
    changes = {k: v for k, v in (("url", args.url), ("model", args.model), ("api_key", args.token),
                                 ("ca_file", args.ca_file), ("timeout_s", args.timeout), ("n_ctx", args.ctx),
                                 ("vision", args.vision)) if v is not None}
    if args.on is not None:
        changes["enabled"] = args.on
    for key, value in changes.items():
        setattr(settings, key, value)
    if changes:
        if settings.enabled and not settings.url:
            print("error: name the server first: --url http://10.1.2.3:8000/v1", file=sys.stderr)
            return 2
        if settings.url:
            try:
                check_server_address(settings.url)
            except BackendError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        settings.save()
    state = "on: consultations and reports use it" if settings.enabled else "off: the local model answers"
    print(f"server: {settings.url or '(none)'} ({state})")
    print(f"model: {settings.model or '(the first one the server lists)'}; token: {'set' if settings.api_key else 'none'}"
          f"; CA file: {settings.ca_file or 'system'}; timeout {settings.timeout_s:g} s")
    if args.test:
        if not settings.url:
            print("error: no server URL to test", file=sys.stderr)
            return 2
        try:
            info = ServerBackend(settings).load()
        except BackendError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"reachable: model {info.model_name}, context {info.n_ctx} tokens")
        for note in info.notes:
            print(f"note: {note}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, check, add, remove and choose local models (headless)")
    p.add_argument("--adapter", help="choose the adapter from now on: 'default' (the shipped SpineMed adapter when "
                   "it fits the model), 'none', or a LoRA GGUF / PEFT folder")
    p.set_defaults(func=_cmd_list)
    models = p.add_subparsers(dest="models_command")
    q = models.add_parser("check", help="header facts, memory needed vs this machine, GPU layers that fit")
    q.add_argument("path")
    q.add_argument("--mmproj", help="vision projector (mmproj GGUF) to pair with the model")
    q.add_argument("--ctx", type=int, default=None, help="context length to size the KV cache for (default 4096)")
    q.set_defaults(func=_cmd_check)
    q = models.add_parser("add", help="copy (sha256 checked) or link a GGUF model into the models folder")
    q.add_argument("path")
    q.add_argument("--link", action="store_true", help="link to the file instead of copying it")
    q.add_argument("--mmproj", help="vision projector (mmproj GGUF); one beside the model is found by itself")
    q.set_defaults(func=_cmd_add)
    q = models.add_parser("remove", help="delete a model (or its link) from the models folder")
    q.add_argument("name")
    q.set_defaults(func=_cmd_remove)
    q = models.add_parser("use", help="use this model from now on (persisted)")
    q.add_argument("name")
    q.set_defaults(func=_cmd_use)
    q = models.add_parser("server", help="the department's OpenAI-compatible model server (off by default)")
    q.add_argument("--url", help="e.g. http://10.1.2.3:8000/v1 (loopback or hospital network addresses only)")
    q.add_argument("--model", help="model name on the server (default: the first it lists)")
    q.add_argument("--token", help="bearer token, if the server needs one")
    q.add_argument("--ca-file", help="the hospital's CA certificate (PEM) for an https server")
    q.add_argument("--timeout", type=float, help="seconds to wait for the server and for each streamed piece")
    q.add_argument("--ctx", type=int, help="the server's context length, when it does not say")
    q.add_argument("--vision", action=argparse.BooleanOptionalAction, default=None,
                   help="the served model takes images")
    on = q.add_mutually_exclusive_group()
    on.add_argument("--on", dest="on", action="store_const", const=True, default=None,
                    help="use the server for consultations and reports")
    on.add_argument("--off", dest="on", action="store_const", const=False, help="use the local model again")
    q.add_argument("--test", action="store_true", help="check the server answers and which model it serves")
    q.set_defaults(func=_cmd_server)
