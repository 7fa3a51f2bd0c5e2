"""One spine measurement as stored, exported and given to the consultation: :class:`SpineMeasurement`, and its
short form :class:`Measurement` (name, level, value, unit), which the chat context lists and a report cites by id.

Every measurement carries its kind, a display name, the level it belongs to, a value with its unit, the points it was
taken on (LPS patient millimetres, in the order the measuring function documents), who or what made it, and when::

    m = SpineMeasurement(kind="disc_height", name="disc height", level="L4-L5", value=9.2, unit="mm",
                         points=[p_upper, p_lower], method="auto:disc-profile@1")
    m.to_json()        # self-describing JSON (format "spinemed.measurement")
    m.to_context()     # Measurement(name, level, value, unit): the short form for the chat context and reports

``method`` is ``"auto:<method>@<version>"`` for an automatic measurement or ``"user:<name>"`` for one a user placed.
``details`` holds secondary values (e.g. the Meyerding grade, the three body heights) as plain JSON types.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

import numpy as np

FORMAT = "spinemed.measurement"
FORMAT_VERSION = 1
_METHOD = re.compile(r"^(auto:[\w.\-]+@[\w.\-]+|user:.+)$")

KINDS = ("distance", "angle", "cobb", "lordosis", "kyphosis", "slip", "body_heights", "disc_height",
         "canal_ap_diameter")


@dataclass(frozen=True)
class Measurement:
    """A measured value in short form: what the consultation's context lists and a report cites (``id`` is the
    report's reference, e.g. ``m1``; empty elsewhere)."""

    name: str
    level: str | None
    value: float
    unit: str
    id: str = ""

    def to_text(self) -> str:
        where = f"{self.level} " if self.level else ""
        unit = f" {self.unit}" if self.unit else ""
        return f"{where}{self.name}: {self.value:.4g}{unit}"


SET_UP_KINDS = ("calibration", "true_vertical")  # radiograph set-up: scale, and the SVA's vertical


def context_measurements(measurements) -> list[Measurement]:
    """The short forms the consultation and a report get: the patient's measurements, without set-up ones, and
    PI minus LL (SRS-Schwab) when a pelvic incidence and a lordosis were measured (core.spine.measure.alignment)."""
    from core.spine.measure.alignment import pi_minus_ll

    measurements = list(measurements)
    out = [m.to_context() for m in measurements if m.is_finding]
    derived = pi_minus_ll(measurements)
    if derived is not None:
        value, words = derived
        out.append(Measurement(name=f"pelvic incidence minus lumbar lordosis ({words}; derived from the two "
                                    "measurements)", level="L1-S1", value=round(value, 2), unit="deg"))
    return out


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _point(p) -> tuple[float, float, float]:
    a = np.asarray(p, dtype=float).reshape(3)
    return (float(a[0]), float(a[1]), float(a[2]))


@dataclass
class SpineMeasurement:
    kind: str  # one of KINDS (others are kept as given, for forward compatibility)
    name: str  # for people: "disc height", "Cobb angle", "anterolisthesis"
    level: str | None  # "L4", "L4-L5", "L1-S1", or None when not at a level
    value: float
    unit: str  # "mm", "deg", "%", "" (a ratio)
    points: list[tuple[float, float, float]] = field(default_factory=list)  # LPS mm
    method: str = "user:user"
    created: str = field(default_factory=_now)
    details: dict = field(default_factory=dict)
    id: int | None = None  # set by the store

    def __post_init__(self) -> None:
        self.value = float(self.value)
        self.points = [_point(p) for p in self.points]
        if not _METHOD.match(self.method):
            raise ValueError(f"method {self.method!r} must be 'auto:<method>@<version>' or 'user:<name>'")

    @property
    def automatic(self) -> bool:
        return self.method.startswith("auto:")

    def summary(self) -> str:
        """One line for people: 'L4-L5 disc height: 9.2 mm (approximate, automatic)'."""
        text = self.to_context().to_text()
        return text + (" (automatic, approximate)" if self.automatic else "")

    @property
    def is_finding(self) -> bool:
        """False for what only sets up other measurements (a radiograph's scale calibration or true vertical): never
        given to the consultation, the findings or a report as a measurement of the patient."""
        return self.kind not in SET_UP_KINDS

    def to_context(self) -> Measurement:
        """The chat-context form; a grade in ``details`` is appended to the name ('slip (Meyerding grade I)')."""
        name = self.name
        grade = self.details.get("grade_label")
        if grade:
            name = f"{name} ({grade})"
        return Measurement(name=name, level=self.level, value=round(self.value, 2), unit=self.unit)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "coordinates": "LPS mm", "id": self.id,
                "kind": self.kind, "name": self.name, "level": self.level, "value": self.value, "unit": self.unit,
                "points": [list(p) for p in self.points], "method": self.method, "created": self.created,
                "details": self.details}

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict) -> SpineMeasurement:
        if d.get("format", FORMAT) != FORMAT:
            raise ValueError(f"not a SpineMed measurement (format {d.get('format')!r})")
        if int(d.get("format_version", FORMAT_VERSION)) > FORMAT_VERSION:
            raise ValueError(f"measurement version {d['format_version']} is newer than this program")
        return cls(kind=d["kind"], name=d["name"], level=d.get("level"), value=d["value"], unit=d.get("unit", ""),
                   points=d.get("points", []), method=d.get("method", "user:user"), created=d.get("created") or _now(),
                   details=dict(d.get("details") or {}), id=d.get("id"))

    @classmethod
    def from_json(cls, text: str) -> SpineMeasurement:
        return cls.from_dict(json.loads(text))


def measurements_to_json(measurements: list[SpineMeasurement], series_uid: str = "", indent: int | None = 1) -> str:
    """A JSON document with several measurements of one series (what 'Export measurements' writes)."""
    return json.dumps({"format": FORMAT + "s", "format_version": FORMAT_VERSION, "coordinates": "LPS mm",
                       "series_uid": series_uid, "measurements": [m.to_dict() for m in measurements]}, indent=indent)


def measurements_from_json(text: str) -> list[SpineMeasurement]:
    doc = json.loads(text)
    if doc.get("format") != FORMAT + "s":
        raise ValueError(f"not a SpineMed measurements document (format {doc.get('format')!r})")
    return [SpineMeasurement.from_dict(d) for d in doc.get("measurements", [])]
