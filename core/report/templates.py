"""Report templates per modality (resources/report_templates: ct.json, mri.json, xray.json, and scales.json).

A template says which aspects a vertebra row and a disc row describe (with a hint for the model), which aspects
cannot be assessed on the modality (a fixed template statement instead of model text), which graded scales
(Pfirrmann, Modic, Meyerding, canal stenosis) the model may choose a value for, and the technique wording.

    template = template_for("CT")          # or load_template("mri")
    template.grade_text("meyerding", "I")  # the statement text for a chosen grade
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from core import paths
from core.report.model import ASPECTS, SCALES

TEMPLATE_DIR = paths.RESOURCES / "report_templates"
NOT_ASSESSABLE = "not assessable"
_XRAY = {"CR", "DX", "RF", "XA", "RG", "PX", "MG"}


class TemplateError(ValueError):
    """A template file that is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Scale:
    name: str
    label: str
    citation: str
    assessable: bool
    values: dict[str, str]  # grade -> statement text (before "not assessable" is added)
    hint: str = ""
    text: str = ""  # the template statement when not assessable on this modality

    @property
    def choices(self) -> list[str]:
        return [*self.values, NOT_ASSESSABLE]


@dataclass(frozen=True)
class ReportTemplate:
    key: str  # "ct" | "mri" | "xray"
    id: str
    title: str
    modalities: tuple[str, ...]
    modality_name: str
    technique: tuple[str, ...]
    aspects: dict[str, dict[str, str]]  # kind -> aspect -> hint for the model
    not_assessable: dict[str, str]  # aspect -> template statement
    scales: dict[str, Scale]
    summary: str = ""
    references: tuple[str, ...] = field(default_factory=tuple)

    def scales_for(self, kind: str) -> list[Scale]:
        """Graded scales reported on a row: all four on disc (segment) rows, none on vertebra rows."""
        return [self.scales[s] for s in SCALES if s in self.scales] if kind == "disc" else []

    def grade_text(self, scale: str, grade: str) -> str:
        s = self.scales[scale]
        if grade == NOT_ASSESSABLE:
            return f"{s.label}: not assessable on this study."
        return s.values[grade] + "."


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateError(f"{path}: report template not found") from None
    except ValueError as exc:
        raise TemplateError(f"{path}: not valid JSON ({exc})") from exc


@lru_cache(maxsize=16)
def load_template(key: str, folder: Path | None = None) -> ReportTemplate:
    folder = Path(folder) if folder else TEMPLATE_DIR
    path = folder / f"{key}.json"
    doc, shared = _read(path), _read(folder / "scales.json")
    try:
        scales = {}
        for name, spec in doc["scales"].items():
            if name not in SCALES:
                raise TemplateError(f"{path}: unknown scale {name!r} (known: {', '.join(SCALES)})")
            base = shared[name]
            scales[name] = Scale(name=name, label=base["label"], citation=base["citation"],
                                 assessable=bool(spec["assessable"]), values={**base["values"], **spec.get("texts", {})},
                                 hint=spec.get("hint", ""), text=spec.get("text", ""))
        aspects = {kind: dict(doc["levels"][kind]) for kind in ("vertebra", "disc")}
        for kind, items in aspects.items():
            bad = set(items) - set(ASPECTS)
            if bad:
                raise TemplateError(f"{path}: unknown aspects for {kind} rows: {', '.join(sorted(bad))}")
        return ReportTemplate(
            key=key, id=doc["id"], title=doc["title"], modalities=tuple(doc["modalities"]),
            modality_name=doc["modality_name"], technique=tuple(doc["technique"]), aspects=aspects,
            not_assessable=dict(doc.get("not_assessable", {})), scales=scales, summary=doc.get("summary", ""),
            references=tuple(doc.get("references", [])),
        )
    except KeyError as exc:
        raise TemplateError(f"{path}: missing field {exc}") from None


def template_key_for(modality: str, is_2d: bool = False) -> str:
    modality = (modality or "").upper()
    if modality == "MR":
        return "mri"
    if modality in _XRAY or (is_2d and modality != "CT"):
        return "xray"
    return "ct"


def template_for(modality: str, is_2d: bool = False) -> ReportTemplate:
    """The template for a DICOM modality code; unknown 3D modalities get the CT template (the caller notes it)."""
    return load_template(template_key_for(modality, is_2d))


def template_keys() -> list[str]:
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.json") if p.stem != "scales")
