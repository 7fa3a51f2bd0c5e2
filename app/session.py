"""The workstation session: the open study and the model that answers about it, one object shared by the widgets
that need them (chat panel, report dock, models dialog, status bar).

    session = Session(parent=window)
    session.model_changed.connect(status.show_model)   # BackendInfo once loaded (None: unloaded or failed)
    session.load_model()                               # the server when switched on, else the registry's choice
    session.open_study(series_uid, source)             # study_changed(StudyRef)
    session.backend                                    # what the consultation and report drafting run on
    session.image_source = lambda: (volume, labelling) # what key images are drawn from (the viewer's)
    session.key_images("L4-L5")                        # PNGs for a model that sees images, else []
    session.key_images_later("L4-L5")                  # the same, drawn when called (on a worker)

The model is loaded on the session's own QThread (``model_thread``); the chat panel's generation runs on the same
thread, so loading another model waits for the answer in flight instead of unloading the model under it. Which model
to load (server / file / registry choice) is decided in core (core.inference.choice); this module only threads and
signals. Give the session a parent (the window, or the chat panel that makes its own) or call :meth:`shutdown`: a
parentless session's thread left running aborts the process at exit.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtWidgets import QApplication

from core.consult import StudyContext
from core.inference.backend import BackendInfo
from core.inference.choice import ModelChoice, choose_model
from core.inference.deidentify import Identifiers, identifiers_of_source
from core.inference.key_images import level_key_images

log = logging.getLogger(__name__)


@dataclass
class StudyRef:
    """The open study: its key (conversations and per-study model choice), series, context and the identifiers
    that must never reach a server (read from the DICOM header, kept only in memory)."""

    study_key: str = ""
    series_uid: str = ""
    context: StudyContext = field(default_factory=StudyContext)
    identifiers: Identifiers = field(default_factory=Identifiers)


class ModelLoader(QObject):
    """Loads a model; its slot runs on the session's model thread."""

    loaded = Signal(object)  # the loaded backend
    failed = Signal(str)

    @Slot(object)
    def load(self, request: tuple[Any, ModelChoice]) -> None:
        previous, choice = request
        try:
            if previous is not None:
                previous.unload()
            backend = choice.create()
            backend.load()
        except Exception as exc:  # noqa: BLE001 - shown to the user, never a crash
            self.failed.emit(str(exc))
            return
        self.loaded.emit(backend)


class Session(QObject):
    """Owns the open study and the model (see the module docstring)."""

    study_changed = Signal(object)  # StudyRef
    model_loading = Signal(str)  # "loading SmolLM2….gguf", "connecting to the department server"
    model_changed = Signal(object)  # BackendInfo of the model just loaded
    model_failed = Signal(str)  # why the model could not be loaded
    _load_requested = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.backend: Any = None
        self.model_info: BackendInfo | None = None
        self.study = StudyRef()
        self.image_source: Callable[[], tuple[Any, Any]] | None = None  # () -> (Volume, SpineLabelling)
        self.model_thread = QThread(self)
        self.model_thread.setObjectName("spinemed-model")
        self._loader = ModelLoader()
        self._loader.moveToThread(self.model_thread)
        self._load_requested.connect(self._loader.load)
        self._loader.loaded.connect(self._on_loaded)
        self._loader.failed.connect(self._on_failed)
        self.model_thread.start()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # --- study ------------------------------------------------------------------------------------------------
    def open_study(self, series_uid: str, source: Any, context: StudyContext | None = None) -> StudyRef:
        """The study of a library series (``source``: core.studies.sources.SeriesSource) is now the open one."""
        study_key = getattr(source, "study_key", "") or f"series:{series_uid}"
        self.study = StudyRef(study_key=study_key, series_uid=series_uid,
                              context=context or StudyContext.from_series_source(source),
                              identifiers=identifiers_of_source(source))
        self._pass_identifiers()
        self.study_changed.emit(self.study)
        return self.study

    def _pass_identifiers(self) -> None:
        """A server backend scrubs what it sends of the open study's identifiers (core.inference.deidentify)."""
        if self.backend is not None and hasattr(self.backend, "set_identifiers"):
            self.backend.set_identifiers(self.study.identifiers)

    def key_images_later(self, level: str | None) -> Callable[[], list[bytes]]:
        """What draws the selected level's sagittal and axial key images (PNG) when the model sees images and the
        level is labelled, else nothing (a text-only model gets none). The volume and a copy of the labelling are
        taken now, on the GUI thread; the drawing happens when the returned callable runs, on the answer's worker,
        so asking never waits for the renders and a level dragged meanwhile does not change what is sent."""
        info = self.model_info
        if not level or info is None or not info.multimodal or self.image_source is None:
            return list
        volume, labelling = self.image_source()
        labelling = copy.deepcopy(labelling)

        def draw() -> list[bytes]:
            try:
                return [image.png for image in level_key_images(volume, labelling, level)]
            except Exception as exc:  # noqa: BLE001 - the question still goes, without images
                log.warning("key images for %s could not be drawn: %s", level, exc)
                return []
        return draw

    def key_images(self, level: str | None) -> list[bytes]:
        """The key images drawn now (see :meth:`key_images_later`)."""
        return self.key_images_later(level)()

    # --- model ------------------------------------------------------------------------------------------------
    def load_model(self, path: Path | str | None = None, study_key: str | None = None, **options: Any) -> bool:
        """Load ``path`` (with backend ``options``) on the model thread; without a path, the department's server when
        its settings switch it on, else the registry's choice for ``study_key`` (default: the open study's).
        False (and ``model_failed``) when there is nothing to load."""
        try:
            choice = choose_model(path, study_key if study_key is not None else self.study.study_key, **options)
        except Exception as exc:  # noqa: BLE001 - e.g. no model at all: said in the UI
            self._on_failed(str(exc))
            return False
        previous, self.backend, self.model_info = self.backend, None, None
        self.model_loading.emit(choice.loading_text())
        self._load_requested.emit((previous, choice))
        return True

    @Slot(object)
    def _on_loaded(self, backend: Any) -> None:
        self.backend = backend
        self.model_info = backend.info()
        self._pass_identifiers()
        self.model_changed.emit(self.model_info)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        log.warning("model not loaded: %s", message)
        self.model_failed.emit(message)

    def shutdown(self) -> None:
        """Stop the model thread (after the work it is doing); call before the application quits."""
        if self.model_thread.isRunning():
            self.model_thread.quit()
            self.model_thread.wait(30000)
