"""Report work shaped for ``app.workers.TaskWorker`` (``fn(*args, progress=, cancel=)``), without Qt.

:class:`DraftJob` holds the model between drafts: created on first use by ``backend_factory`` (for example the chat
panel's loaded model) or, by default, from the model registry's selection, and loaded in the worker thread.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.consult.context import StudyContext
from core.report.draft import draft_report
from core.report.export import export_report
from core.report.model import SpineReport
from core.tasks import CancelToken, ProgressFn, check, report


class DraftJob:
    def __init__(self, backend_factory: Callable[[], Any] | None = None, study_key: str | None = None) -> None:
        self.backend_factory = backend_factory
        self.study_key = study_key
        self._own: Any = None  # a backend this job created (and so unloads)

    def backend(self) -> Any:
        if self.backend_factory is not None:
            shared = self.backend_factory()
            if shared is not None:
                return shared
        if self._own is None:
            from core.inference.backend import backend_for_model
            from core.inference.registry import ModelRegistry

            registry = ModelRegistry()
            path = registry.selected(self.study_key)
            if path is None:
                raise RuntimeError("no model found: run scripts/setup.sh or add a model")
            self._own = backend_for_model(path, adapter=registry.selected_adapter(path))
        return self._own

    def unload(self) -> None:
        if self._own is not None:
            self._own.unload()
            self._own = None


def run_draft(job: DraftJob, context: StudyContext, labelling: Any, kwargs: dict[str, Any],
              progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> SpineReport:
    report(progress, 0.0, "Loading the model")
    backend = job.backend()
    if not backend.is_loaded:
        backend.load()
    check(cancel)
    return draft_report(backend, context, labelling, progress=progress, cancel=cancel, **kwargs)


def run_export(rep: SpineReport, path: Path, volume: Any = None, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None) -> Path:
    report(progress, 0.1, f"Writing {path.name}")
    return export_report(rep, path, volume=volume)
