"""Naming detected vertebrae from an anatomical anchor seen in the field of view.

Detections come in spine order (cranial to caudal). An anchor fixes one of them to a name (the sacrum is S1, the
vertebra below the skull is C2, the last rib-bearing vertebra is T12); the others follow the configuration's order.
Confidence decays with the distance from the anchor, since every missed or split disc on the way shifts the names.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.spine.anatomy import STANDARD, SpineConfiguration

DECAY_PER_LEVEL = 0.02


@dataclass
class Anchor:
    index: int  # which detection (spine order)
    name: str  # the name it gets
    confidence: float  # 0..1
    evidence: str  # for the user: "sacrum (wide bone continuous with the column, no disc below)"


def names_from_anchor(n: int, anchor: Anchor, config: SpineConfiguration = STANDARD
                      ) -> tuple[list[str | None], list[float]]:
    """Names and per-vertebra confidences for ``n`` detections given one anchored detection."""
    base = config.index(anchor.name)
    names = [config.vertebra_at(base + i - anchor.index) for i in range(n)]
    conf = [max(0.0, anchor.confidence - DECAY_PER_LEVEL * abs(i - anchor.index)) if names[i] else 0.0
            for i in range(n)]
    return names, conf


def reconcile(anchors: list[Anchor], config: SpineConfiguration = STANDARD
              ) -> tuple[Anchor | None, SpineConfiguration, list[str]]:
    """Pick the anchor to name from and note disagreements between anchors (a hint of a transitional vertebra).

    Anchors are tried in the order given (most reliable first). Two anchors agree when they imply the same name
    for every detection.
    """
    notes: list[str] = []
    if not anchors:
        return None, config, notes
    best = anchors[0]
    base = config.index(best.name) - best.index
    for other in anchors[1:]:
        implied = config.index(other.name) - other.index
        if implied == base:
            best = Anchor(best.index, best.name, min(0.99, best.confidence + 0.1 * other.confidence),
                          f"{best.evidence}; agrees with {other.evidence}")
            continue
        shift = base - implied
        notes.append(
            f"{other.evidence} would shift the names by {abs(shift)} level(s) "
            f"({'more' if shift < 0 else 'fewer'} vertebrae between the anchors than usual): possible transitional "
            f"vertebra (T13 / L6 / sacralised L5) or a missed disc; confirm the levels"
        )
        best = Anchor(best.index, best.name, best.confidence * 0.7, best.evidence)
    return best, config, notes
