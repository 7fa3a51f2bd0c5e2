"""Which levels a report describes: exactly the named vertebrae and discs of the study's labelling, cranial to caudal.

Levels outside the field of view are never reported because only the labelling's levels are used. A disc between two
adjacent named vertebrae of the labelling lies between their centroids, hence in the field of view too: it is added
(with a note) when the labeller did not place it, so that a segment's disc, canal, foramina and facets get a row.
Unnamed detections are left out and counted in a note.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from core.spine.anatomy import is_disc
from core.spine.labelling import SpineLabelling


@dataclass(frozen=True)
class LevelInView:
    name: str
    kind: str  # "vertebra" | "disc"
    position: tuple[float, float, float] | None  # LPS mm
    partial: bool = False
    note: str = ""


def _order_key(config, name: str) -> int:
    if is_disc(name):
        upper, _ = config.vertebrae_of_disc(name)
        return 2 * config.index(upper) + 1
    return 2 * config.index(name)


def levels_in_view(labelling: SpineLabelling | None, infer_discs: bool = True) -> tuple[list[LevelInView], list[str]]:
    """(levels, notes) for a labelling; no levels when it is missing or has no names."""
    if labelling is None or not labelling.named:
        return [], []
    config = labelling.configuration
    notes: list[str] = []
    found: dict[str, LevelInView] = {}
    unnamed = 0
    for v in labelling.vertebrae:
        if not v.name:
            unnamed += 1
            continue
        note = "partially in the field of view" if v.partial else ""
        found[v.name] = LevelInView(v.name, "vertebra", tuple(v.centroid), v.partial, note)
    for d in labelling.discs:
        if d.name and config.has(d.name):
            found[d.name] = LevelInView(d.name, "disc", tuple(d.centre))
        elif not d.name:
            unnamed += 1
    if infer_discs:
        named = [v for v in labelling.vertebrae if v.name]
        for a, b in itertools.pairwise(named):
            try:
                disc = config.disc_between(a.name, b.name)
            except ValueError:
                continue
            if disc not in found:
                mid = tuple(float(x) for x in (np.asarray(a.centroid) + np.asarray(b.centroid)) / 2)
                found[disc] = LevelInView(disc, "disc", mid, note=f"disc between labelled {a.name} and {b.name}")
    if unnamed:
        notes.append(f"{unnamed} detected structure(s) without a level name are not reported")
    levels = sorted(found.values(), key=lambda lv: _order_key(config, lv.name))
    return levels, notes
