"""The study context a consultation is grounded on, as plain dataclasses, and its compact text form.

The viewer (or the CLI) fills a :class:`StudyContext`; ``to_text()`` renders it as a few labelled lines that a small
model can follow and a clinician can read in the exported conversation:

    Modality: CT
    Region: thoracolumbar spine
    Series: CT "Spine 1.0 B31s" (20 images)
    Patient: 54 years, male
    Levels in view: T11, T11-T12, T12
    Measurements:
    - T11-T12 disc height: 7.2 mm

Levels are plain names ("L4-L5", see core.spine.anatomy); nothing here invents a level or a measurement.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.spine.anatomy import spine_region
from core.spine.measure.measurement import Measurement

_SEX = {"M": "male", "F": "female", "O": "other"}


@dataclass
class StudyContext:
    modality: str = ""
    region: str = ""  # e.g. "lumbar spine"; derived from the levels in view when empty
    study_description: str = ""
    study_date: str = ""
    series: list[str] = field(default_factory=list)  # one line per series, e.g. 'CT "Sag T2" (15 images)'
    levels_in_view: list[str] = field(default_factory=list)
    selected_level: str | None = None
    measurements: list[Measurement] = field(default_factory=list)
    prior_findings: list[str] = field(default_factory=list)
    patient_age: str | None = None  # DICOM "054Y" or plain text
    patient_sex: str | None = None  # DICOM M/F/O or plain text

    @classmethod
    def from_series_source(cls, source: Any, **overrides: Any) -> StudyContext:
        """Context from a ``core.studies.sources.SeriesSource`` (headers only); ``overrides`` set other fields."""
        n = getattr(source, "n_images", 0) or len(getattr(source, "files", []) or [])
        desc = getattr(source, "series_description", "") or ""
        line = f'{source.modality} "{desc}"' if desc else source.modality
        if n:
            line += f" ({n} images)"
        ctx = cls(
            modality=source.modality,
            study_description=getattr(source, "study_description", "") or "",
            study_date=getattr(source, "study_date", "") or "",
            series=[line],
            patient_age=getattr(source, "patient_age", None),
            patient_sex=getattr(source, "patient_sex", None),
        )
        for key, value in overrides.items():
            setattr(ctx, key, value)
        return ctx

    def derived_region(self) -> str:
        return self.region or spine_region(self.levels_in_view)

    def to_text(self, include_selected: bool = False) -> str:
        """The compact structured text; the selected level is left out unless asked (it travels with each question,
        so the system prompt stays the same while the clinician moves between levels)."""
        lines = []
        if self.modality:
            lines.append(f"Modality: {self.modality}")
        if region := self.derived_region():
            lines.append(f"Region: {region}")
        if self.study_description or self.study_date:
            date = f" ({_format_date(self.study_date)})" if self.study_date else ""
            lines.append(f'Study: "{self.study_description}"{date}' if self.study_description else f"Study date:{date}")
        for s in self.series:
            lines.append(f"Series: {s}")
        patient = ", ".join(p for p in (_format_age(self.patient_age), _SEX.get(self.patient_sex or "",
                                                                                  self.patient_sex or "")) if p)
        if patient:
            lines.append(f"Patient: {patient}")
        if self.levels_in_view:
            lines.append(f"Levels in view: {', '.join(self.levels_in_view)}")
        else:
            lines.append("Levels in view: not determined (no level labels for this study)")
        if include_selected:
            lines.append(f"Selected level: {self.selected_level or 'none'}")
        if self.measurements:
            lines.append("Measurements:")
            lines += [f"- {m.to_text()}" for m in self.measurements]
        else:
            lines.append("Measurements: none recorded")
        if self.prior_findings:
            lines.append("Prior findings:")
            lines += [f"- {f}" for f in self.prior_findings]
        return "\n".join(lines)


def _format_age(age: str | None) -> str:
    """DICOM AS ("054Y", "006M") -> "54 years"; anything else is kept as written."""
    if not age:
        return ""
    age = age.strip()
    units = {"Y": "years", "M": "months", "W": "weeks", "D": "days"}
    if len(age) == 4 and age[:3].isdigit() and age[3].upper() in units:
        return f"{int(age[:3])} {units[age[3].upper()]}"
    return age


def _format_date(date: str) -> str:
    if len(date) == 8 and date.isdigit():
        return f"{date[:4]}-{date[4:6]}-{date[6:]}"
    return date
