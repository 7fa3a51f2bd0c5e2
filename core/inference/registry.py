"""The local model registry: which models exist, what they are, which one to use.

    reg = ModelRegistry()                      # settings in <data>/models.json
    for entry in reg.list_models(): print(entry.name, entry.metadata.summary() if entry.metadata else entry.error)
    reg.add_path("/opt/models/medgemma.gguf")  # validated first; persisted
    reg.select(path)                           # global choice;  reg.select(path, study_key=key) for one study
    reg.selected(study_key)                    # per-study -> global -> embedded default model
    reg.selected_adapter(model_path)           # the user's adapter choice -> the shipped default adapter -> None
    reg.select_adapter("none")                 # run base models alone; a path chooses an adapter; None = default

Models are GGUF files (models, LoRA adapters, multimodal projectors) and Hugging Face folders (a model with
config.json, or a PEFT adapter with adapter_config.json) found in ``core.paths.model_dirs()`` and in the paths the user
added. Metadata is read from headers only (GGUF header, config.json, safetensors headers): nothing is loaded.
:func:`validate_model` also checks that the weights are complete, and raises :class:`ModelValidationError`
naming the file.
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import paths
from core.inference import default_adapter, default_model
from core.inference.gguf_header import GGUFError, read_gguf, validate_gguf

_LICENCE_NAMES = ("license", "licence", "copying")


class ModelValidationError(ValueError):
    """A model file or folder that cannot be used; the message names it and says why."""


@dataclass
class ModelMetadata:
    format: str  # "gguf" | "hf"
    kind: str  # "model" | "adapter" | "mmproj"
    architecture: str = ""
    name: str = ""
    parameter_count: int | None = None
    size_bytes: int = 0
    quantization: str = ""  # GGUF file type (Q4_1, Q4_K_M...) or the HF dtype (bfloat16...)
    context_length: int | None = None
    has_chat_template: bool = False
    license: str = ""  # as declared in the metadata
    license_file: Path | None = None
    base_model: str = ""  # adapters: the model they apply to

    def parameter_label(self) -> str:
        n = self.parameter_count
        if not n:
            return "? params"
        for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if n >= scale:
                return f"{n / scale:.3g}{unit} params"
        return f"{n} params"

    def summary(self) -> str:
        parts = [self.architecture or "?", self.parameter_label(), self.quantization or "?",
                 f"{self.size_bytes / 2**20:.0f} MiB"]
        if self.context_length:
            parts.append(f"ctx {self.context_length}")
        parts.append("chat template" if self.has_chat_template else "no chat template")
        if self.kind != "model":
            parts.insert(0, self.kind)
        return ", ".join(parts)


@dataclass
class ModelEntry:
    path: Path
    source: str  # "models folder" | "added by user"
    metadata: ModelMetadata | None = None
    error: str = ""

    @property
    def name(self) -> str:
        return self.path.name if self.path.is_dir() else self.path.stem

    @property
    def usable(self) -> bool:
        return self.metadata is not None and self.metadata.kind == "model"


# --- metadata ---------------------------------------------------------------------------------------------------
def find_licence(path: Path) -> Path | None:
    """A licence file beside a GGUF (``<name>.LICENSE*`` or ``LICENSE*``) or inside an HF folder."""
    folder = path if path.is_dir() else path.parent
    base = path.name.split(".")[0].lower()
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and any(n in p.name.lower() for n in _LICENCE_NAMES))
    for p in candidates:
        if p.name.lower().startswith(base):
            return p
    generic = [p for p in candidates if p.name.lower().split(".")[0] in _LICENCE_NAMES]
    return generic[0] if generic else None


def _gguf_metadata(path: Path, validate: bool) -> ModelMetadata:
    try:
        header = validate_gguf(path) if validate else read_gguf(path)
    except GGUFError as exc:
        raise ModelValidationError(str(exc)) from exc
    return ModelMetadata(
        format="gguf", kind=header.kind, architecture=header.architecture,
        name=str(header.get("general.name") or path.stem), parameter_count=header.parameter_count,
        size_bytes=header.file_size, quantization=header.quantization, context_length=header.context_length,
        has_chat_template=header.chat_template is not None, license=str(header.get("general.license") or ""),
        license_file=find_licence(path),
        base_model=str(header.get("general.base_model.0.name") or header.get("adapter.lora.base_model") or ""),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelValidationError(f"{path}: unreadable JSON ({exc})") from exc


def _safetensors_header(path: Path, validate: bool) -> dict[str, Any]:
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise ModelValidationError(f"{path}: not a safetensors file (only {size} bytes)")
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8 or n > 100 * 2**20:
            raise ModelValidationError(f"{path}: not a safetensors file or truncated header")
        try:
            header = json.loads(fh.read(n))
        except ValueError as exc:
            raise ModelValidationError(f"{path}: corrupt safetensors header ({exc})") from exc
    if validate:
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end > size:
            raise ModelValidationError(f"{path}: truncated safetensors file ({size:,} bytes, needs {8 + n + end:,})")
    return header


def _hf_metadata(folder: Path, validate: bool) -> ModelMetadata:
    if (folder / "adapter_config.json").is_file():
        cfg = _read_json(folder / "adapter_config.json")
        weights = sorted(folder.glob("adapter_model*.safetensors")) + sorted(folder.glob("adapter_model*.bin"))
        if not weights:
            raise ModelValidationError(f"{folder}: PEFT adapter folder without adapter_model weights")
        params = _count_safetensors(weights, validate)
        return ModelMetadata(
            format="hf", kind="adapter", architecture=str(cfg.get("peft_type", "LORA")).lower(), name=folder.name,
            parameter_count=params, size_bytes=sum(w.stat().st_size for w in weights),
            base_model=str(cfg.get("base_model_name_or_path") or ""), license_file=find_licence(folder),
        )
    if not (folder / "config.json").is_file():
        raise ModelValidationError(f"{folder}: not a Hugging Face model folder (no config.json)")
    cfg = _read_json(folder / "config.json")
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not weights:
        raise ModelValidationError(f"{folder}: no model weights (*.safetensors or pytorch_model*.bin)")
    tok_cfg = _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}
    has_template = bool(tok_cfg.get("chat_template")) or (folder / "chat_template.jinja").is_file()
    text_cfg = cfg.get("text_config") or cfg
    return ModelMetadata(
        format="hf", kind="model", architecture=(cfg.get("architectures") or [cfg.get("model_type", "")])[0],
        name=folder.name, parameter_count=_count_safetensors(weights, validate),
        size_bytes=sum(w.stat().st_size for w in weights),
        quantization=str(cfg.get("dtype") or cfg.get("torch_dtype") or ""),
        context_length=text_cfg.get("max_position_embeddings"), has_chat_template=has_template,
        license_file=find_licence(folder),
    )


def _count_safetensors(files: list[Path], validate: bool) -> int | None:
    total = 0
    for f in files:
        if f.suffix != ".safetensors":
            return None
        for key, info in _safetensors_header(f, validate).items():
            if key == "__metadata__":
                continue
            n = 1
            for d in info["shape"]:
                n *= d
            total += n
    return total


def read_metadata(path: Path | str, validate: bool = False) -> ModelMetadata:
    """Metadata of a GGUF file or HF folder, from headers only; ``validate`` also checks the weights are complete."""
    path = Path(path)
    if not path.exists():
        raise ModelValidationError(f"{path}: no such file or folder")
    if path.is_dir():
        return _hf_metadata(path, validate)
    if path.suffix.lower() != ".gguf":
        raise ModelValidationError(f"{path}: not a model (expected a .gguf file or a Hugging Face folder)")
    return _gguf_metadata(path, validate)


def validate_model(path: Path | str, kind: str = "model") -> ModelMetadata:
    """Check a model before loading it: readable, complete, and of the expected kind."""
    meta = read_metadata(path, validate=True)
    if meta.kind != kind:
        article = "an" if kind[:1] in "aeiou" else "a"
        raise ModelValidationError(f"{path}: this is a {meta.format} {meta.kind}, not {article} {kind}")
    return meta


# --- discovery and selection ------------------------------------------------------------------------------------
def _candidates(folder: Path) -> list[Path]:
    """GGUF files and HF folders in ``folder`` and one level below it."""
    found: list[Path] = []
    if not folder.is_dir():
        return found
    for item in sorted(folder.iterdir()):
        if item.is_file() and item.suffix.lower() == ".gguf":
            found.append(item)
        elif item.is_dir():
            if (item / "config.json").is_file() or (item / "adapter_config.json").is_file():
                found.append(item)
            else:
                found.extend(sorted(p for p in item.glob("*.gguf") if p.is_file()))
    return found


class ModelRegistry:
    def __init__(self, settings_path: Path | None = None) -> None:
        self.settings_path = Path(settings_path) if settings_path else paths.data_dir() / "models.json"
        self._settings = self._load()

    def _load(self) -> dict[str, Any]:
        empty: dict[str, Any] = {"user_paths": [], "global": None, "per_study": {}, "adapter": None}
        if not self.settings_path.is_file():
            return empty
        try:
            data = json.loads(self.settings_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return empty  # a damaged settings file must not stop the application; it is rewritten on change
        return {**empty, **data}

    def _save(self) -> None:
        self.settings_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.settings_path.parent, prefix=".models-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self._settings, fh, indent=2)
        os.replace(tmp, self.settings_path)

    # user paths
    def user_paths(self) -> list[Path]:
        return [Path(p) for p in self._settings["user_paths"]]

    def add_path(self, path: Path | str) -> list[ModelEntry]:
        """Add a model file, HF folder or a folder of models; a single model is validated first."""
        path = Path(path).expanduser().resolve()
        if path.is_file() or (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
            read_metadata(path, validate=True)
        elif not path.is_dir():
            raise ModelValidationError(f"{path}: no such file or folder")
        if str(path) not in self._settings["user_paths"]:
            self._settings["user_paths"].append(str(path))
            self._save()
        return [e for e in self.list_models() if e.path == path or path in e.path.parents]

    def remove_path(self, path: Path | str) -> None:
        key = str(Path(path).expanduser().resolve())
        self._settings["user_paths"] = [p for p in self._settings["user_paths"] if p != key]
        self._save()

    def list_models(self) -> list[ModelEntry]:
        seen: set[Path] = set()
        entries: list[ModelEntry] = []

        def add(p: Path, source: str) -> None:
            key = p.resolve()
            if key in seen:
                return
            seen.add(key)
            try:
                entries.append(ModelEntry(p, source, read_metadata(p)))
            except ModelValidationError as exc:
                entries.append(ModelEntry(p, source, None, str(exc)))

        for folder in paths.model_dirs():
            for p in _candidates(folder):
                add(p, "models folder")
        for p in self.user_paths():
            is_model_dir = p.is_dir() and ((p / "config.json").is_file() or (p / "adapter_config.json").is_file())
            for c in ([p] if p.is_file() or is_model_dir or not p.exists() else _candidates(p)):
                add(c, "added by user")
        return entries

    # selection
    def select(self, path: Path | str | None, study_key: str | None = None) -> None:
        """Choose a model globally or for one study (``None`` clears the choice); validated first."""
        value = None
        if path is not None:
            resolved = Path(path).expanduser().resolve()
            validate_model(resolved)
            value = str(resolved)
        if study_key is None:
            self._settings["global"] = value
        elif value is None:
            self._settings["per_study"].pop(study_key, None)
        else:
            self._settings["per_study"][study_key] = value
        self._save()

    def selected(self, study_key: str | None = None) -> Path | None:
        """The model to use: the study's choice, else the global one, else the embedded default."""
        choice = self._settings["per_study"].get(study_key) if study_key else None
        choice = choice or self._settings["global"]
        if choice:
            return Path(choice)
        return default_model.find_default_model()

    def selection(self) -> dict[str, Any]:
        return {"global": self._settings["global"], "per_study": dict(self._settings["per_study"]),
                "adapter": self._settings["adapter"]}

    # adapters
    def select_adapter(self, choice: Path | str | None) -> None:
        """``None``: the shipped default adapter (when it fits the model); ``"none"``: no adapter; a path: that
        LoRA GGUF / PEFT folder (validated first)."""
        value = None
        if choice == "none":
            value = "none"
        elif choice is not None:
            resolved = Path(choice).expanduser().resolve()
            validate_model(resolved, kind="adapter")
            value = str(resolved)
        self._settings["adapter"] = value
        self._save()

    def adapter_status(self, model: Path | str | None) -> default_adapter.AdapterStatus:
        """Which adapter goes with ``model`` and why."""
        choice = self._settings["adapter"]
        if choice == "none":
            return default_adapter.AdapterStatus(None, "adapters switched off in the model settings")
        if choice:
            return default_adapter.AdapterStatus(Path(choice), f"adapter chosen by the user: {Path(choice).name}")
        return default_adapter.default_adapter_status(model)

    def selected_adapter(self, model: Path | str | None) -> Path | None:
        return self.adapter_status(model).adapter

