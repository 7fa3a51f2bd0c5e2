"""A study's vertebral labelling: vertebrae and discs with positions, names, confidence and provenance.

Positions are LPS patient millimetres. Vertebrae are kept in spine order, cranial to caudal; a vertebra's ``name``
is None while it is detected but not yet identified. Labellings are immutable in spirit: editing operations
(:meth:`SpineLabelling.renamed_from`, :meth:`SpineLabelling.with_configuration`) return a new labelling whose
provenance names the user, so the history of who decided what can be kept by the store.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace

import numpy as np

from core.spine.anatomy import STANDARD, SpineConfiguration

FORMAT = "spinemed.levels"
FORMAT_VERSION = 1


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# A vertebra named by counting from the one the user named: the count is sure, a vertebra the labeller missed is not
# (so not 1.0); above 0.5, so the views do not mark the name as doubtful ("T11?") once the user has named a level.
COUNTED_CONFIDENCE = 0.75


def _vec(v) -> tuple[float, float, float]:
    a = np.asarray(v, dtype=float).reshape(3)
    return (float(a[0]), float(a[1]), float(a[2]))


@dataclass
class Provenance:
    """Who made a labelling: an automatic method (name + version) or a user, and when."""

    method: str  # "classical-ct", "totalsegmentator", "user", "reference", ...
    version: str = ""
    user: str | None = None
    created_at: str = field(default_factory=now_iso)
    based_on: str | None = None  # the method a user edit started from
    weights_sha256: str | None = None  # a learned method: the sha256 of the weights it ran with

    def describe(self) -> str:
        who = f"{self.user} (manual)" if self.user else f"{self.method} {self.version}".strip()
        if self.weights_sha256 and not self.user:
            who += f" (weights sha256 {self.weights_sha256[:12]})"
        return f"{who}, {self.created_at}"


@dataclass
class VertebraLabel:
    name: str | None
    centroid: tuple[float, float, float]  # vertebral-body centre, LPS mm
    confidence: float = 1.0
    mask_ref: str | None = None  # e.g. "seg.nii.gz#22": where the vertebra's mask is, if any
    partial: bool = False  # cut by the edge of the field of view

    def __post_init__(self) -> None:
        self.centroid = _vec(self.centroid)
        self.confidence = float(self.confidence)  # a numpy float32 from a labeller would not save as JSON
        self.partial = bool(self.partial)


@dataclass
class DiscLabel:
    name: str | None
    centre: tuple[float, float, float]  # LPS mm
    normal: tuple[float, float, float]  # unit vector, pointing cranially (towards the upper vertebra)
    confidence: float = 1.0

    def __post_init__(self) -> None:
        self.centre = _vec(self.centre)
        self.confidence = float(self.confidence)
        n = np.asarray(self.normal, dtype=float)
        norm = np.linalg.norm(n)
        self.normal = _vec(n / norm if norm > 0 else (0.0, 0.0, 1.0))


@dataclass
class SpineLabelling:
    vertebrae: list[VertebraLabel]
    discs: list[DiscLabel] = field(default_factory=list)
    provenance: Provenance = field(default_factory=lambda: Provenance("unknown"))
    configuration: SpineConfiguration = STANDARD
    series_uid: str = ""
    confidence: float = 0.0  # confidence in the naming as a whole (0 when unnamed)
    anchor: str | None = None  # the vertebra the naming was anchored on ("S1", "C2", "T12"), None when unnamed
    message: str = ""  # for the user: what was found, what to confirm
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.confidence = float(self.confidence)

    # --- queries -------------------------------------------------------------------------------------------
    @property
    def named(self) -> bool:
        return any(v.name for v in self.vertebrae)

    @property
    def needs_confirmation(self) -> bool:
        """True when the user should name (or confirm) one level before the names are used."""
        return bool(self.vertebrae) and (not self.named or self.confidence < 0.5)

    def names(self) -> list[str]:
        return [v.name for v in self.vertebrae if v.name]

    def centroids(self) -> dict[str, tuple[float, float, float]]:
        return {v.name: v.centroid for v in self.vertebrae if v.name}

    def vertebra(self, name: str) -> VertebraLabel | None:
        return next((v for v in self.vertebrae if v.name == name), None)

    def disc(self, name: str) -> DiscLabel | None:
        return next((d for d in self.discs if d.name == name), None)

    def nearest_vertebra(self, point) -> int | None:
        """Index of the vertebra whose centroid is closest to a patient point (a click in a view)."""
        if not self.vertebrae:
            return None
        pts = np.array([v.centroid for v in self.vertebrae])
        return int(np.argmin(np.linalg.norm(pts - np.asarray(point, dtype=float), axis=1)))

    # --- editing -------------------------------------------------------------------------------------------
    def renamed_from(self, index: int, name: str, user: str | None = None,
                     configuration: SpineConfiguration | None = None) -> SpineLabelling:
        """Name vertebra ``index`` and rename every other one consistently along the spine order.

        Vertebrae beyond the ends of the configuration (above C1, below the sacrum) lose their name. Discs are
        renamed from the vertebrae on either side of them.
        """
        config = configuration or self.configuration
        anchor = config.index(name)
        if not 0 <= index < len(self.vertebrae):
            raise IndexError(f"no vertebra number {index} (there are {len(self.vertebrae)})")
        names = [config.vertebra_at(anchor + i - index) for i in range(len(self.vertebrae))]
        vertebrae = [replace(v, name=name, confidence=1.0 if i == index else
                             max(v.confidence, COUNTED_CONFIDENCE) if name else v.confidence)
                     for i, (v, name) in enumerate(zip(self.vertebrae, names))]
        provenance = Provenance("user", user=user or "user", based_on=self.provenance.method)
        out = replace(self, vertebrae=vertebrae, configuration=config, provenance=provenance, confidence=1.0,
                      anchor=name, message=f"named from {name}, set by {user or 'the user'}",
                      notes=list(self.notes))
        out.discs = out.discs_named_from_vertebrae()
        return out

    def with_configuration(self, configuration: SpineConfiguration, keep: str | None = None,
                           user: str | None = None) -> SpineLabelling:
        """The same vertebrae renamed for another configuration (e.g. an L6 declared), keeping one name fixed.

        ``keep`` defaults to the anchor of the naming (the sacrum stays S1 when the naming came from the sacrum).
        """
        keep = keep or self.anchor
        index = next((i for i, v in enumerate(self.vertebrae) if keep and v.name == keep), None)
        if index is None:
            index = next((i for i, v in enumerate(self.vertebrae) if v.name in configuration.vertebrae), None)
        if index is None:
            return replace(self, configuration=configuration)
        return self.renamed_from(index, self.vertebrae[index].name, user=user, configuration=configuration)

    def discs_named_from_vertebrae(self) -> list[DiscLabel]:
        out = []
        for d in self.discs:
            upper, lower = self._neighbours_of_point(np.asarray(d.centre), np.asarray(d.normal))
            name = None
            if upper is not None and lower is not None:
                a, b = self.vertebrae[upper].name, self.vertebrae[lower].name
                if a and b:
                    try:
                        name = self.configuration.disc_between(a, b)
                    except ValueError:
                        name = None
            out.append(replace(d, name=name))
        return out

    def _neighbours_of_point(self, point: np.ndarray, normal: np.ndarray) -> tuple[int | None, int | None]:
        """Indices of the nearest vertebra on the cranial side and on the caudal side of a disc plane."""
        upper = lower = None
        best_up = best_down = np.inf
        for i, v in enumerate(self.vertebrae):
            offset = np.asarray(v.centroid) - point
            side = float(offset @ normal)
            dist = float(np.linalg.norm(offset))
            if side > 0 and dist < best_up:
                upper, best_up = i, dist
            elif side < 0 and dist < best_down:
                lower, best_down = i, dist
        return upper, lower

    # --- JSON ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "coordinates": "LPS mm",
            "series_uid": self.series_uid,
            "configuration": self.configuration.to_dict(),
            "provenance": vars(self.provenance).copy(),
            "confidence": self.confidence,
            "anchor": self.anchor,
            "message": self.message,
            "notes": list(self.notes),
            "vertebrae": [
                {"name": v.name, "centroid": list(v.centroid), "confidence": v.confidence, "mask_ref": v.mask_ref,
                 "partial": v.partial}
                for v in self.vertebrae
            ],
            "discs": [
                {"name": d.name, "centre": list(d.centre), "normal": list(d.normal), "confidence": d.confidence}
                for d in self.discs
            ],
        }

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict) -> SpineLabelling:
        if d.get("format") != FORMAT:
            raise ValueError(f"not a SpineMed levels document (format {d.get('format')!r})")
        if int(d.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"levels document version {d['format_version']} is newer than this program")
        return cls(
            vertebrae=[VertebraLabel(v.get("name"), v["centroid"], float(v.get("confidence", 1.0)),
                                     v.get("mask_ref"), bool(v.get("partial", False))) for v in d["vertebrae"]],
            discs=[DiscLabel(x.get("name"), x["centre"], x["normal"], float(x.get("confidence", 1.0)))
                   for x in d.get("discs", [])],
            provenance=Provenance(**d.get("provenance", {"method": "unknown"})),
            configuration=SpineConfiguration.from_dict(d.get("configuration")),
            series_uid=d.get("series_uid", ""),
            confidence=float(d.get("confidence", 0.0)),
            anchor=d.get("anchor"),
            message=d.get("message", ""),
            notes=list(d.get("notes", [])),
        )

    @classmethod
    def from_json(cls, text: str) -> SpineLabelling:
        return cls.from_dict(json.loads(text))
