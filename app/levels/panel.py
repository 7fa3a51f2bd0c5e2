"""The Levels panel: the labelled levels (confidence, notes), who made the labelling, and the tools that make or
change it: Auto-label (in a separate process, with progress and Cancel), Load labels from a label map, name / remove /
add a vertebra, undo and redo.

When the automatic labelling finds vertebrae but no anatomical anchor, its message (asking the user to name one
vertebra) is shown in the banner until the user names one.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.levels import dialogs
from app.levels.controller import LevelsController
from app.workers import TaskWorker
from core.spine.labelmap import labelling_from_labelmap

BANNER_STYLES = {
    "ask": "background:#fff4ce; color:#5c4400; border:1px solid #e0c46c; padding:4px;",
    "error": "background:#fde7e9; color:#8a1c1c; border:1px solid #e39a9a; padding:4px;",
    "info": "background:#eef3f8; color:#24415e; border:1px solid #b7c8da; padding:4px;",
}
ROLE = Qt.UserRole  # item data: ("vertebra" | "disc", index)
BACKEND_TITLES = {"classical-ct": "Classical CT", "classical-mr": "Classical MR",
                  "learned": "Learned (experimental)", "totalsegmentator": "TotalSegmentator"}


def _labeller_rows(progress=None, cancel=None) -> list[tuple[str, str, bool, str, str]]:
    """(name, description, can run here, why not, version) of every registered labeller, in the registry's order."""
    from core.spine.autolabel import backends

    rows = []
    for backend in backends():
        ok, why = backend.available()
        rows.append((backend.name, backend.description, ok, why, (getattr(backend, "version", "") or "") if ok else ""))
    return rows


class LevelsPanel(QWidget):
    labelling_ready = Signal(object)  # a labelling from auto-label or a label map, once applied
    task_failed = Signal(str)

    def __init__(self, controller: LevelsController, track: Callable[[TaskWorker], object] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.state = controller.state
        self.track = track
        self.worker: TaskWorker | None = None
        self._build_ui()
        self.state.labelling_changed.connect(lambda _l: self.refresh())
        self.state.level_selected.connect(self._show_selection)
        self.state.volume_changed.connect(lambda _v: self._on_volume_changed())
        self.refresh()

    # -- UI -------------------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.auto_button = QPushButton("Auto-label")
        self.auto_button.setToolTip("Detect and name the vertebrae of this series (runs in the background)")
        self.auto_button.clicked.connect(lambda: self.auto_label())
        self.backend_box = QComboBox()
        self.backend_box.setToolTip("Which labeller Auto-label runs. Automatic: the classical method for the image's "
                                    "modality, which measured best on real studies (README, levels table)")
        self.backend_box.addItem("Automatic (best measured for the modality)", None)
        # the labellers' modules (and onnxruntime) take a second or more to import: listed off the GUI thread
        self.backends_worker = TaskWorker(_labeller_rows, description="Listing the labellers")
        self.backends_worker.finished.connect(self._fill_backends)
        self.backends_worker.start()
        self.labelmap_button = QPushButton("Label map…")
        self.labelmap_button.setToolTip("Load labels from a NIfTI label map (VerSe, TotalSegmentator or SCT)")
        self.labelmap_button.clicked.connect(self._ask_labelmap)
        stack = self.controller.undo_stack
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(stack.undo)
        self.redo_button = QPushButton("Redo")
        self.redo_button.clicked.connect(stack.redo)
        stack.canUndoChanged.connect(self.undo_button.setEnabled)
        stack.canRedoChanged.connect(self.redo_button.setEnabled)
        stack.undoTextChanged.connect(self._on_undo_text)
        stack.redoTextChanged.connect(self._on_redo_text)
        self.undo_button.setEnabled(stack.canUndo())
        self.redo_button.setEnabled(stack.canRedo())

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress_label = QLabel()
        self.progress_label.setStyleSheet("color:#555;")
        # A long task message must not widen the side dock (the window cannot grow to follow it).
        self.progress_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.tree = QTreeWidget()
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["Level", "Confidence", "Notes"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)
        self.tree.itemClicked.connect(self._on_item_clicked)
        self.tree.itemDoubleClicked.connect(self._on_item_double_clicked)
        self.provenance = QLabel()
        self.provenance.setWordWrap(True)
        self.provenance.setStyleSheet("color:#555;")

        self.name_button = QPushButton("Name…")
        self.name_button.setToolTip("Name the chosen vertebra; the others are renamed to match")
        self.name_button.clicked.connect(self._rename_current)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self._remove_current)
        self.add_button = QPushButton("Add at cursor")
        self.add_button.setToolTip("Add an unnamed vertebra at the 3D cursor")
        self.add_button.clicked.connect(self._add_at_cursor)

        top = QHBoxLayout()
        for b in (self.auto_button, self.labelmap_button, self.undo_button, self.redo_button):
            top.addWidget(b)
        chooser = QHBoxLayout()
        chooser.addWidget(QLabel("Labeller:"))
        chooser.addWidget(self.backend_box, 1)
        running = QHBoxLayout()
        running.addWidget(self.progress_label)
        running.addWidget(self.progress, 1)
        running.addWidget(self.cancel_button)
        self.running_row = QWidget()
        self.running_row.setLayout(running)
        running.setContentsMargins(0, 0, 0, 0)
        edit = QHBoxLayout()
        for b in (self.name_button, self.remove_button, self.add_button):
            edit.addWidget(b)
        edit.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(chooser)
        layout.addWidget(self.running_row)
        layout.addWidget(self.banner)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.provenance)
        layout.addLayout(edit)
        self.running_row.hide()
        self.set_banner("")

    def _fill_backends(self, rows: list[tuple[str, str, bool, str, str]]) -> None:
        """After 'Automatic', every registered labeller; one that cannot run here is listed, greyed, with why."""
        if not shiboken6.isValid(self.backend_box):
            return
        for name, description, ok, why, version in rows:
            title = BACKEND_TITLES.get(name, name) + (f" {version}" if version and ok else "")
            self.backend_box.addItem(title, name)
            index = self.backend_box.count() - 1
            self.backend_box.setItemData(index, description + ("" if ok else f" (cannot run here: {why})"),
                                         Qt.ToolTipRole)
            if not ok:
                self.backend_box.model().item(index).setEnabled(False)

    def chosen_backend(self) -> str | None:
        """The registered name of the labeller chosen, or None for automatic."""
        return self.backend_box.currentData()

    def _on_undo_text(self, text: str) -> None:
        # The window's undo stack outlives this panel at shutdown and still signals while clearing.
        if shiboken6.isValid(self.undo_button):
            self.undo_button.setToolTip(f"Undo {text}" if text else "")

    def _on_redo_text(self, text: str) -> None:
        if shiboken6.isValid(self.redo_button):
            self.redo_button.setToolTip(f"Redo {text}" if text else "")

    def set_banner(self, text: str, kind: str = "info") -> None:
        self.banner.setText(text)
        self.banner.setStyleSheet(BANNER_STYLES.get(kind, BANNER_STYLES["info"]))
        self.banner.setVisible(bool(text))
        self.banner_kind = kind if text else ""

    # -- contents -------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        labelling = self.state.labelling
        self.tree.clear()
        has_volume = self.state.volume is not None and not self.state.volume.is_2d
        busy = self.worker is not None and self.worker.is_running
        self.auto_button.setEnabled(has_volume and not busy)
        self.labelmap_button.setEnabled(has_volume and not busy)
        self.backend_box.setEnabled(has_volume and not busy)
        self.add_button.setEnabled(has_volume)
        if labelling is None:
            self.provenance.setText("No levels for this series yet." if has_volume else "")
            self._update_edit_buttons()
            return
        rows = [(-v.centroid[2], 0, "vertebra", i, v) for i, v in enumerate(labelling.vertebrae)]
        rows += [(-d.centre[2], 1, "disc", i, d) for i, d in enumerate(labelling.discs)]
        for _z, _order, kind, index, item in sorted(rows, key=lambda r: (r[0], r[1])):
            self.tree.addTopLevelItem(self._item(kind, index, item))
        prov = labelling.provenance
        text = f"Made by {prov.describe()}"
        if prov.based_on:
            text += f" (edited from {prov.based_on})"
        self.provenance.setText(text + f" · {labelling.configuration.describe()}")
        if labelling.needs_confirmation and labelling.vertebrae:
            self.set_banner((labelling.message or "The vertebrae are not named.")
                            + "\nDouble-click a marker in a view (or choose a row and press Name…) to name one "
                              "vertebra; the others follow.", "ask")
        elif self.banner_kind == "ask":
            self.set_banner("")
        self._show_selection(self.state.selected_level or "")
        self._update_edit_buttons()

    def _item(self, kind: str, index: int, label) -> QTreeWidgetItem:
        if kind == "vertebra":
            name = label.name or "? (unnamed)"
            notes = ["partial" if label.partial else ""]
        else:
            name = "   " + (label.name or "disc")
            notes = ["disc"]
        item = QTreeWidgetItem([name, f"{label.confidence:.2f}", ", ".join(n for n in notes if n)])
        item.setData(0, ROLE, (kind, index))
        if kind == "disc":
            for col in range(3):
                item.setForeground(col, QColor(90, 110, 130))
        elif label.name is None or label.confidence < 0.5:
            item.setForeground(0, QColor(170, 40, 170))
        return item

    def level_rows(self) -> list[str]:
        """The level names as listed (for tests and accessibility)."""
        return [self.tree.topLevelItem(i).text(0).strip() for i in range(self.tree.topLevelItemCount())]

    def _show_selection(self, name: str) -> None:
        self.tree.blockSignals(True)
        self.tree.clearSelection()
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if name and item.text(0).strip() == name:
                item.setSelected(True)
                self.tree.setCurrentItem(item)
                self.tree.scrollToItem(item)
        self.tree.blockSignals(False)
        self._update_edit_buttons()

    def _current(self) -> tuple[str, int] | None:
        item = self.tree.currentItem()
        return item.data(0, ROLE) if item is not None and item.isSelected() else None

    def _update_edit_buttons(self) -> None:
        current = self._current()
        is_vertebra = current is not None and current[0] == "vertebra"
        self.name_button.setEnabled(is_vertebra)
        self.remove_button.setEnabled(is_vertebra)

    def _on_item_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        kind, index = item.data(0, ROLE)
        labelling = self.state.labelling
        label = labelling.vertebrae[index] if kind == "vertebra" else labelling.discs[index]
        if label.name:
            self.controller.go_to_level(label.name)
        else:
            self.state.go_to_patient_mm(label.centroid if kind == "vertebra" else label.centre)
        self._update_edit_buttons()

    def _on_item_double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        kind, index = item.data(0, ROLE)
        if kind == "vertebra":
            dialogs.rename_vertebra(self, self.controller, index)

    def _rename_current(self) -> None:
        current = self._current()
        if current and current[0] == "vertebra":
            dialogs.rename_vertebra(self, self.controller, current[1])

    def _remove_current(self) -> None:
        current = self._current()
        if current and current[0] == "vertebra":
            self.controller.remove_vertebra(current[1])

    def _add_at_cursor(self) -> None:
        point = self.state.cursor_patient_mm()
        if point is not None:
            self.controller.add_vertebra(point)

    # -- tasks ----------------------------------------------------------------------------------------------
    def auto_label(self, backend: str | None = None) -> TaskWorker | None:
        """Label the open volume in a child process, watched from a worker thread; the result replaces the labelling
        (undoable). ``backend`` None: the one chosen in the panel. Cancel stops the child process; a backend that
        crashes cannot take the window with it."""
        from core.spine.autolabel.process import auto_label_in_subprocess

        volume = self.state.volume
        if volume is None:
            return None
        backend = backend or self.chosen_backend()
        worker = TaskWorker(auto_label_in_subprocess, volume, backend, description="Auto-labelling the vertebrae")
        return self._start(worker, "Auto-label")

    def load_labelmap(self, path: str | Path, numbering: str) -> TaskWorker | None:
        """Read a label map in a worker and use its levels (undoable)."""
        path = Path(path)
        worker = TaskWorker(labelling_from_labelmap, path, numbering, self.controller.series_uid, self.state.volume,
                            description=f"Reading levels from {path.name}")
        return self._start(worker, f"Load labels from {path.name}")

    def _ask_labelmap(self) -> None:
        choice = dialogs.ask_labelmap(self)
        if choice is not None:
            self.load_labelmap(*choice)

    def _start(self, worker: TaskWorker, undo_text: str) -> TaskWorker:
        self.cancel()
        volume = self.state.volume
        worker.progress.connect(self._on_progress)
        worker.finished.connect(lambda labelling: self._on_labelled(labelling, undo_text, volume))
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(lambda: self.set_banner(f"{undo_text}: cancelled", "info"))
        worker.done.connect(self._on_done)
        self.worker = worker
        self.progress.setValue(0)
        self.progress_label.setText(worker.description)
        self.running_row.show()
        if self.track is not None:
            self.track(worker)
        worker.start()
        self.refresh()
        return worker

    def cancel(self) -> None:
        if self.worker is not None and self.worker.is_running:
            self.worker.cancel()

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        if message:
            self.progress_label.setText(message)

    def _on_labelled(self, labelling, undo_text: str, volume) -> None:
        if volume is not self.state.volume:
            return  # another series was opened meanwhile
        self.controller.apply(labelling, undo_text)
        if not labelling.needs_confirmation:
            self.set_banner(labelling.message or f"{len(labelling.vertebrae)} vertebrae labelled", "info")
        self.labelling_ready.emit(labelling)

    def _on_failed(self, message: str) -> None:
        self.set_banner(message, "error")
        self.task_failed.emit(message)

    def _on_done(self) -> None:
        self.running_row.hide()
        self.refresh()

    def _on_volume_changed(self) -> None:
        self.cancel()
        self.set_banner("")
        self.refresh()
