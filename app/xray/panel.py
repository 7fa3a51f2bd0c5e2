"""The Radiograph tab: find the vertebrae T1-L5 on an AP radiograph (in a worker), show the Cobb curves with their
end vertebrae, and say plainly when the model is not confident. Corners are corrected by dragging them on the image;
Edit > Undo takes a drag back."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDoubleSpinBox, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.workers import TaskWorker
from app.xray.layer import XrayLandmarks
from core.xray.cobb import REGIONS

_MODEL = {}


def detect_landmarks(volume, progress=None, cancel=None):
    """Worker function: the landmark model's result for a radiograph Volume (the model is loaded once)."""
    from core.tasks import check, report
    from core.xray.landmarks import LandmarkModel

    report(progress, 0.1, "Loading the landmark model")
    if "model" not in _MODEL:
        _MODEL["model"] = LandmarkModel()
    check(cancel)
    report(progress, 0.4, "Finding vertebrae T1-L5")
    return _MODEL["model"].predict_volume(volume)


class XrayPanel(QWidget):
    def __init__(self, state, model: XrayLandmarks, track=None, calibration=None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.model, self.track = state, model, track
        self.calibration = calibration        # app.xray.calibrate.CalibrationTool, or None
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
        if calibration is not None:
            layout.addWidget(self._calibration_box(calibration))
        layout.addStretch(1)
        model.changed.connect(self.refresh)
        state.volume_changed.connect(lambda _v: self.refresh())
        self.refresh()

    def _calibration_box(self, tool) -> QGroupBox:
        box = QGroupBox("Scale")
        self.length_spin = QDoubleSpinBox()
        self.length_spin.setRange(0.1, 2000.0)
        self.length_spin.setDecimals(1)
        self.length_spin.setSuffix(" mm")
        self.length_spin.setValue(25.0)
        self.length_spin.setToolTip("The real length of the object you will click: a calibration ball's diameter, "
                                    "or the distance between two ruler marks")
        self.calibrate_button = QPushButton("Calibrate: click its two ends")
        self.calibrate_button.setToolTip("Click the two ends of the known length on the radiograph (Escape or a "
                                         "right click cancels); distances then read 'calibrated by user'")
        self.calibrate_button.clicked.connect(lambda: tool.arm(self.length_spin.value()))
        self.scale_label = QLabel("")
        self.scale_label.setWordWrap(True)
        self.calibration_prompt = QLabel("")
        self.calibration_prompt.setWordWrap(True)
        tool.prompt.connect(self.calibration_prompt.setText)
        tool.measurements.changed.connect(self.refresh)
        row = QHBoxLayout()
        row.addWidget(QLabel("Known length"))
        row.addWidget(self.length_spin)
        lay = QVBoxLayout(box)
        lay.addLayout(row)
        lay.addWidget(self.calibrate_button)
        lay.addWidget(self.calibration_prompt)
        lay.addWidget(self.scale_label)
        return box

    def _refresh_scale(self) -> None:
        from core.xray.measure import effective_calibration

        vol = self.state.volume
        is_xray = vol is not None and vol.is_2d
        self.calibrate_button.setEnabled(is_xray)
        if not is_xray:
            self.scale_label.setText("")
            return
        cal = effective_calibration(vol, self.calibration.measurements.measurements)
        self.scale_label.setText("Scale: " + cal.describe())

    def refresh(self) -> None:
        vol = self.state.volume
        if self.calibration is not None:
            self._refresh_scale()
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
