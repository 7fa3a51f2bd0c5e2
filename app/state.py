"""The viewer model shared by all views: the open volume, the 3D cursor, the window/level, the vertebral labelling
and the selected level.

Views never talk to each other: they change the state and repaint when it signals (napari-style).
The volume is kept in its LPS-canonical layout (``Volume.as_closest_lps()``); the cursor is a voxel index
(i, j, k) into that layout.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.imaging import NORMAL_AXIS, clamp_voxel, spine_cursor_guess
from app.presets import WindowLevelPresets, load_window_level_presets
from core.studies.volume import Volume


class ViewerState(QObject):
    volume_changed = Signal(object)  # canonical Volume, or None when closed
    cursor_changed = Signal(object)  # (i, j, k)
    window_level_changed = Signal(float, float)  # window, level
    labelling_changed = Signal(object)  # core.spine.labelling.SpineLabelling, or None
    level_selected = Signal(str)  # vertebra or disc name; "" when nothing is selected

    def __init__(self, presets: WindowLevelPresets | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.presets = presets or load_window_level_presets()
        self.volume: Volume | None = None
        self.source_volume: Volume | None = None  # as loaded, before canonical reorientation
        self.cursor: tuple[int, int, int] = (0, 0, 0)
        self.window = 400.0
        self.level = 40.0
        self.wl_preset: str | None = None  # name of the preset in force, None after manual changes
        self.labelling = None  # SpineLabelling of the open series (LPS mm), set by app.levels
        self.selected_level: str | None = None

    # -- volume ---------------------------------------------------------------------------------------------
    def set_volume(self, volume: Volume | None, display: Volume | None = None) -> None:
        """Show ``volume``; ``display`` is its LPS-canonical form when already computed (e.g. by a worker)."""
        self.source_volume = volume
        if volume is not None and display is None:
            display = volume.as_closest_lps()
        self.volume = display if volume is not None else None
        if self.volume is not None:
            self.cursor = spine_cursor_guess(self.volume.data, self.volume.modality)
            preset = self.presets.default_for(self.volume.modality)
            self.window, self.level = preset.resolve(self.volume.data)
            self.wl_preset = preset.name
        self.labelling, self.selected_level = None, None  # the new series' labels are loaded by app.levels
        self.volume_changed.emit(self.volume)
        self.window_level_changed.emit(self.window, self.level)
        self.cursor_changed.emit(self.cursor)
        self.labelling_changed.emit(None)
        self.level_selected.emit("")

    # -- cursor ---------------------------------------------------------------------------------------------
    def set_cursor(self, ijk) -> None:
        if self.volume is None:
            return
        ijk = clamp_voxel(ijk, self.volume.shape)
        if ijk != self.cursor:
            self.cursor = ijk
            self.cursor_changed.emit(ijk)

    def slice_index(self, orientation: str) -> int:
        return self.cursor[NORMAL_AXIS[orientation]]

    def move_slice(self, orientation: str, delta: int) -> None:
        """Step the cursor ``delta`` slices along the normal of ``orientation``."""
        ijk = list(self.cursor)
        ijk[NORMAL_AXIS[orientation]] += int(delta)
        self.set_cursor(ijk)

    def cursor_patient_mm(self) -> np.ndarray | None:
        """The cursor in LPS millimetres (voxel centre)."""
        if self.volume is None:
            return None
        return self.volume.voxel_to_patient(self.cursor)

    def go_to_patient_mm(self, xyz) -> None:
        """Move the cursor to the voxel nearest a patient point (LPS mm)."""
        if self.volume is None:
            return
        self.set_cursor(tuple(round(float(v)) for v in self.volume.patient_to_voxel(xyz)))

    # -- levels ---------------------------------------------------------------------------------------------
    def set_labelling(self, labelling) -> None:
        """Replace the labelling; the selection is kept while the selected name still exists."""
        self.labelling = labelling
        self.labelling_changed.emit(labelling)
        if self.selected_level and not _has_level(labelling, self.selected_level):
            self.select_level(None)

    def select_level(self, name: str | None) -> None:
        name = name or None
        if name != self.selected_level:
            self.selected_level = name
            self.level_selected.emit(name or "")

    # -- window / level -------------------------------------------------------------------------------------
    def set_window_level(self, window: float, level: float, preset: str | None = None) -> None:
        window = max(float(window), 1.0)
        level = float(level)
        self.wl_preset = preset
        if (window, level) != (self.window, self.level):
            self.window, self.level = window, level
            self.window_level_changed.emit(window, level)

    def apply_wl_preset(self, name: str) -> None:
        preset = self.presets.get(name)
        data = self.volume.data if self.volume is not None else None
        if data is None and preset.auto_percentiles is not None:
            return
        self.set_window_level(*preset.resolve(data), preset=name)


def _has_level(labelling, name: str) -> bool:
    return labelling is not None and (labelling.vertebra(name) is not None or labelling.disc(name) is not None)
