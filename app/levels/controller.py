"""Editing the labelling of the open series: every change is an undoable command, saved to the library at once.

The labelling itself lives in :class:`~app.state.ViewerState` (``state.labelling``); this controller replaces it
through a :class:`QUndoStack` and keeps the :class:`~core.spine.store.LevelStore` in step (undo saves the restored
version too, so what is on screen is always what is stored).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from app.levels import style
from app.state import ViewerState
from core.spine.anatomy import STANDARD, is_disc, parse_level
from core.spine.labelling import Provenance, SpineLabelling, VertebraLabel
from core.spine.store import LevelStore


class ReplaceLabelling(QUndoCommand):
    def __init__(self, controller: LevelsController, before, after, text: str) -> None:
        super().__init__(text)
        self.controller, self.before, self.after = controller, before, after

    def redo(self) -> None:
        self.controller.show_and_save(self.after)

    def undo(self) -> None:
        self.controller.show_and_save(self.before)


class LevelsController(QObject):
    message = Signal(str)  # one line for the status bar
    save_failed = Signal(str)

    def __init__(self, state: ViewerState, store: LevelStore | None = None, undo_stack: QUndoStack | None = None,
                 user: str = "user", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.store = store
        self.undo_stack = undo_stack or QUndoStack(self)
        self.user = user
        self.series_uid = ""

    @property
    def labelling(self) -> SpineLabelling | None:
        return self.state.labelling

    # -- series ---------------------------------------------------------------------------------------------
    def open_series(self, series_uid: str | None) -> None:
        """Show the stored labelling of a series (or none); the undo history starts afresh."""
        self.series_uid = series_uid or ""
        self.undo_stack.clear()
        labelling = None
        if self.store is not None and self.series_uid:
            try:
                labelling = self.store.load(self.series_uid)
            except Exception as exc:  # noqa: BLE001 - a damaged record must not stop the viewer
                self.message.emit(f"Stored levels could not be read: {exc}")
        self.state.set_labelling(labelling)

    # -- edits ----------------------------------------------------------------------------------------------
    def apply(self, labelling: SpineLabelling | None, text: str) -> None:
        """Replace the labelling (undoable)."""
        if labelling is not None and self.series_uid:
            labelling = replace(labelling, series_uid=self.series_uid)
        self.undo_stack.push(ReplaceLabelling(self, self.labelling, labelling, text))

    def move_vertebra(self, index: int, point) -> None:
        current = self._require()
        vertebrae = list(current.vertebrae)
        vertebrae[index] = replace(vertebrae[index], centroid=tuple(float(v) for v in point))
        self.apply(self._edited(current, vertebrae=vertebrae), f"Move {_label(vertebrae[index].name)}")

    def move_disc(self, index: int, point) -> None:
        current = self._require()
        discs = list(current.discs)
        discs[index] = replace(discs[index], centre=tuple(float(v) for v in point))
        self.apply(self._edited(current, discs=discs), f"Move disc {_label(discs[index].name)}")

    def rename(self, index: int, text: str) -> str:
        """Name vertebra ``index`` and rename the others consistently; returns the canonical name.
        Raises ValueError for a name that is not a vertebra of this spine."""
        current = self._require()
        name = parse_level(text, current.configuration)
        if is_disc(name):
            raise ValueError(f"{name} is a disc: give a vertebra name such as T12 or L1")
        old = current.vertebrae[index].name
        renamed = current.renamed_from(index, name, user=self.user)
        self.apply(renamed, f"Name {_label(old)} as {name}" + (" (others renamed)" if len(renamed.vertebrae) > 1 else ""))
        if self.state.selected_level == old or self.state.selected_level is None:
            self.state.select_level(name)
        return name

    def remove_vertebra(self, index: int) -> None:
        current = self._require()
        vertebrae = [v for i, v in enumerate(current.vertebrae) if i != index]
        self.apply(_renamed_discs(self._edited(current, vertebrae=vertebrae)),
                   f"Remove {_label(current.vertebrae[index].name)}")

    def add_vertebra(self, point) -> int:
        """Add an unnamed vertebra at a point, in spine order (cranial first); returns its index."""
        current = self.labelling or SpineLabelling([], provenance=Provenance("user", user=self.user))
        new = VertebraLabel(None, point, confidence=1.0)
        vertebrae = sorted([*current.vertebrae, new], key=lambda v: -v.centroid[2])
        self.apply(_renamed_discs(self._edited(current, vertebrae=vertebrae)), "Add vertebra")
        return next(i for i, v in enumerate(self.labelling.vertebrae) if v.centroid == new.centroid)

    def clear(self) -> None:
        if self.labelling is not None:
            self.apply(None, "Clear levels")

    # -- selection ------------------------------------------------------------------------------------------
    def position_of(self, name: str):
        labelling = self.labelling
        if labelling is None:
            return None
        if (v := labelling.vertebra(name)) is not None:
            return v.centroid
        if (d := labelling.disc(name)) is not None:
            return d.centre
        return None

    def go_to_level(self, name: str) -> bool:
        """Select a level and move the cursor to its centroid (disc: its centre). False when it is not labelled."""
        try:
            name = parse_level(name, self.labelling.configuration if self.labelling else STANDARD)
        except ValueError:
            pass
        point = self.position_of(name)
        if point is None:
            self.message.emit(f"{name} is not labelled in this series")
            return False
        self.state.select_level(name)
        self.state.go_to_patient_mm(point)
        return True

    def vertebra_near(self, point, radius_mm: float = style.VERTEBRA_PICK_MM) -> int | None:
        labelling = self.labelling
        if labelling is None or point is None:
            return None
        index = labelling.nearest_vertebra(point)
        if index is None:
            return None
        gap = np.linalg.norm(np.asarray(labelling.vertebrae[index].centroid) - np.asarray(point))
        return index if gap <= radius_mm else None

    # -- internals ------------------------------------------------------------------------------------------
    def _require(self) -> SpineLabelling:
        if self.labelling is None:
            raise RuntimeError("no labelling to edit")
        return self.labelling

    def _edited(self, current: SpineLabelling, **changes) -> SpineLabelling:
        prov = current.provenance
        based_on = prov.based_on if prov.method == "user" else prov.method
        return replace(current, provenance=Provenance("user", user=self.user, based_on=based_on),
                       notes=list(current.notes), **changes)

    def show_and_save(self, labelling: SpineLabelling | None) -> None:
        """Show a labelling and store it, without an undo step (undo commands and derived labellings use it)."""
        self.state.set_labelling(labelling)
        if self.store is None or not self.series_uid:
            return
        try:
            if labelling is None:
                self.store.delete(self.series_uid)
            else:
                self.store.save(labelling)
        except Exception as exc:  # noqa: BLE001 - keep the edit on screen, say it was not stored
            self.save_failed.emit(f"Levels not saved: {exc}")


def _renamed_discs(labelling: SpineLabelling) -> SpineLabelling:
    """Disc names follow the vertebrae on either side of them (a disc next to a removed vertebra loses its name)."""
    return replace(labelling, discs=labelling.discs_named_from_vertebrae())


def _label(name: str | None) -> str:
    return name or "unnamed vertebra"
