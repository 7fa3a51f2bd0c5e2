"""The Radiograph tab: find the vertebrae T1-L5 on an AP radiograph (in a worker), show the Cobb curves with their
end vertebrae, and say plainly when the model is not confident. Corners are corrected by dragging them on the image;
Edit > Undo takes a drag back."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from app.workers import TaskWorker
from app.xray.layer import XrayLandmarks
from core.xray.cobb import REGIONS

_MODEL = {}


def detect_landmarks(volume, progress=None, cancel=None):
    """Worker function: the landmark model's result for a radiograph Volume (the model is loaded once)."""
    from core.tasks import check, report
    from core.xray.landmarks import LandmarkModel, radiograph_array

    report(progress, 0.1, "Loading the landmark model")
    if "model" not in _MODEL:
        _MODEL["model"] = LandmarkModel()
    check(cancel)
    report(progress, 0.4, "Finding vertebrae T1-L5")
    return _MODEL["model"].predict(radiograph_array(volume))


class XrayPanel(QWidget):
    def __init__(self, state, model: XrayLandmarks, track=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.model, self.track = state, model, track
        self.worker: TaskWorker | None = None
        self.find_button = QPushButton("Find vertebrae T1–L5")
        self.find_button.setToolTip("Automatic corners of every vertebra on an AP radiograph (learned model; "
                                    "decision support: check and drag the corners)")
        self.find_button.clicked.connect(self.find)
        self.status = QLabel("Open an AP radiograph of the thoracic and lumbar spine.")
        self.status.setWordWrap(True)
        self.curves_label = QLabel("")
        self.curves_label.setWordWrap(True)
        self.curves_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        note = QLabel("Angles are measured in the image plane. Drag a corner to correct it; the angles follow "
                      "(Edit > Undo). Decision support: a clinician checks every corner.")
        note.setWordWrap(True)
        note.setStyleSheet("color: gray")
        layout = QVBoxLayout(self)
        for w in (self.find_button, self.status, self.curves_label, note):
            layout.addWidget(w)
        layout.addStretch(1)
        model.changed.connect(self.refresh)
        state.volume_changed.connect(lambda _v: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        vol = self.state.volume
        self.find_button.setEnabled(vol is not None and vol.is_2d and not (self.worker and self.worker.is_running))
        if self.model.landmarks is None:
            self.curves_label.setText("")
            return
        lines = []
        for region in REGIONS:
            c = self.model.curves()[region]
            lines.append(f"<b>{region}</b>: " + (
                f"{c.angle:.1f}° ({c.upper_end_vertebra}–{c.lower_end_vertebra}, apex {c.apex_name}, convex to the "
                f"{c.convex_to})" if c else "no curve of 5° or more"))
        who = "corrected by the user" if self.model.method.startswith("user:") else "automatic"
        self.curves_label.setText("<br>".join(lines) + f"<br><i>Landmarks: {who}.</i>")

    def find(self) -> TaskWorker | None:
        vol = self.state.volume
        if vol is None or not vol.is_2d:
            self.status.setText("Landmarks are found on a plain radiograph (one image), not on a CT or MR series.")
            return None
        self.worker = TaskWorker(detect_landmarks, vol, description="Finding vertebrae")
        self.worker.finished.connect(self._on_result)
        self.worker.failed.connect(lambda msg: self.status.setText(f"Landmarks could not be found: {msg}"))
        self.worker.done.connect(self.refresh)
        if self.track is not None:
            self.track(self.worker)
        self.status.setText("Finding vertebrae…")
        self.refresh()
        return self.worker.start()

    def _on_result(self, result) -> None:
        self.status.setText(result.message())
        if result.confident:
            from core.xray.landmarks import MODEL_NAME

            version = _MODEL["model"].settings.get("version", "1") if "model" in _MODEL else "1"
            self.model.set_landmarks(result.landmarks, f"auto:{MODEL_NAME}@{version}")
