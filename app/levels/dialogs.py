"""Small modal questions of the levels tools: the name of a vertebra, the numbering of a label map.

Tests replace these functions (they are looked up on this module at call time) so no dialog ever blocks a test.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

from core.spine.labelling import SpineLabelling
from core.spine.labelmap import guess_numbering, numbering_titles

LABELMAP_FILTER = "Label maps (*.nii *.nii.gz);;All files (*)"


def ask_level_name(parent: QWidget | None, labelling: SpineLabelling, index: int) -> str | None:
    """The name the user gives vertebra ``index`` (the others are renamed from it), or None when cancelled."""
    names = list(labelling.configuration.vertebrae)
    current = labelling.vertebrae[index].name
    start = names.index(current) if current in names else names.index("L1")
    text, ok = QInputDialog.getItem(
        parent, "Name this vertebra",
        "Name of this vertebra (the other vertebrae are renamed to match):", names, start, True,
    )
    return text.strip() if ok and text.strip() else None


def rename_vertebra(parent: QWidget | None, controller, index: int) -> str | None:
    """Ask for vertebra ``index``'s name and rename the labelling from it; the name given, or None."""
    name = ask_level_name(parent, controller.labelling, index)
    if not name:
        return None
    try:
        return controller.rename(index, name)
    except ValueError as exc:
        QMessageBox.warning(parent, "Name not accepted", str(exc))
        return None


def ask_labelmap(parent: QWidget | None) -> tuple[Path, str] | None:
    """A label map file and its numbering key, or None when cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, "Load labels from a label map", "", LABELMAP_FILTER)
    if not path:
        return None
    choices = numbering_titles()
    keys = [key for key, _title in choices]
    items = [f"{title} ({key})" for key, title in choices]
    guess = guess_numbering(path)
    item, ok = QInputDialog.getItem(parent, "Label numbering", f"Numbering of {Path(path).name}:", items,
                                    keys.index(guess) if guess in keys else 0, False)
    if not ok:
        return None
    return Path(path), keys[items.index(item)]
