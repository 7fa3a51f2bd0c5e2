"""The Measurements panel: tool buttons (distance, angle, Cobb; lordosis, kyphosis, slip; pelvic incidence, SVA,
true vertical), the options of which image side the patient faces on a lateral radiograph (from the DICOM header,
or image left/right) and of the slip's level (the nearest labelled disc, or one chosen), automatic measurements from the labelling, the list of this series' measurements (what, level, value, unit) with
delete and JSON export. The note under the list says which point the tool on wants next."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.measure.layer_2d import MeasureLayer
from app.measure.model import MeasurementsModel
from app.measure.tools import TOOLS
from app.measure.values import list_value
from app.workers import TaskWorker
from core.spine.anatomy import STANDARD
from core.spine.measure.alignment import pi_ll_modifier, pi_minus_ll
from core.spine.measure.measurement import SpineMeasurement

TOOL_ROWS = (("distance", "angle", "cobb"), ("lordosis", "kyphosis", "slip"), ("pelvis", "sva", "vertical"))  # general;
# alignment; lateral radiograph
FACING_CHOICES = (("header", "as the DICOM header says"), ("right", "image right"), ("left", "image left"))


def _automatic(volume, labelling, progress=None, cancel=None):
    """Worker entry point for :func:`core.spine.measure.auto.auto_measurements` (which has no progress)."""
    from core.spine.measure.auto import auto_measurements

    if progress is not None:
        progress(0.1, "Measuring vertebral bodies and discs")
    return auto_measurements(volume, labelling)


class MeasurementsPanel(QWidget):
    def __init__(self, model: MeasurementsModel, layer: MeasureLayer,
                 track: Callable[[TaskWorker], object] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.layer = layer
        self.state = model.state
        self.track = track
        self.worker: TaskWorker | None = None
        self.tool_buttons: dict[str, QPushButton] = {}
        tools = QGridLayout()
        for row, keys in enumerate(TOOL_ROWS):
            for col, key in enumerate(keys):
                button = QPushButton(TOOLS[key].label)
                button.setCheckable(True)
                button.setToolTip(TOOLS[key].tip)
                button.toggled.connect(lambda on, k=key: self._on_tool(k, on))
                self.tool_buttons[key] = button
                tools.addWidget(button, row, col)
        self.auto_button = QPushButton("Automatic")
        self.auto_button.setToolTip("Body heights, disc heights and slips from the labelled levels (approximate)")
        self.auto_button.clicked.connect(self.run_automatic)
        tools.addWidget(self.auto_button, 0, len(TOOL_ROWS[0]))
        self.facing = QComboBox()
        for key, text in FACING_CHOICES:
            self.facing.addItem(text, key)
        self.facing.setToolTip("Which side of a lateral radiograph is anterior, for the SVA's sign and the signs "
                               "of lordosis and kyphosis: the DICOM "
                               "header's PatientOrientation when it says it, or the side you choose")
        self.facing.currentIndexChanged.connect(
            lambda _i: self.layer.options.__setitem__("anterior", self.facing.currentData()))
        self.slip_level = QComboBox()
        self.slip_level.addItem("nearest labelled disc", "auto")
        for disc in reversed(STANDARD.discs):
            self.slip_level.addItem(disc, disc)
        self.slip_level.setToolTip("The segment a slip is measured at (the upper vertebra slipping on the lower): "
                                   "the labelled disc nearest the clicks, or the one you choose (a lateral "
                                   "radiograph usually has no labelled levels)")
        self.slip_level.currentIndexChanged.connect(
            lambda _i: self.layer.options.__setitem__("slip_level", self.slip_level.currentData()))
        facing_row = QGridLayout()
        facing_row.addWidget(QLabel("Patient faces (lateral):"), 0, 0)
        facing_row.addWidget(self.facing, 0, 1)
        facing_row.addWidget(QLabel("Slip level:"), 1, 0)
        facing_row.addWidget(self.slip_level, 1, 1)
        facing_row.setColumnStretch(1, 1)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Measurement", "Level", "Value", "Unit"])
        self.tree.setRootIsDecorated(False)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        for col in (1, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        self.tree.itemClicked.connect(self._on_item_clicked)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color:#555;")
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self._delete_current)
        self.export_button = QPushButton("Export JSON…")
        self.export_button.clicked.connect(self._export)
        bottom = QHBoxLayout()
        bottom.addWidget(self.delete_button)
        bottom.addWidget(self.export_button)
        bottom.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(tools)
        layout.addLayout(facing_row)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.note)
        layout.addLayout(bottom)
        layer.prompt.connect(self._on_prompt)
        model.changed.connect(self.refresh)
        self.state.labelling_changed.connect(lambda _l: self._update_buttons())
        self.state.volume_changed.connect(lambda _v: self._on_volume_changed())
        self.refresh()

    # -- tools ----------------------------------------------------------------------------------------------
    def set_tool(self, tool: str | None) -> None:
        for key, button in self.tool_buttons.items():
            button.blockSignals(True)
            button.setChecked(key == tool)
            button.blockSignals(False)
        self.layer.set_tool(tool)

    def _on_prompt(self, text: str) -> None:
        """The layer's hint (what to click next) in the note; the hint goes when the tool is turned off."""
        if text:
            self.note.setText(f"{text}. Right click or Esc cancels.")
        elif self.note.text().endswith("Esc cancels."):
            self.note.setText("")

    def _on_tool(self, key: str, on: bool) -> None:
        self.set_tool(key if on else None)

    # -- list -----------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.tree.clear()
        for m in self.model.measurements:
            item = QTreeWidgetItem([m.name, m.level or "—", list_value(m), m.unit])
            item.setData(0, Qt.UserRole, id(m))
            for col in range(4):
                item.setToolTip(col, m.summary())
                if m.automatic:  # automatic values are approximate: shown in italics
                    font = item.font(col)
                    font.setItalic(True)
                    item.setFont(col, font)
            item.setTextAlignment(2, Qt.AlignRight | Qt.AlignVCenter)
            self.tree.addTopLevelItem(item)
        derived = pi_minus_ll(self.model.measurements)
        if derived is not None:  # shown as the consultation and reports get it; not stored, so not deletable
            value, words = derived
            item = QTreeWidgetItem(["PI − LL (derived)", "L1-S1", f"{value:.1f}° (Schwab {pi_ll_modifier(value)})",
                                    "deg"])
            item.setData(0, Qt.UserRole, None)
            for col in range(4):
                item.setToolTip(col, f"pelvic incidence minus lumbar lordosis, from the latest of each: {words}")
                item.setForeground(col, Qt.darkGray)
            item.setTextAlignment(2, Qt.AlignRight | Qt.AlignVCenter)
            self.tree.addTopLevelItem(item)
        self._update_buttons()

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(measurement, level, value, unit) as listed."""
        return [tuple(self.tree.topLevelItem(i).text(c) for c in range(4))  # type: ignore[misc]
                for i in range(self.tree.topLevelItemCount())]

    def _measurement_of(self, item: QTreeWidgetItem | None) -> SpineMeasurement | None:
        if item is None:
            return None
        key = item.data(0, Qt.UserRole)
        return next((m for m in self.model.measurements if id(m) == key), None)

    def _on_item_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        m = self._measurement_of(item)
        self.model.select(m)
        if m is not None and m.points:
            self.state.go_to_patient_mm(m.points[0])  # the slice it was placed on
            self.note.setText(m.summary())
        self._update_buttons()

    def _delete_current(self) -> None:
        m = self._measurement_of(self.tree.currentItem())
        if m is not None:
            self.model.remove(m)

    def _export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export measurements", "measurements.json", "JSON (*.json)")
        if path:
            Path(path).write_text(self.model.export_json())
            self.note.setText(f"Saved {path}")

    def _update_buttons(self) -> None:
        has_volume = self.state.volume is not None
        busy = self.worker is not None and self.worker.is_running
        for button in self.tool_buttons.values():
            button.setEnabled(has_volume)
        self.facing.setEnabled(has_volume and self.state.volume.is_2d)  # an option of radiograph tools
        self.auto_button.setEnabled(has_volume and self.state.labelling is not None and not busy)
        self.delete_button.setEnabled(self._measurement_of(self.tree.currentItem()) is not None)
        self.export_button.setEnabled(bool(self.model.measurements))

    def _on_volume_changed(self) -> None:
        self.set_tool(None)
        self.note.setText("")
        self._update_buttons()

    # -- automatic ------------------------------------------------------------------------------------------
    def run_automatic(self) -> TaskWorker | None:
        volume, labelling = self.state.volume, self.state.labelling
        if volume is None or labelling is None:
            self.note.setText("Automatic measurements need labelled levels (Levels tab).")
            return None
        worker = TaskWorker(_automatic, volume, labelling, description="Automatic measurements")
        worker.finished.connect(lambda result: self._on_automatic(result, volume))
        worker.failed.connect(self.note.setText)
        worker.done.connect(self._update_buttons)
        self.worker = worker
        if self.track is not None:
            self.track(worker)
        worker.start()
        self._update_buttons()
        return worker

    def _on_automatic(self, result, volume) -> None:
        if volume is not self.state.volume:
            return
        self.model.replace_automatic(result.measurements)
        text = f"{len(result.measurements)} automatic measurement(s) (approximate)."
        if result.skipped:
            text += " Not measured: " + "; ".join(result.skipped[:6]) + (" …" if len(result.skipped) > 6 else "")
        self.note.setText(text)
