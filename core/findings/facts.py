"""What the workstation really knows about a study: :class:`Fact` (a measured value and the grade it maps to),
:class:`NotAssessed` (a finding the data cannot give, and what would be needed), gathered in a :class:`FactSheet`.

A fact is only ever made from a labelling or a measurement (automatic or manual): never from a model's text.

    sheet.fact("F-genant-L2")            # Fact(value=36.1, unit="%", scale="Genant", grade="2", ...)
    sheet.at("L2")                        # the facts at a level
    sheet.to_prompt()                     # the lines a model is shown, each starting with the fact id
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Fact:
    id: str  # stable and readable: "F-genant-L2", "F-meyerding-L4-L5", "F-levels"
    kind: str  # the SpineMeasurement kind ("body_heights", "slip", ...) or "levels"
    topic: str  # the finding topic it settles (core.findings.topics): "fracture", "listhesis", ...
    level: str | None
    value: float | None
    unit: str
    method: str  # "auto:ct-sagittal-outline@1", "user:Dr A", "labelling: ..."
    scale: str = ""  # the published classification the value maps to: "Genant", "Meyerding", ...
    grade: str = ""  # its grade as the scale writes it: "2", "I", "moderate", "relative stenosis", "none"
    grade_label: str = ""  # for people: "Genant grade 2 (moderate), wedge"
    positive: bool = False  # whether the grade is an abnormal finding (Genant >= 1, Meyerding >= I, ...)
    text: str = ""  # one line for people and models
    measurement_id: int | None = None  # the stored measurement (core.spine.measure.store), for the viewer

    def to_prompt(self) -> str:
        return f"[{self.id}] {self.text}"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class NotAssessed:
    topic: str  # "signal", "herniation", ...
    what: str  # "disc herniation or protrusion"
    needs: str  # "a look at the images (MRI shows discs best)"
    level: str | None = None

    def to_text(self) -> str:
        where = f" at {self.level}" if self.level else ""
        return f"{self.what}{where}: not assessed (needs {self.needs})"


@dataclass
class FactSheet:
    facts: list[Fact] = field(default_factory=list)
    not_assessed: list[NotAssessed] = field(default_factory=list)
    levels_in_view: list[str] = field(default_factory=list)
    modality: str = ""
    sees_images: bool = False  # whether the model answering gets the images (a multimodal model with key images)

    def fact(self, fact_id: str) -> Fact | None:
        return next((f for f in self.facts if f.id == fact_id), None)

    def ids(self) -> list[str]:
        return [f.id for f in self.facts]

    def at(self, level: str | None) -> list[Fact]:
        return [f for f in self.facts if f.level == level]

    def about(self, topic: str, level: str | None = None) -> list[Fact]:
        """Facts that settle ``topic`` (at ``level`` when given: a range such as T5-T12 covers its levels)."""
        return [f for f in self.facts if f.topic == topic and (level is None or covers(f.level, level))]

    def to_prompt(self) -> str:
        lines = ["Facts of this study (cite their ids):"]
        lines += [f"- {f.to_prompt()}" for f in self.facts] or ["- none"]
        if self.not_assessed:
            lines.append("Not assessed (the data cannot tell; say so if asked):")
            lines += [f"- {n.to_text()}" for n in self.not_assessed]
        if not self.sees_images:
            lines.append("You do not see the images: only these facts.")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"facts": [f.to_json() for f in self.facts], "not_assessed": [asdict(n) for n in self.not_assessed],
                "levels_in_view": list(self.levels_in_view), "modality": self.modality,
                "sees_images": self.sees_images}


def covers(fact_level: str | None, level: str) -> bool:
    """Whether a fact at ``fact_level`` speaks about ``level``: the same level, or a range that holds it (a disc
    range "L1-S1" of a lordosis holds L3 and L3-L4; a vertebra's fact does not speak of its discs)."""
    if fact_level is None:
        return False
    if fact_level == level:
        return True
    from core.spine.anatomy import STANDARD, is_disc

    a, _, b = fact_level.partition("-")
    if not b or not STANDARD.has(a) or not STANDARD.has(b):
        return False
    try:
        lo, hi = STANDARD.index(a), STANDARD.index(b)
        if hi - lo <= 1:  # a disc (adjacent vertebrae), not a range
            return False
        parts = level.split("-") if is_disc(level) else [level]
        return all(lo <= STANDARD.index(p) <= hi for p in parts)
    except (KeyError, ValueError):
        return False
