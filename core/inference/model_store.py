"""Models the user brings: check a GGUF, add it to the models folder (copied or linked), remove it, choose it.

    store = ModelStore()                               # <data>/models, choice kept by ModelRegistry (models.json)
    check = store.inspect("/media/usb/qwen2.5-7b-instruct-q4_k_m.gguf")   # header facts, memory fit, refusal
    added = store.add(path, link=False, mmproj=None, progress=cb, cancel=token)   # copy + sha256 of the copy
    store.use(added.name); store.remove(added.name)

A file is refused, with the reason, before anything is copied: not a GGUF, truncated, not a model (an adapter or a
projector on its own), too big for this machine's memory, or a vision projector (mmproj) that does not fit the model
(its projection width differs from the model's embedding width). A projector given with ``mmproj=`` or found beside the
model (a ``*mmproj*.gguf`` in the same folder) is paired: copied along and recorded in the model's sidecar
``<model>.spinemed.json`` (sha256, source, projector), which the registry and the app read.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core import paths
from core.inference.gguf_header import GGUFError, GGUFHeader, projector_problem, validate_gguf
from core.inference.model_fit import MemoryFit, memory_fit
from core.inference.registry import ModelRegistry, ModelValidationError
from core.tasks import CancelToken

SIDECAR_SUFFIX = ".spinemed.json"
_CHUNK = 8 * 2**20


class ModelStoreError(ModelValidationError):
    """A model cannot be added, removed or chosen; the message names the file and the reason."""


@dataclass
class ModelCheck:
    """What the header says about a model file, whether it runs here, and why it is refused if it is."""
    path: Path
    header: GGUFHeader | None = None
    fit: MemoryFit | None = None
    mmproj: Path | None = None
    mmproj_header: GGUFHeader | None = None
    problems: list[str] = field(default_factory=list)  # refusals: the file cannot be added
    warnings: list[str] = field(default_factory=list)  # usable, but the user should know

    @property
    def ok(self) -> bool:
        return not self.problems

    def facts(self) -> dict[str, str]:
        """Header facts for display, in order."""
        if self.header is None:
            return {}
        h = self.header
        n = h.parameter_count
        params = f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.0f} M"
        out = {"architecture": h.architecture or "?", "name": str(h.get("general.name") or self.path.stem),
               "parameters": params, "quantisation": h.quantization, "file size": f"{h.file_size / 2**30:.2f} GiB",
               "context length": str(h.context_length or "?"), "layers": str(h.block_count or "?"),
               "chat template": "present" if h.chat_template else "absent (a generic template is used)",
               "vision projector": self.mmproj.name if self.mmproj else "none"}
        if self.fit is not None:
            out["memory"] = self.fit.summary()
        return out


@dataclass
class AddedModel:
    name: str
    path: Path
    sha256: str
    linked: bool
    mmproj: Path | None
    check: ModelCheck


def sha256_file(path: Path, progress: Callable[[int], None] | None = None, cancel: CancelToken | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            if cancel is not None and cancel.cancelled:
                raise ModelStoreError(f"{path}: cancelled")
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()


def find_projector(model: Path) -> Path | None:
    """A ``*mmproj*.gguf`` beside the model: the one named after it if several, else the only one."""
    candidates = sorted(p for p in model.parent.glob("*.gguf") if "mmproj" in p.name.lower() and p != model)
    if len(candidates) == 1:
        return candidates[0]
    stem = model.stem.lower().split(".")[0].split("-q")[0]
    named = [p for p in candidates if stem and stem in p.name.lower()]
    return named[0] if len(named) == 1 else None


def read_sidecar(model: Path) -> dict:
    side = model.with_name(model.name + SIDECAR_SUFFIX)
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class ModelStore:
    def __init__(self, models_dir: Path | None = None, registry: ModelRegistry | None = None) -> None:
        self.models_dir = Path(models_dir) if models_dir else paths.data_dir() / "models"
        self.registry = registry or ModelRegistry()

    # --- checks -------------------------------------------------------------------------------------------------
    def inspect(self, path: Path | str, mmproj: Path | str | None = None, *, n_ctx: int | None = None,
                ram_bytes: int | None = None, vram_bytes: int | None = -1, find_mmproj: bool = True) -> ModelCheck:
        """Header, memory fit and projector of a model file; refusals in ``problems``. Reads headers only."""
        path = Path(path).expanduser()
        check = ModelCheck(path)
        if path.is_dir():
            check.problems.append(f"{path}: a folder; give a .gguf model file")
            return check
        try:
            header = validate_gguf(path)
        except GGUFError as exc:
            check.problems.append(str(exc))
            return check
        check.header = header
        if header.kind != "model":
            what = "a vision projector (mmproj)" if header.kind == "mmproj" else "a LoRA adapter"
            check.problems.append(f"{path}: this GGUF is {what}, not a model; add the model it belongs to"
                                  + (" with this file as its projector" if header.kind == "mmproj" else ""))
            return check
        if not header.chat_template:
            check.warnings.append(f"{path.name}: no chat template in the file; a generic template is used, answers "
                                  "may be poorer")
        check.fit = memory_fit(header, n_ctx, ram_bytes=ram_bytes, vram_bytes=vram_bytes)
        refusal = check.fit.refusal()
        if refusal:
            check.problems.append(f"{path}: {refusal}")
        elif check.fit.available_ram_bytes is not None and check.fit.cpu_bytes_needed > check.fit.available_ram_bytes:
            check.warnings.append(f"{path.name}: needs more memory than is free right now; close other programs "
                                  "before loading it")
        projector = Path(mmproj).expanduser() if mmproj else (find_projector(path) if find_mmproj else None)
        if projector is not None:
            try:
                proj_header = validate_gguf(projector)
            except GGUFError as exc:
                check.problems.append(f"vision projector: {exc}")
                return check
            problem = projector_problem(header, proj_header)
            if problem:
                if mmproj:
                    check.problems.append(problem)
                else:  # a stray projector found beside the model is not the user's mistake
                    check.warnings.append(f"{problem}; not paired")
            else:
                check.mmproj, check.mmproj_header = projector, proj_header
        return check

    # --- add / remove / use ---------------------------------------------------------------------------------------
    def add(self, path: Path | str, *, link: bool = False, mmproj: Path | str | None = None,
            progress: Callable[[float, str], None] | None = None, cancel: CancelToken | None = None,
            ram_bytes: int | None = None, vram_bytes: int | None = -1) -> AddedModel:
        """Check, then copy (sha256 of the source compared with the copy's) or symlink into the models folder."""
        source = Path(path).expanduser().resolve()
        check = self.inspect(source, mmproj, ram_bytes=ram_bytes, vram_bytes=vram_bytes)
        if not check.ok:
            raise ModelStoreError("; ".join(check.problems))
        self.models_dir.mkdir(parents=True, exist_ok=True)
        target = self.models_dir / source.name
        if target.exists() or target.is_symlink():
            if target.resolve() == source or read_sidecar(target).get("source") == str(source):
                raise ModelStoreError(f"{source.name}: already in the models folder {self.models_dir}")
            raise ModelStoreError(f"{source.name}: a different model of that name is already in {self.models_dir}; "
                                  f"remove it first (spinemed models remove {target.stem})")
        files = [source] + ([check.mmproj.resolve()] if check.mmproj else [])
        total = sum(f.stat().st_size for f in files)
        done = 0

        def tick(n: int, what: str) -> None:
            nonlocal done
            done += n
            if progress:
                progress(min(done / (2 * total), 1.0) if total else 1.0, what)

        placed: list[Path] = []
        digest = ""
        try:
            for f in files:
                dest = self.models_dir / f.name
                if f is not source and (dest.exists() or dest.is_symlink()):
                    if dest.resolve() == f or sha256_file(dest) == sha256_file(f):
                        continue  # the same projector is already there (shared by two quantisations of a model)
                    raise ModelStoreError(f"{f.name}: a different file of that name is already in {self.models_dir}")
                if link:
                    dest.symlink_to(f)
                    placed.append(dest)
                    h = sha256_file(f, lambda n, f=f: tick(2 * n, f"checksum {f.name}"), cancel)
                else:
                    h = self._copy_checked(f, dest, tick, cancel)
                    placed.append(dest)
                if f is source:
                    digest = h
        except BaseException:
            for p in placed:
                p.unlink(missing_ok=True)
            raise
        paired = self.models_dir / check.mmproj.name if check.mmproj else None
        sidecar = {"sha256": digest, "source": str(source), "linked": link, "added": time.strftime("%Y-%m-%d %H:%M"),
                   "mmproj": paired.name if paired else None}
        target.with_name(target.name + SIDECAR_SUFFIX).write_text(json.dumps(sidecar, indent=2), encoding="utf-8")
        return AddedModel(target.stem, target, digest, link, paired, check)

    def _copy_checked(self, src: Path, dest: Path, tick: Callable[[int, str], None], cancel: CancelToken | None) -> str:
        """Copy through a temporary name, hashing on the way; hash the copy from disk; rename when both agree."""
        tmp = dest.with_name(f".{dest.name}.part")
        src_digest = hashlib.sha256()
        try:
            with src.open("rb") as fin, tmp.open("wb") as fout:
                while chunk := fin.read(_CHUNK):
                    if cancel is not None and cancel.cancelled:
                        raise ModelStoreError(f"{src}: copy cancelled; nothing was added")
                    src_digest.update(chunk)
                    fout.write(chunk)
                    tick(len(chunk), f"copying {src.name}")
                fout.flush()
                os.fsync(fout.fileno())
            copy_digest = sha256_file(tmp, lambda n: tick(n, f"checking the copy of {src.name}"), cancel)
            if copy_digest != src_digest.hexdigest():
                raise ModelStoreError(f"{src}: the copy in {dest.parent} differs from the original (sha256 "
                                      f"{copy_digest[:12]}... vs {src_digest.hexdigest()[:12]}...); the medium may be "
                                      "failing, nothing was added")
            validate_gguf(tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            raise ModelStoreError(f"{src}: could not copy into {dest.parent} ({exc.strerror or exc})") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return copy_digest

    def find(self, name: str) -> Path:
        """A model in the models folder by name (file stem or file name)."""
        for p in sorted(self.models_dir.glob("*.gguf")) if self.models_dir.is_dir() else []:
            if name in (p.name, p.stem):
                return p
        known = [e.name for e in self.registry.list_models() if e.usable]
        if any(name == k for k in known):
            raise ModelStoreError(f"{name}: not in the models folder {self.models_dir} (it is found elsewhere and "
                                  "is not removed by SpineMed)")
        raise ModelStoreError(f"{name}: no such model (known: {', '.join(known) or 'none'})")

    def remove(self, name: str) -> Path:
        """Delete a model (or its link) from the models folder, with its sidecar and a projector no other model uses;
        the choice falls back to the default when it was this model."""
        target = self.find(name)
        side = read_sidecar(target)
        selected = self.registry.selection()["global"]
        was_selected = bool(selected) and Path(selected) in (target, target.resolve())
        target.unlink()
        target.with_name(target.name + SIDECAR_SUFFIX).unlink(missing_ok=True)
        proj = side.get("mmproj")
        if proj:
            still_used = any(read_sidecar(p).get("mmproj") == proj for p in self.models_dir.glob("*.gguf"))
            if not still_used:
                (self.models_dir / proj).unlink(missing_ok=True)
        if was_selected:
            self.registry.select(None)
        return target

    def use(self, name: str) -> Path:
        """Choose a model for every study from now on (persisted in models.json)."""
        candidates = [e for e in self.registry.list_models() if e.usable and name in (e.name, e.path.name, str(e.path))]
        if not candidates:
            check = self.inspect(name) if Path(name).is_file() else None
            if check is None:
                known = [e.name for e in self.registry.list_models() if e.usable]
                raise ModelStoreError(f"{name}: no such model (known: {', '.join(known) or 'none'})")
            if not check.ok:
                raise ModelStoreError("; ".join(check.problems))
            path = Path(name)
        else:
            path = candidates[0].path
        if path.suffix.lower() == ".gguf":
            check = self.inspect(path, find_mmproj=False)
            if not check.ok:
                raise ModelStoreError("; ".join(check.problems))
        self.registry.select(path)
        return path.resolve()


def paired_projector(model: Path) -> Path | None:
    """The projector recorded for a model added through the store, if it is still there."""
    name = read_sidecar(model).get("mmproj")
    if not name:
        return None
    proj = model.parent / name
    return proj if proj.is_file() else None
