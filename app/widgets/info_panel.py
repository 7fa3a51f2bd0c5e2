"""The study info panel: what the open series is (modality, geometry, patient age/sex, files)."""
from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

from core.studies.volume import Volume
from core.xray.header import radiograph_header

FIELDS = ("Modality", "Description", "Shape", "Spacing", "Orientation", "Patient", "Files", "Series UID")


def volume_summary(volume: Volume | None) -> dict[str, str]:
    """Human-readable facts about ``volume`` (as loaded, before display reorientation), keyed by FIELDS."""
    if volume is None:
        return {name: "—" for name in FIELDS}
    shape = " × ".join(str(n) for n in volume.shape)
    if volume.is_2d:
        shape = f"{volume.shape[0]} × {volume.shape[1]} (single image)"
    spacing = " × ".join(f"{s:.3g}" for s in volume.spacing) + " mm"
    if not volume.spacing_known:
        spacing = "unknown (no spacing in a PNG/JPEG): measurements in pixels"
    orientation = _projection_orientation(volume) if volume.is_2d else volume.orientation()
    patient = " ".join(p for p in (volume.patient_age, volume.patient_sex) if p) or "unknown"
    files = volume.source_paths
    if not files:
        files_text = "—"
    elif len(files) == 1:
        files_text = str(files[0])
    else:
        common = os.path.commonpath([str(f) for f in files])
        files_text = f"{len(files)} files in {common}"
    description = volume.series_description or "—"
    if volume.body_part:
        description += f" ({volume.body_part})"
    return {
        "Modality": volume.modality or "—",
        "Description": description,
        "Shape": shape,
        "Spacing": spacing,
        "Orientation": orientation,
        "Patient": patient,
        "Files": files_text,
        "Series UID": volume.series_uid or "—",
    }


def _projection_orientation(volume: Volume) -> str:
    """A single image's orientation as its DICOM header gives it (PatientOrientation: the patient direction of the
    rows, then of the columns), or '—': a projection has no 3D orientation, and a PNG/JPEG says none."""
    ds = radiograph_header(volume)
    codes = [str(v).strip().upper() for v in (ds.get("PatientOrientation") or [])] if ds is not None else []
    if len(codes) != 2 or not all(codes):
        return "—"
    return f"rows towards {codes[0]}, columns towards {codes[1]} (PatientOrientation)"


class InfoPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignRight)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.values: dict[str, QLabel] = {}
        self.full_text: dict[str, str] = volume_summary(None)
        for name in FIELDS:
            label = QLabel("—")
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setMinimumWidth(120)
            form.addRow(f"{name}:", label)
            self.values[name] = label
        self.values["Orientation"].setToolTip(
            "Direction each stored array axis points to (L/R, P/A, S/I). Views always show patient Left on "
            "screen right (axial, coronal) and anterior on the left (sagittal)."
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(form)
        layout.addStretch(1)

    def set_volume(self, volume: Volume | None) -> None:
        self.full_text = volume_summary(volume)
        for name, text in self.full_text.items():
            label = self.values[name]
            if name in ("Files", "Series UID"):
                label.setToolTip(text)
                text = _elide_middle(text, 60 if name == "Files" else 28)
            label.setText(text)

    def text(self, name: str) -> str:
        """The full (not elided) value of field ``name``."""
        return self.full_text[name]


def _elide_middle(text: str, limit: int) -> str:
    """Long paths and UIDs have no spaces to wrap at and would widen the dock; the full text is the tooltip."""
    if len(text) <= limit:
        return text
    keep = (limit - 1) // 2
    return text[:keep] + "…" + text[-keep:]
