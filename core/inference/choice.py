"""Which model answers: the department's server when its settings switch it on, else a local model file (the one
named, else the registry's choice for the study) with its adapter and the vision projector it was added with (the
models store's sidecar); and the one-line
description of a loaded model that the workstation shows (status bar, model label).

    choice = choose_model(None, study_key="1.2.3")     # ModelChoice; ModelLoadError when there is no model at all
    backend = choice.create()                          # not loaded yet: load() in a worker
    describe_model(backend.info())                     # "SmolLM2-135M-Instruct.Q4_1.gguf · no adapter · CPU · ctx 4096"

The app's session (app/session.py) runs this in its model thread; ``spinemed ask/chat/report`` use it the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.inference.backend import BackendInfo, ModelLoadError, backend_for_model
from core.inference.server_backend import ServerBackend, ServerSettings

NO_MODEL = "no model found: run scripts/setup.sh or add a model (View → Models…, or spinemed models add PATH)"
DEIDENTIFIED_NOTE = "only de-identified study context is sent"


@dataclass
class ModelChoice:
    """A model to load: ``server`` settings, or a local ``path`` with backend ``options``."""

    path: Path | None = None
    server: ServerSettings | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def loading_text(self) -> str:
        """What is happening while it loads ("loading X.gguf", "connecting to the department server")."""
        if self.server is not None:
            return "connecting to the department server"
        return f"loading {Path(self.path).name if self.path else '?'}"

    def create(self) -> Any:
        """The backend, not loaded."""
        if self.server is not None:
            return ServerBackend(self.server)
        if self.path is None:
            raise ModelLoadError(NO_MODEL)
        options = dict(self.options)
        if options.get("n_gpu_layers") is None:  # the layers that fit this machine's GPU (0 without one)
            # here, not in choose_model: create() runs on the model thread, and asking nvidia-smi can take seconds
            from core.inference.model_fit import gpu_layers_that_fit

            options["n_gpu_layers"] = gpu_layers_that_fit(self.path, options.get("n_ctx"))
        return backend_for_model(self.path, **options)


def choose_model(path: Path | str | None = None, study_key: str | None = None, *,
                 settings: ServerSettings | None = None, registry: Any = None, **options: Any) -> ModelChoice:
    """``path`` when given; else the department server when switched on; else the registry's choice for
    ``study_key`` (the study's, the global one, the embedded model) with the user's adapter choice. Unless
    ``n_gpu_layers`` is given, the model is offloaded by as many layers as fit this machine's GPU (none without one:
    the same code runs on a CPU-only machine)."""
    if path is None:
        settings = settings if settings is not None else ServerSettings.load()
        if settings.enabled:
            return ModelChoice(server=settings)
    if registry is None:
        from core.inference.registry import ModelRegistry

        registry = ModelRegistry()
    path = path or registry.selected(study_key or None)
    if path is None:
        raise ModelLoadError(NO_MODEL)
    if "adapter" not in options:
        options["adapter"] = registry.selected_adapter(path)
    if "mmproj" not in options:  # a model added with its vision projector loads with it
        from core.inference.model_store import paired_projector

        projector = paired_projector(Path(path))
        if projector is not None:
            options["mmproj"] = projector
    return ModelChoice(path=Path(path), options=options)


def describe_model(info: BackendInfo | None) -> str:
    """One line saying which model runs, with which adapter, where (CPU, GPU and its layers) or which server."""
    if info is None:
        return "Model: not loaded"
    if info.device.startswith("server"):
        host = info.device.removeprefix("server").strip()
        vision = " · images sent" if info.multimodal else ""
        return f"Server {host} · {info.model_name or '?'}{vision} · {DEIDENTIFIED_NOTE}"
    name = Path(info.model_path).name if info.model_path else (info.model_name or "?")
    adapter = f"adapter {Path(info.lora_path).stem}" if info.lora_path else "no adapter"
    vision = f" · projector {Path(info.mmproj_path).name}" if info.mmproj_path else ""
    ctx = f" · ctx {info.n_ctx}" if info.n_ctx else ""
    return f"Model: {name} · {adapter}{vision} · {info.device_label()}{ctx}"
