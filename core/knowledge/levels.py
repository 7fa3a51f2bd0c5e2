"""Spine level names used by the knowledge base: the vocabulary, normalisation and neighbourhoods.

Vertebrae are C0 (occiput, for the craniocervical junction), C1-C7, T1-T12, L1-L5 and S1-S5; a segment (disc or
joint) is two adjacent names joined by a hyphen, e.g. ``C0-C1``, ``C7-T1``, ``L4-L5``, ``L5-S1``. ``all`` means the
whole spine. Numbering variants (six lumbar-type vertebrae, 13 rib-bearing vertebrae) are discussed in the documents
but are deliberately not part of the tag vocabulary: tags describe where a topic applies in a standard spine.
"""
from __future__ import annotations

import itertools
import re

ALL = "all"

VERTEBRAE: tuple[str, ...] = (
    ("C0",)
    + tuple(f"C{i}" for i in range(1, 8))
    + tuple(f"T{i}" for i in range(1, 13))
    + tuple(f"L{i}" for i in range(1, 6))
    + tuple(f"S{i}" for i in range(1, 6))
)
SEGMENTS: tuple[str, ...] = tuple(f"{a}-{b}" for a, b in itertools.pairwise(VERTEBRAE))
VALID_LEVELS: frozenset[str] = frozenset(VERTEBRAE + SEGMENTS + (ALL,))

_INDEX = {name: i for i, name in enumerate(VERTEBRAE)}

# "L4-L5", "l4/5", "L4–5", "L5S1", "C7-T1", "T12" ...
_LEVEL_RE = re.compile(
    r"(?<![A-Za-z0-9])([CTLS])(\d{1,2})(?:\s*[-/\u2013\u2014]?\s*([CTLS])?(\d{1,2}))?(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# A lone "T1"/"T2" in free text is far more often an MRI weighting than a vertebra.
_AMBIGUOUS_IN_TEXT = frozenset({"T1", "T2"})


def region(vertebra: str) -> str:
    """'cervical', 'thoracic', 'lumbar' or 'sacral' for a vertebra name (C0 counts as cervical)."""
    return {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}[vertebra[0]]


def normalise_level(text: str) -> str | None:
    """Canonical level name for user text ('l4/5' -> 'L4-L5', 'L5S1' -> 'L5-S1'), or None if not a valid level."""
    text = text.strip()
    if text.lower() == ALL:
        return ALL
    m = _LEVEL_RE.fullmatch(text)
    return _from_match(m) if m else None


def _from_match(m: re.Match[str]) -> str | None:
    first = f"{m.group(1).upper()}{int(m.group(2))}"
    if first not in _INDEX:
        return None
    if m.group(4) is None:
        return first
    second = f"{(m.group(3) or m.group(1)).upper()}{int(m.group(4))}"
    if second not in _INDEX or _INDEX[second] != _INDEX[first] + 1:
        return None
    return f"{first}-{second}"


def find_levels(text: str) -> list[str]:
    """Level names mentioned in free text, in order, without duplicates (bare T1/T2 are ignored as ambiguous)."""
    found: list[str] = []
    for m in _LEVEL_RE.finditer(text):
        name = _from_match(m)
        if name is None:
            # "T2-weighted" style or an impossible pair such as "L3-L5": fall back to the first vertebra alone.
            first = f"{m.group(1).upper()}{int(m.group(2))}"
            name = first if first in _INDEX else None
        if name is None or name in _AMBIGUOUS_IN_TEXT or name in found:
            continue
        found.append(name)
    return found


def strip_levels(text: str) -> str:
    """``text`` with its level mentions (as found by ``find_levels``) replaced by spaces."""

    def repl(m: re.Match[str]) -> str:
        name = _from_match(m) or f"{m.group(1).upper()}{int(m.group(2))}"
        valid = name in _INDEX or name in SEGMENTS
        return " " if valid and name not in _AMBIGUOUS_IN_TEXT else m.group(0)

    return _LEVEL_RE.sub(repl, text)


def vertebrae_of(level: str) -> tuple[str, ...]:
    """The vertebrae a level name refers to: one for a vertebra, two for a segment, none for 'all'."""
    if level == ALL:
        return ()
    return tuple(level.split("-"))


def related_levels(level: str) -> frozenset[str]:
    """Levels that count as a match: a segment matches itself and both its vertebrae; a vertebra matches itself
    and its adjacent segments (discs above and below)."""
    canonical = normalise_level(level)
    if canonical is None or canonical == ALL:
        return frozenset()
    parts = vertebrae_of(canonical)
    related = {canonical, *parts}
    if len(parts) == 1:
        i = _INDEX[parts[0]]
        if i > 0:
            related.add(f"{VERTEBRAE[i - 1]}-{parts[0]}")
        if i + 1 < len(VERTEBRAE):
            related.add(f"{parts[0]}-{VERTEBRAE[i + 1]}")
    return frozenset(related)


def regions_of(level: str) -> frozenset[str]:
    """Regions a level belongs to (a junctional segment such as C7-T1 belongs to both)."""
    return frozenset(region(v) for v in vertebrae_of(level) if v in _INDEX)
