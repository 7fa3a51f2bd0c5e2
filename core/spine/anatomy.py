"""Vertebral level names, their order, the discs between them, and the numbering variants a surgeon meets.

A spine is described by an explicit :class:`SpineConfiguration` (how many cervical, thoracic and lumbar vertebrae),
and every name is derived from it, so a patient with 13 thoracic vertebrae has a ``T13`` and a ``T13-L1`` disc, one
with a sixth lumbar vertebra has ``L6`` and ``L6-S1``, and one with a sacralised L5 (lumbosacral transitional
vertebra counted as sacrum) has ``L4-S1`` as the lowest disc.

Names: vertebrae ``C1``..``C7``, ``T1``..``T12``, ``L1``..``L5``, ``S1`` (the sacrum as a whole); discs are two
adjacent vertebrae joined by a hyphen, ``C2-C3`` .. ``L5-S1`` (there is no disc between C1 and C2). Order is
cranial to caudal.

This module is the one home of level names: what a user types (:func:`parse_level`), and the levels mentioned in
free text (:func:`find_levels`, :func:`level_mentions`), used by the knowledge base, the answer checks, curation and
the chat. Free text uses a wider vocabulary, ``TEXT_VERTEBRAE``: C0 (occiput, for the craniocervical junction) and
S1-S5; a segment is two adjacent names joined by a hyphen (``C0-C1``, ``L5-S1``); ``all`` tags the whole spine.
Numbering variants (T13, L6) are deliberately not part of that tag vocabulary.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import cached_property

REGIONS = ("C", "T", "L", "S")
REGION_NAMES = {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}
_ALLOWED = {"cervical": (7, 7), "thoracic": (11, 13), "lumbar": (4, 6)}


@dataclass(frozen=True)
class SpineConfiguration:
    """Vertebra counts per region. The default is the usual 7 cervical, 12 thoracic, 5 lumbar and the sacrum."""

    cervical: int = 7
    thoracic: int = 12
    lumbar: int = 5

    def __post_init__(self) -> None:
        for region, (lo, hi) in _ALLOWED.items():
            n = getattr(self, region)
            if not lo <= n <= hi:
                raise ValueError(f"{n} {region} vertebrae is outside the supported range {lo}..{hi}")

    @cached_property
    def vertebrae(self) -> tuple[str, ...]:
        return (
            tuple(f"C{i}" for i in range(1, self.cervical + 1))
            + tuple(f"T{i}" for i in range(1, self.thoracic + 1))
            + tuple(f"L{i}" for i in range(1, self.lumbar + 1))
            + ("S1",)
        )

    @cached_property
    def discs(self) -> tuple[str, ...]:
        return tuple(f"{a}-{b}" for a, b in zip(self.vertebrae[1:], self.vertebrae[2:]))

    @cached_property
    def _index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.vertebrae)}

    @property
    def is_standard(self) -> bool:
        return self == STANDARD

    def describe(self) -> str:
        """Short text for users, e.g. 'standard (C7 T12 L5)' or '13 thoracic vertebrae (C7 T13 L5)'."""
        counts = f"C{self.cervical} T{self.thoracic} L{self.lumbar}"
        if self.is_standard:
            return f"standard ({counts})"
        notes = []
        if self.thoracic != 12:
            notes.append(f"{self.thoracic} thoracic vertebrae")
        if self.lumbar == 6:
            notes.append("six lumbar vertebrae (L6)")
        elif self.lumbar == 4:
            notes.append("four lumbar vertebrae (sacralised L5 / LSTV)")
        return f"{', '.join(notes)} ({counts})"

    def to_dict(self) -> dict[str, int]:
        return {"cervical": self.cervical, "thoracic": self.thoracic, "lumbar": self.lumbar}

    @classmethod
    def from_dict(cls, d: dict | None) -> SpineConfiguration:
        d = d or {}
        return cls(**{k: int(d[k]) for k in ("cervical", "thoracic", "lumbar") if k in d})

    # --- vertebrae ---------------------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self._index or name in self.disc_set

    @cached_property
    def disc_set(self) -> frozenset[str]:
        return frozenset(self.discs)

    def index(self, vertebra: str) -> int:
        """Position from the top (C1 = 0). Raises ValueError for a name this configuration does not have."""
        try:
            return self._index[vertebra]
        except KeyError:
            raise ValueError(_unknown(vertebra, self)) from None

    def vertebra_at(self, index: int) -> str | None:
        """Name at a position from the top, None beyond C1 or below the sacrum."""
        return self.vertebrae[index] if 0 <= index < len(self.vertebrae) else None

    def shifted(self, vertebra: str, steps: int) -> str | None:
        """The vertebra ``steps`` positions caudal (negative: cranial), None when that leaves the spine."""
        return self.vertebra_at(self.index(vertebra) + steps)

    def neighbours(self, vertebra: str) -> tuple[str | None, str | None]:
        """(vertebra above, vertebra below); None at either end."""
        i = self.index(vertebra)
        return self.vertebra_at(i - 1) if i > 0 else None, self.vertebra_at(i + 1)

    def region(self, name: str) -> str:
        """'cervical' | 'thoracic' | 'lumbar' | 'sacral' (a disc takes the region of its upper vertebra)."""
        return REGION_NAMES[name[0]]

    # --- discs -------------------------------------------------------------------------------------------
    def disc_between(self, upper: str, lower: str) -> str:
        """Disc name between two adjacent vertebrae (given in either order)."""
        i, j = sorted((self.index(upper), self.index(lower)))
        if j != i + 1:
            raise ValueError(f"{upper} and {lower} are not adjacent: no single disc lies between them")
        name = f"{self.vertebrae[i]}-{self.vertebrae[j]}"
        if name not in self.disc_set:
            raise ValueError(f"there is no intervertebral disc between {self.vertebrae[i]} and {self.vertebrae[j]}")
        return name

    def disc_below(self, vertebra: str) -> str | None:
        below = self.neighbours(vertebra)[1]
        name = f"{vertebra}-{below}" if below else None
        return name if name in self.disc_set else None

    def disc_above(self, vertebra: str) -> str | None:
        above = self.neighbours(vertebra)[0]
        name = f"{above}-{vertebra}" if above else None
        return name if name in self.disc_set else None

    def vertebrae_of_disc(self, disc: str) -> tuple[str, str]:
        if disc not in self.disc_set:
            raise ValueError(_unknown(disc, self))
        upper, lower = disc.split("-")
        return upper, lower


STANDARD = SpineConfiguration()


def is_disc(name: str) -> bool:
    return "-" in name


def _unknown(name: str, config: SpineConfiguration) -> str:
    hint = ""
    if name.startswith("T13") or name.endswith("T13"):
        hint = " (T13 needs a configuration with 13 thoracic vertebrae)"
    elif "L6" in name:
        hint = " (L6 needs a configuration with 6 lumbar vertebrae)"
    elif name.startswith("L5") and config.lumbar == 4:
        hint = " (this configuration has a sacralised L5: 4 lumbar vertebrae)"
    return f"{name!r} is not a level of this spine: {config.describe()}{hint}"


# --- parsing user text -------------------------------------------------------------------------------------
_FILLER = re.compile(r"\b(disc|disk|level|vertebra|vertebral|body|segment|the|space|interspace|ivd)\b", re.IGNORECASE)
_SACRUM = re.compile(r"^\s*sacrum\s*$", re.IGNORECASE)
_TOKEN = re.compile(
    r"^([CTLS])\s*(\d{1,4})(?:\s*(?:[-/\u2013\u2014_]|to)\s*([CTLS])?\s*(\d{1,2}))?$", re.IGNORECASE
)


def parse_level(text: str, config: SpineConfiguration = STANDARD) -> str:
    """Canonical vertebra or disc name for what a user typed; raises ValueError with a readable reason.

    Accepted: 'L4', 'l4', 'sacrum', 'L4/5', 'L4-5', 'L4-L5', 'L4 / L5', 'L4–L5', 'C7-T1', 'C7/T1', 'L5-S1', 'L5S1',
    'L4-5 disc'. Run-together digits ('L45', 'C56', 'T1112') mean a disc only when they are not themselves a
    vertebra of this configuration: 'T12' is the vertebra T12, never the T1-T2 disc; 'L45' is the L4-L5 disc.
    """
    raw = text
    text = _FILLER.sub(" ", text).strip()
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"(\d)\s*([CTLS])", r"\1-\2", text, flags=re.IGNORECASE)  # 'L5S1' -> 'L5-S1'
    if _SACRUM.match(text):
        return "S1"
    m = _TOKEN.match(text)
    if not m:
        raise ValueError(f"cannot read {raw!r} as a spinal level (examples: L4, L4-L5, L4/5, C7-T1, L5-S1)")
    region1, digits1, region2, digits2 = m.group(1).upper(), m.group(2), m.group(3), m.group(4)
    if digits2 is None:
        single = f"{region1}{int(digits1)}"
        if single in config._index:
            return single
        split = _split_run_together(region1, digits1, config)
        if split is not None:
            return split
        raise ValueError(_unknown(single, config))
    upper = f"{region1}{int(digits1)}"
    lower = f"{(region2 or region1).upper()}{int(digits2)}"
    if upper not in config._index:
        raise ValueError(_unknown(upper, config))
    if lower not in config._index:
        raise ValueError(_unknown(lower, config))
    return config.disc_between(upper, lower)


def _split_run_together(region: str, digits: str, config: SpineConfiguration) -> str | None:
    """'45' -> L4-L5, '1112' -> T11-T12, '56' -> L5-L6 (with L6); None when no split gives adjacent vertebrae."""
    for cut in range(1, len(digits)):
        a, b = digits[:cut], digits[cut:]
        if a.startswith("0") or b.startswith("0"):
            continue
        upper, lower = f"{region}{int(a)}", f"{region}{int(b)}"
        if upper in config._index and lower in config._index and config.index(lower) == config.index(upper) + 1:
            name = f"{upper}-{lower}"
            if name in config.disc_set:
                return name
    return None


def configuration_for(names) -> SpineConfiguration:
    """Smallest change from the standard configuration that contains all these vertebra names (T13, L6)."""
    names = set(names)
    thoracic = 13 if "T13" in names else 12
    lumbar = 6 if "L6" in names else 5
    return SpineConfiguration(thoracic=thoracic, lumbar=lumbar)


# --- level names in free text (knowledge tags, answers, chat links) ------------------------------------------
ALL_LEVELS = "all"  # a knowledge tag: the whole spine

TEXT_VERTEBRAE: tuple[str, ...] = (
    ("C0",)
    + tuple(f"C{i}" for i in range(1, 8))
    + tuple(f"T{i}" for i in range(1, 13))
    + tuple(f"L{i}" for i in range(1, 6))
    + tuple(f"S{i}" for i in range(1, 6))
)
TEXT_SEGMENTS: tuple[str, ...] = tuple(f"{a}-{b}" for a, b in itertools.pairwise(TEXT_VERTEBRAE))
VALID_LEVELS: frozenset[str] = frozenset(TEXT_VERTEBRAE + TEXT_SEGMENTS + (ALL_LEVELS,))

_TEXT_INDEX = {name: i for i, name in enumerate(TEXT_VERTEBRAE)}

# "L4-L5", "l4/5", "L4–5", "L5S1", "C7-T1", "T12" ...
_LEVEL_RE = re.compile(
    r"(?<![A-Za-z0-9])([CTLS])(\d{1,2})(?:\s*[-/\u2013\u2014]?\s*([CTLS])?(\d{1,2}))?(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# A lone "T1"/"T2" in free text is far more often an MRI weighting than a vertebra.
_AMBIGUOUS_IN_TEXT = frozenset({"T1", "T2"})


def region(vertebra: str) -> str:
    """'cervical', 'thoracic', 'lumbar' or 'sacral' for a vertebra name (C0 counts as cervical)."""
    return REGION_NAMES[vertebra[0]]


def normalise_level(text: str) -> str | None:
    """Canonical level name for user text ('l4/5' -> 'L4-L5', 'L5S1' -> 'L5-S1'), or None if not a valid level."""
    text = text.strip()
    if text.lower() == ALL_LEVELS:
        return ALL_LEVELS
    m = _LEVEL_RE.fullmatch(text)
    return _from_match(m) if m else None


def _from_match(m: re.Match[str]) -> str | None:
    first = f"{m.group(1).upper()}{int(m.group(2))}"
    if first not in _TEXT_INDEX:
        return None
    if m.group(4) is None:
        return first
    second = f"{(m.group(3) or m.group(1)).upper()}{int(m.group(4))}"
    if second not in _TEXT_INDEX or _TEXT_INDEX[second] != _TEXT_INDEX[first] + 1:
        return None
    return f"{first}-{second}"


def level_mentions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, canonical name) of every level mention in free text, in order, repeats included (bare T1/T2
    are ignored as MRI weightings; an impossible pair such as "L3-L5" counts as its first vertebra)."""
    out = []
    for m in _LEVEL_RE.finditer(text):
        name = _from_match(m)
        if name is None:
            first = f"{m.group(1).upper()}{int(m.group(2))}"
            name = first if first in _TEXT_INDEX else None
        if name is not None and name not in _AMBIGUOUS_IN_TEXT:
            out.append((m.start(), m.end(), name))
    return out


def find_levels(text: str) -> list[str]:
    """Level names mentioned in free text, in order, without duplicates (bare T1/T2 are ignored as ambiguous)."""
    return list(dict.fromkeys(name for _, _, name in level_mentions(text)))


def spine_region(levels) -> str:
    """'lumbar spine', 'thoracolumbar spine', ... for a set of level names ('' when none)."""
    letters = sorted({lv[0].upper() for lv in levels if lv and lv[0].upper() in REGION_NAMES}, key=REGIONS.index)
    if not letters:
        return ""
    names = [REGION_NAMES[x] for x in letters]
    prefix = {"cervical": "cervico", "thoracic": "thoraco", "lumbar": "lumbo"}
    return "".join(prefix.get(x, x) for x in names[:-1]) + names[-1] + " spine"


def strip_levels(text: str) -> str:
    """``text`` with its level mentions (as found by ``find_levels``) replaced by spaces."""

    def repl(m: re.Match[str]) -> str:
        name = _from_match(m) or f"{m.group(1).upper()}{int(m.group(2))}"
        valid = name in _TEXT_INDEX or name in TEXT_SEGMENTS
        return " " if valid and name not in _AMBIGUOUS_IN_TEXT else m.group(0)

    return _LEVEL_RE.sub(repl, text)


def vertebrae_of(level: str) -> tuple[str, ...]:
    """The vertebrae a level name refers to: one for a vertebra, two for a segment, none for 'all'."""
    if level == ALL_LEVELS:
        return ()
    return tuple(level.split("-"))


def related_levels(level: str) -> frozenset[str]:
    """Levels that count as a match: a segment matches itself and both its vertebrae; a vertebra matches itself
    and its adjacent segments (discs above and below)."""
    canonical = normalise_level(level)
    if canonical is None or canonical == ALL_LEVELS:
        return frozenset()
    parts = vertebrae_of(canonical)
    related = {canonical, *parts}
    if len(parts) == 1:
        i = _TEXT_INDEX[parts[0]]
        if i > 0:
            related.add(f"{TEXT_VERTEBRAE[i - 1]}-{parts[0]}")
        if i + 1 < len(TEXT_VERTEBRAE):
            related.add(f"{parts[0]}-{TEXT_VERTEBRAE[i + 1]}")
    return frozenset(related)


def regions_of(level: str) -> frozenset[str]:
    """Regions a level belongs to (a junctional segment such as C7-T1 belongs to both)."""
    return frozenset(region(v) for v in vertebrae_of(level) if v in _TEXT_INDEX)
