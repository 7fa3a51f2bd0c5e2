"""Keeps the consultation in step with the viewer: the selected level becomes the chat's level chip, the levels
labelled and the measurements go into its study context, and a level link in the chat selects that level in the
viewer (and moves the cursor to it)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QObject

from app.levels.controller import LevelsController
from core.spine.labelling import SpineLabelling
from core.spine.measure.measurement import context_measurements


def levels_in_view(labelling: SpineLabelling | None) -> list[str]:
    """Named vertebrae and discs, cranial to caudal, each disc between its vertebrae ('T11', 'T11-T12', 'T12')."""
    if labelling is None:
        return []
    items = [(-v.centroid[2], 0, v.name) for v in labelling.vertebrae if v.name]
    items += [(-d.centre[2], 1, d.name) for d in labelling.discs if d.name]
    order = {name: i for i, name in enumerate(labelling.configuration.vertebrae)}
    # Spine order when every name is known to the configuration, else position along z.
    if all(n.split("-")[0] in order for _z, _k, n in items):
        items = [(order[n.split("-")[0]], kind, n) for _z, kind, n in items]
    return [name for *_key, name in sorted(items)]


class ChatLink(QObject):
    def __init__(self, chat, controller: LevelsController, measurements: Callable[[], list] | None = None,
                 parent: QObject | None = None) -> None:
        """``measurements`` returns the current SpineMeasurement list (anything with ``to_context()``)."""
        super().__init__(parent)
        self.chat = chat
        self.controller = controller
        self.state = controller.state
        self.measurements = measurements or list
        self.state.level_selected.connect(lambda name: self.chat.set_selected_level(name or None))
        self.state.labelling_changed.connect(lambda _l: self.push_context())
        chat.level_clicked.connect(self.controller.go_to_level)

    def push_context(self) -> None:
        """Send the levels and measurements to the chat (call again after the chat's study changes)."""
        context = replace(
            self.chat.context,
            levels_in_view=levels_in_view(self.state.labelling),
            measurements=context_measurements(self.measurements()),
            selected_level=self.state.selected_level,
        )
        self.chat.set_context(context)
        if hasattr(self.chat, "set_facts"):  # what grounded answers may cite: these measurements, with their ids
            from core.findings import build_facts

            self.chat.set_facts(build_facts(self.measurements(), context.levels_in_view, modality=context.modality))
        self.chat.set_selected_level(self.state.selected_level)
