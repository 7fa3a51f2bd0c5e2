"""The status bar's model field: which model, adapter and device (CPU, or GPU with its layers) answer, or which
server, kept up to date from the session's signals (app/session.py). The text is core.inference.choice's
``describe_model``; the tooltip lists the model's notes (e.g. a GPU request that fell back to the CPU)."""
from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QLabel, QWidget

from app.session import Session
from core.inference.backend import BackendInfo
from core.inference.choice import describe_model


class ModelStatus(QLabel):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(describe_model(session.model_info), parent)
        self.setObjectName("model_status")
        self.setStyleSheet("color:#444; padding:0 6px;")
        session.model_loading.connect(self.show_loading)
        session.model_changed.connect(self.show_model)
        session.model_failed.connect(self.show_failure)

    @Slot(str)
    def show_loading(self, text: str) -> None:
        self.setText(f"Model: {text}…")
        self.setToolTip("")
        self.setStyleSheet("color:#444; padding:0 6px;")

    @Slot(object)
    def show_model(self, info: BackendInfo | None) -> None:
        self.setText(describe_model(info))
        notes = list(info.notes) if info is not None else []
        self.setToolTip("\n".join(notes))
        server = info is not None and info.device.startswith("server")
        color = "#0b3d91" if server else ("#a33" if notes else "#444")
        self.setStyleSheet(f"color:{color}; padding:0 6px;")

    @Slot(str)
    def show_failure(self, message: str) -> None:
        self.setText("Model: not loaded")
        self.setToolTip(message)
        self.setStyleSheet("color:#a33; padding:0 6px;")
