"""The measurements of the open series: kept in the library (:class:`~core.spine.measure.store.MeasurementStore`),
added and removed through the shared undo stack, each attached to the nearest labelled level."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from app.state import ViewerState
from core.spine.measure.measurement import SpineMeasurement, measurements_to_json
from core.spine.measure.store import MeasurementStore

LEVEL_RANGE_MM = 30.0  # a measurement farther than this from every labelled level is not at a level


class _AddRemove(QUndoCommand):
    def __init__(self, model: MeasurementsModel, added: list, removed: list, text: str) -> None:
        super().__init__(text)
        self.model, self.added, self.removed = model, added, removed

    def redo(self) -> None:
        self.model._change(self.added, self.removed)

    def undo(self) -> None:
        self.model._change(self.removed, self.added)


class MeasurementsModel(QObject):
    changed = Signal()
    selected = Signal(object)  # the SpineMeasurement chosen in the list, or None
    save_failed = Signal(str)

    def __init__(self, state: ViewerState, store: MeasurementStore | None = None,
                 undo_stack: QUndoStack | None = None, user: str = "user", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.store = store
        self.undo_stack = undo_stack or QUndoStack(self)
        self.user = user
        self.series_uid = ""
        self.measurements: list[SpineMeasurement] = []
        self.current: SpineMeasurement | None = None
        self._labelling = state.labelling
        state.labelling_changed.connect(self._on_labelling_changed)

    def open_series(self, series_uid: str | None) -> None:
        self.series_uid = series_uid or ""
        self.measurements = []
        if self.store is not None and self.series_uid:
            try:
                self.measurements = self.store.list(self.series_uid)
            except Exception as exc:  # noqa: BLE001 - a damaged record must not stop the viewer
                self.save_failed.emit(f"Stored measurements could not be read: {exc}")
        self.select(None)
        self.changed.emit()

    # -- editing (undoable) ---------------------------------------------------------------------------------
    def add(self, m: SpineMeasurement) -> SpineMeasurement:
        if m.level is None:
            m.level = self.level_near(m.points)
        where = f" at {m.level}" if m.level else ""
        self.undo_stack.push(_AddRemove(self, [m], [], f"Measure {m.name}{where}"))
        return m

    def remove(self, m: SpineMeasurement) -> None:
        self.undo_stack.push(_AddRemove(self, [], [m], f"Delete {m.name}"))

    def replace_automatic(self, measurements: list[SpineMeasurement]) -> None:
        """New automatic measurements replace the previous automatic ones (the user's stay)."""
        old = [m for m in self.measurements if m.automatic]
        self.undo_stack.push(_AddRemove(self, list(measurements), old, "Automatic measurements"))

    def replace_source(self, source: str, measurements: list[SpineMeasurement]) -> None:
        """Measurements derived from one source (``details['source']``, e.g. radiograph landmarks) replace its
        previous ones, without an undo step of their own: the source's edit is the undo step."""
        old = [m for m in self.measurements if m.details.get("source") == source]
        self._change(list(measurements), old)

    def _change(self, add: list, remove: list) -> None:
        for m in remove:
            # Identity, not equality: two measurements with the same values are still two measurements.
            self.measurements = [x for x in self.measurements if x is not m]
            if self.store is not None and m.id is not None:
                self._store(lambda m=m: self.store.delete(m.id))
                m.id = None
        for m in add:
            self.measurements.append(m)
            if self.store is not None and self.series_uid:
                self._store(lambda m=m: self.store.save(self.series_uid, m))
        if self.current is not None and all(x is not self.current for x in self.measurements):
            self.select(None)
        self.changed.emit()

    def _store(self, action) -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - keep the measurement on screen, say it was not stored
            self.save_failed.emit(f"Measurement not saved: {exc}")

    def _on_labelling_changed(self, labelling) -> None:
        """Levels are renamed (or undone): measurements at a renamed level follow it, and are saved again."""
        before, self._labelling = self._labelling, labelling
        renames = _renames(before, labelling)
        changed = [m for m in self.measurements if m.level in renames]
        for m in changed:
            m.level = renames[m.level]
            if self.store is not None and self.series_uid and m.id is not None:
                self._store(lambda m=m: self.store.save(self.series_uid, m))
        if changed:
            self.changed.emit()

    # -- queries --------------------------------------------------------------------------------------------
    def select(self, m: SpineMeasurement | None) -> None:
        self.current = m
        self.selected.emit(m)

    def level_near(self, points) -> str | None:
        """The labelled vertebra or disc nearest the measurement's centre, within LEVEL_RANGE_MM."""
        labelling = self.state.labelling
        if labelling is None:
            return None
        candidates = [(v.name, v.centroid) for v in labelling.vertebrae if v.name]
        candidates += [(d.name, d.centre) for d in labelling.discs if d.name]
        return _nearest(candidates, points)

    def vertebra_near(self, points) -> str | None:
        """The labelled vertebra nearest the centre of ``points``, within LEVEL_RANGE_MM."""
        labelling = self.state.labelling
        if labelling is None:
            return None
        return _nearest([(v.name, v.centroid) for v in labelling.vertebrae if v.name], points)

    def disc_near(self, points) -> str | None:
        """The labelled disc nearest the centre of ``points`` (within LEVEL_RANGE_MM); without labelled discs, the
        disc between the nearest labelled vertebrae above and below that centre (each within range)."""
        labelling = self.state.labelling
        if labelling is None or not points:
            return None
        discs = [(d.name, d.centre) for d in labelling.discs if d.name]
        if discs:
            return _nearest(discs, points)
        centre = np.mean(np.asarray(points, dtype=float), axis=0)
        named = [(v.name, np.asarray(v.centroid)) for v in labelling.vertebrae if v.name]
        above = [(n, c) for n, c in named if c[2] > centre[2]]  # LPS: +z is superior
        below = [(n, c) for n, c in named if c[2] < centre[2]]
        upper, lower = _nearest(above, [centre]), _nearest(below, [centre])
        if upper is None or lower is None:
            return None
        try:
            return labelling.configuration.disc_between(upper, lower)
        except ValueError:  # not adjacent (a level skipped), or no disc there
            return None

    def export_json(self) -> str:
        return measurements_to_json(self.measurements, self.series_uid)


def _nearest(candidates, points) -> str | None:
    """Name of the (name, point) candidate nearest the centre of ``points``, if within LEVEL_RANGE_MM."""
    if not candidates or not len(points):
        return None
    centre = np.mean(np.asarray(points, dtype=float), axis=0)
    name, point = min(candidates, key=lambda c: np.linalg.norm(np.asarray(c[1]) - centre))
    return name if np.linalg.norm(np.asarray(point) - centre) <= LEVEL_RANGE_MM else None


def _renames(before, after) -> dict[str, str]:
    """Old name -> new name of the levels that are the same vertebra or disc in both labellings (same position in
    the list when the count is unchanged, as after a rename or a move; else the same centre)."""
    if before is None or after is None:
        return {}
    out = {}
    for old, new, where in ((before.vertebrae, after.vertebrae, "centroid"), (before.discs, after.discs, "centre")):
        if len(old) == len(new):
            pairs = zip(old, new)
        else:
            by_point = {getattr(n, where): n for n in new}
            pairs = ((o, by_point[getattr(o, where)]) for o in old if getattr(o, where) in by_point)
        out.update({o.name: n.name for o, n in pairs if o.name and n.name and o.name != n.name})
    return out
