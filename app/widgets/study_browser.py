"""The library browser: one row per study, its series below with thumbnails; double-click opens a series."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QIcon, QPixmap
from PySide6.QtWidgets import (
    QLabel,
    QMenu,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

THUMB_PX = 72
UID_ROLE = Qt.UserRole
KIND_ROLE = Qt.UserRole + 1


def study_title(study: dict) -> str:
    description = study.get("description") or "(no description)"
    date = _format_date(study.get("study_date") or "")
    return f"{description} — {date}" if date else description


def study_subtitle(study: dict) -> str:
    parts = [(study.get("modalities") or "").replace(",", "/")]
    age, sex = study.get("patient_age"), study.get("patient_sex")
    if age or sex:
        parts.append(" ".join(p for p in (age, sex) if p))
    n = study.get("n_series") or 0
    parts.append(f"{n} series")
    return ", ".join(p for p in parts if p)


def series_title(series: dict) -> str:
    description = series.get("description") or "(no description)"
    n = series.get("n_images") or 0
    images = f"{n} image{'s' if n != 1 else ''}"
    return f"{series.get('modality', '')}  {description}\n{images}"


def _format_date(yyyymmdd: str) -> str:
    if len(yyyymmdd) == 8 and yyyymmdd.isdigit():
        return f"{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:]}"
    return yyyymmdd


class StudyBrowser(QWidget):
    series_activated = Signal(str)  # series_uid

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.import_button = QToolButton()
        self.import_button.setText("Import…")
        self.import_button.setToolButtonStyle(Qt.ToolButtonTextOnly)
        self.import_button.setPopupMode(QToolButton.InstantPopup)
        self.import_menu = QMenu(self.import_button)
        self.import_button.setMenu(self.import_menu)
        self.empty_label = QLabel("The library is empty.\nImport a DICOM folder, a file or a zip.")
        self.empty_label.setAlignment(Qt.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.tree.setIndentation(12)
        self.tree.setUniformRowHeights(False)
        # itemActivated = double-click or Enter (connecting itemDoubleClicked too would open twice).
        self.tree.itemActivated.connect(self._on_activated)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.import_button)
        layout.addWidget(self.empty_label)
        layout.addWidget(self.tree, 1)
        self._series_items: dict[str, QTreeWidgetItem] = {}

    def set_import_actions(self, actions: list[QAction]) -> None:
        self.import_menu.clear()
        for action in actions:
            self.import_menu.addAction(action)

    def refresh(self, library) -> None:
        """Rebuild from ``library`` (``studies()``, ``series(id)``, ``thumbnail(uid)``)."""
        self.tree.clear()
        self._series_items.clear()
        studies = library.studies()
        for study in studies:
            study_item = QTreeWidgetItem([f"{study_title(study)}\n{study_subtitle(study)}"])
            study_item.setData(0, KIND_ROLE, "study")
            font = study_item.font(0)
            font.setBold(True)
            study_item.setFont(0, font)
            self.tree.addTopLevelItem(study_item)
            for series in library.series(study["id"]):
                item = QTreeWidgetItem([series_title(series)])
                item.setData(0, UID_ROLE, series["series_uid"])
                item.setData(0, KIND_ROLE, "series")
                item.setToolTip(0, f"{series.get('kind', '')} series {series['series_uid']}\nDouble-click to open")
                icon = self._thumbnail_icon(library, series)
                if icon is not None:
                    item.setIcon(0, icon)
                study_item.addChild(item)
                self._series_items[series["series_uid"]] = item
            study_item.setExpanded(True)
        self.empty_label.setVisible(not studies)
        self.tree.setVisible(bool(studies))

    @staticmethod
    def _thumbnail_icon(library, series: dict) -> QIcon | None:
        if not series.get("has_thumbnail", True):
            return None
        png = library.thumbnail(series["series_uid"])
        if not png:
            return None
        pixmap = QPixmap()
        if not pixmap.loadFromData(png, "PNG"):
            return None
        return QIcon(pixmap)

    def series_uids(self) -> list[str]:
        return list(self._series_items)

    def series_item(self, series_uid: str) -> QTreeWidgetItem | None:
        return self._series_items.get(series_uid)

    def select_series(self, series_uid: str) -> None:
        item = self._series_items.get(series_uid)
        if item is not None:
            self.tree.setCurrentItem(item)

    def _on_activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        if item.data(0, KIND_ROLE) == "study":
            if item.childCount():
                item = item.child(0)
            else:
                return
        uid = item.data(0, UID_ROLE)
        if uid:
            self.series_activated.emit(uid)
