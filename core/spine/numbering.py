"""Label-value numberings of spine label maps, table-driven: value <-> level name.

Supported (key: source):
- ``verse``: VerSe / TPTBox. 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 26 S1 (sacrum), 27 coccyx, 28 T13;
  100+X = intervertebral disc below vertebra X; 200+X = endplate of vertebra X.
- ``totalseg``: TotalSegmentator "total" v2. 25 sacrum, 26 S1, 27 L5 .. 31 L1, 32 T12 .. 43 T1, 44 C7 .. 50 C1,
  79 spinal cord (checked against totalsegmentator/map_to_binary.py, class_map["total"]).
- ``totalseg_v1``: TotalSegmentator v1 "total": 18 L5 .. 22 L1, 23 T12 .. 34 T1, 35 C7 .. 41 C1, 92 sacrum
  (class_map["total_v1"]).
- ``totalseg_vertebrae_mr``: TotalSegmentator "vertebrae_mr": 1 sacrum, 2 L5 .. 25 C1 (class_map["vertebrae_mr"]).
- ``totalseg_vertebrae_pp``: TotalSegmentator "vertebrae_pp" (and "vertebrae_pp_refined"): 1 C1 .. 24 L5, no
  sacrum (class_map["vertebrae_pp"] of the totalsegmentator 2.18.0 wheel; older releases have no such task).
- ``sct``: Spinal Cord Toolbox, value = level counted from the top: 1 C1 .. 7 C7, 8 T1 .. 19 T12, 20 L1 .. 24 L5,
  25 S1 (25-29 S1-S5, 30 coccyx in SCT; only S1 is a level here), 49 PMG and 50 PMJ (brainstem landmarks). SCT
  labels are painted on the spinal cord, not on the vertebral bodies.

A value's meaning may depend on the spine configuration (VerSe 119 is the T12-L1 disc, or T12-T13 when a T13 is
present): pass the configuration, or let :func:`configuration_from_values` infer it from the values present.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.spine.anatomy import STANDARD, SpineConfiguration

_C = [f"C{i}" for i in range(1, 8)]
_T = [f"T{i}" for i in range(1, 13)]
_L5 = [f"L{i}" for i in range(1, 6)]
_STANDARD_TOP_DOWN = _C + _T + _L5  # C1..L5


@dataclass(frozen=True)
class LabelMeaning:
    kind: str  # "vertebra" | "disc" | "endplate" | "structure"
    name: str  # "L3", "L3-L4", "L3" (endplate of), "sacrum", "spinal_cord"

    def __str__(self) -> str:
        return f"endplate of {self.name}" if self.kind == "endplate" else self.name


@dataclass(frozen=True)
class Numbering:
    key: str
    title: str
    vertebrae: dict[int, str]  # value -> vertebra name
    structures: dict[int, str] = field(default_factory=dict)  # value -> non-level structure (sacrum, cord)
    disc_offset: int | None = None  # VerSe: disc below X is disc_offset + value(X)
    endplate_offset: int | None = None
    on_cord: bool = False  # labels painted on the spinal cord (SCT), not on the bodies

    @property
    def _value_of(self) -> dict[str, int]:
        return {name: value for value, name in self.vertebrae.items()}

    def decode(self, value: int, config: SpineConfiguration | None = None) -> LabelMeaning | None:
        """Meaning of a label value, or None for background / values this numbering does not define."""
        value = int(value)
        if value in self.vertebrae:
            return LabelMeaning("vertebra", self.vertebrae[value])
        if value in self.structures:
            return LabelMeaning("structure", self.structures[value])
        for offset, kind in ((self.disc_offset, "disc"), (self.endplate_offset, "endplate")):
            if offset is not None and value - offset in self.vertebrae:
                upper = self.vertebrae[value - offset]
                if kind == "endplate":
                    return LabelMeaning(kind, upper)
                cfg = config or STANDARD
                if upper not in cfg.vertebrae:
                    return None
                disc = cfg.disc_below(upper)
                return LabelMeaning(kind, disc) if disc else None
        return None

    def name_of(self, value: int, config: SpineConfiguration | None = None) -> str | None:
        """Vertebra or disc name of a value (structures and endplates give None)."""
        meaning = self.decode(value, config)
        return meaning.name if meaning and meaning.kind in ("vertebra", "disc") else None

    def encode(self, name: str, kind: str = "vertebra") -> int:
        """Label value of a vertebra ('L3'), disc ('L3-L4', kind inferred) or endplate (kind='endplate')."""
        if "-" in name:
            kind = "disc"
            name = name.split("-")[0]
        if kind == "structure":
            for value, structure in self.structures.items():
                if structure == name:
                    return value
            raise KeyError(f"{self.title} has no structure {name!r}")
        try:
            value = self._value_of[name]
        except KeyError:
            raise KeyError(f"{self.title} has no label for vertebra {name}") from None
        if kind == "vertebra":
            return value
        offset = self.disc_offset if kind == "disc" else self.endplate_offset
        if offset is None:
            raise KeyError(f"{self.title} has no {kind} labels")
        return offset + value


def _table(names: list[str], first: int, step: int = 1) -> dict[int, str]:
    return {first + step * n: name for n, name in enumerate(names)}


NUMBERINGS: dict[str, Numbering] = {
    n.key: n
    for n in (
        Numbering(
            "verse", "VerSe / TPTBox",
            vertebrae={**_table(_C + _T + _L5 + ["L6", "S1"], 1), 28: "T13"},
            structures={27: "coccyx"}, disc_offset=100, endplate_offset=200,
        ),
        Numbering(
            "totalseg", "TotalSegmentator total v2",
            vertebrae=_table(_STANDARD_TOP_DOWN + ["S1"], 50, -1),
            structures={25: "sacrum", 79: "spinal_cord"},
        ),
        Numbering(
            "totalseg_v1", "TotalSegmentator total v1",
            vertebrae=_table(_STANDARD_TOP_DOWN, 41, -1), structures={92: "sacrum"},
        ),
        Numbering(
            "totalseg_vertebrae_mr", "TotalSegmentator vertebrae_mr",
            vertebrae=_table(_STANDARD_TOP_DOWN, 25, -1), structures={1: "sacrum"},
        ),
        Numbering(
            "totalseg_vertebrae_pp", "TotalSegmentator vertebrae_pp",
            vertebrae=_table(_STANDARD_TOP_DOWN, 1),
        ),
        Numbering(
            "sct", "Spinal Cord Toolbox", vertebrae=_table(_STANDARD_TOP_DOWN + ["S1"], 1),
            structures={49: "PMG", 50: "PMJ"}, on_cord=True,
        ),
    )
}


def get_numbering(key: str) -> Numbering:
    try:
        return NUMBERINGS[key]
    except KeyError:
        raise KeyError(f"unknown numbering {key!r}; known: {', '.join(NUMBERINGS)}") from None


def configuration_from_values(numbering: Numbering, values) -> SpineConfiguration:
    """The spine configuration implied by the vertebra labels present (e.g. VerSe 28 -> T13, 25 -> L6)."""
    names = {numbering.vertebrae[int(v)] for v in values if int(v) in numbering.vertebrae}
    return SpineConfiguration(thoracic=13 if "T13" in names else 12, lumbar=6 if "L6" in names else 5)


def convert(value: int, source: Numbering, target: Numbering, config: SpineConfiguration | None = None) -> int | None:
    """Translate one label value between numberings (None when the target cannot express it)."""
    meaning = source.decode(value, config)
    if meaning is None:
        return None
    try:
        if meaning.kind == "disc":
            return target.encode(meaning.name)
        return target.encode(meaning.name, meaning.kind)
    except KeyError:
        return None
