"""Facts from the labelling and the measurements of one series, each mapped to the classification it follows.

    sheet = build_facts(measurements, levels_in_view=["L1", "L1-L2", "L2"], modality="CT", sees_images=False)

``measurements``: :class:`core.spine.measure.measurement.SpineMeasurement` (automatic or manual, with their kind and
details) or the consultation's plain :class:`core.consult.context.Measurement` (name, level, value, unit: the kind is
read from the name). The mappings, with the thresholds they use:

- vertebral body height loss (%) -> Genant semi-quantitative grade (Genant 1993): 0 < 20 %, 1 20-25 %, 2 25-40 %,
  3 > 40 % (core.spine.measure.genant_grade); grade >= 1 is a vertebral deformity consistent with a fracture;
- slip (%) -> Meyerding grade (Meyerding 1932): I <= 25 %, II <= 50 %, III <= 75 %, IV <= 100 %, V > 100 %;
  a negative slip is a retrolisthesis, not graded; an *automatic* slip under 5 % either way is within that
  method's precision (a normal phantom measures up to 3 %), so no slip is stated;
- coronal Cobb angle -> curve severity: < 10 deg not scoliosis (Scoliosis Research Society definition),
  10-25 mild, 25-40 moderate, > 40 severe (the usual severity bands in scoliosis care);
- AP diameter of the bony canal -> stenosis threshold: lumbar < 10 mm absolute, 10-12 mm relative (Verbiest);
  cervical < 10 mm absolute, 10-13 mm relative (the usual thresholds of cervical canal stenosis);
  thoracic: no threshold, the value only;
- disc height -> loss against the mean of the measured neighbouring discs: 25 % or more is called reduced (a
  threshold of this workstation, not a published grade; stated as such);
- lumbar lordosis, thoracic kyphosis: the value, no grade.

What no measurement can give is listed as :class:`NotAssessed`: on a text-only model every image-only topic
(core.findings.topics.IMAGE_ONLY), and the measurable topics at the levels in view where nothing was measured.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.findings.facts import Fact, FactSheet, NotAssessed
from core.findings.topics import IMAGE_ONLY, TOPICS
from core.spine.anatomy import is_disc
from core.spine.measure.geometry import (
    AUTO_SLIP_PRECISION,
    GENANT,
    MEYERDING,
    genant_grade,
    meyerding_grade,
    slip_class,
)
from core.spine.measure.measurement import SpineMeasurement

ROMAN = {0: "none", 1: "I", 2: "II", 3: "III", 4: "IV", 5: "V"}
DISC_LOSS_REDUCED = 25.0  # % below the neighbours' mean (a workstation threshold, not a published grade)
_NAME_KINDS = (("slip", "slip"), ("listhesis", "slip"), ("height loss", "body_heights"), ("body height", "body_heights"),
               ("disc height", "disc_height"), ("cobb", "cobb"), ("canal", "canal_ap_diameter"),
               ("lordosis", "lordosis"), ("kyphosis", "kyphosis"))


def _as_spine(m: Any) -> SpineMeasurement:
    if isinstance(m, SpineMeasurement):
        return m
    name = str(m.name).lower()
    kind = next((k for word, k in _NAME_KINDS if word in name), "distance")
    return SpineMeasurement(kind, m.name, m.level, m.value, m.unit, method="user:measurements file")


def _fmt(value: float, unit: str) -> str:
    unit = {"deg": "°"}.get(unit, unit)
    sep = "" if unit in ("%", "°") else " "
    return f"{value:.1f}{sep}{unit}" if unit else f"{value:.3g}"


def _how(m: SpineMeasurement) -> str:
    return "automatic, approximate" if m.automatic else f"measured by {m.method.split(':', 1)[1]}"


def _genant(m: SpineMeasurement) -> dict:
    grade = int(m.details.get("grade", genant_grade(m.value)))
    label = m.details.get("grade_label") or GENANT[grade]
    hs = [m.details.get(k) for k in ("anterior_mm", "middle_mm", "posterior_mm")]
    heights = (" (anterior/middle/posterior " + "/".join(f"{h:.1f}" for h in hs) + " mm)") if all(hs) else ""
    verdict = ("a vertebral deformity consistent with a compression fracture" if grade else
               "no height loss that Genant's method counts as a fracture")
    return {"topic": "fracture", "scale": "Genant", "grade": str(grade), "grade_label": label, "positive": grade >= 1,
                "text": f"{m.level} body height loss {_fmt(m.value, '%')}{heights}: {label}, {verdict}"}


def _meyerding(m: SpineMeasurement) -> dict:
    reading = slip_class(m.value, m.automatic)  # the same reading as the views' labels
    if reading == "within precision":
        return {"topic": "listhesis", "scale": "Meyerding", "grade": "none", "grade_label": "no slip beyond the automatic "
                    f"measurement's precision (±{AUTO_SLIP_PRECISION:g} %)", "positive": False,
                    "text": f"{m.level} slip {_fmt(m.value, '%')}: within the automatic measurement's precision "
                         f"(±{AUTO_SLIP_PRECISION:g} %), no slip stated"}
    if reading == "retrolisthesis":
        return {"topic": "listhesis", "scale": "Meyerding", "grade": "retrolisthesis", "grade_label": "retrolisthesis, "
                    "not graded by Meyerding", "positive": True,
                    "text": f"{m.level} retrolisthesis of {_fmt(-m.value, '%')} (not graded by Meyerding)"}
    grade = meyerding_grade(m.value)
    label = MEYERDING[grade]
    return {"topic": "listhesis", "scale": "Meyerding", "grade": ROMAN[grade], "grade_label": label, "positive": grade >= 1,
                "text": f"{m.level} slip {_fmt(m.value, '%')}: {label}"}


def _cobb(m: SpineMeasurement) -> dict:
    plane = str(m.details.get("plane", ""))
    if plane == "sagittal":
        return {"topic": "alignment", "text": f"{m.level or ''} sagittal Cobb angle {_fmt(m.value, 'deg')}".strip()}
    v = abs(m.value)
    grade = "none" if v < 10 else "mild" if v <= 25 else "moderate" if v <= 40 else "severe"
    label = "no scoliosis (under 10°, SRS definition)" if grade == "none" else f"{grade} scoliosis curve"
    return {"topic": "scoliosis", "scale": "Cobb angle severity (SRS: 10° defines scoliosis)", "grade": grade,
                "grade_label": label, "positive": grade != "none",
                "text": f"{m.level or 'curve'} Cobb angle {_fmt(m.value, 'deg')}: {label}"}


def _canal(m: SpineMeasurement) -> dict:
    region = (m.level or " ")[0].upper()
    limits = {"L": (10.0, 12.0, "Verbiest"), "C": (10.0, 13.0, "cervical canal thresholds")}.get(region)
    if limits is None:
        return {"topic": "canal_stenosis", "text": f"{m.level} AP canal diameter {_fmt(m.value, 'mm')} "
                                                 "(no published threshold used at this region)"}
    absolute, relative, name = limits
    grade = "absolute stenosis" if m.value < absolute else "relative stenosis" if m.value < relative else "none"
    label = (f"bony canal {grade} (under {absolute if grade == 'absolute stenosis' else relative:g} mm, {name})"
             if grade != "none" else f"no bony canal stenosis (above the {relative:g} mm threshold, {name})")
    return {"topic": "canal_stenosis", "scale": name, "grade": grade, "grade_label": label, "positive": grade != "none",
                "text": f"{m.level} AP canal diameter {_fmt(m.value, 'mm')}: {label}"}


def _disc(m: SpineMeasurement, discs: dict[str, float]) -> dict:
    from core.spine.anatomy import STANDARD

    upper, lower = m.level.split("-") if m.level and "-" in m.level else (None, None)
    nbrs = []
    if upper and lower and STANDARD.has(upper) and STANDARD.has(lower):
        above, below = STANDARD.disc_above(upper), STANDARD.disc_below(lower)
        nbrs = [discs[d] for d in (above, below) if d in discs]
    if not nbrs:
        return {"topic": "disc_height", "text": f"{m.level} disc height {_fmt(m.value, 'mm')} (no measured "
                                              "neighbouring disc to compare with: no loss stated)"}
    ref = sum(nbrs) / len(nbrs)
    loss = max(0.0, (1 - m.value / ref) * 100)
    reduced = loss >= DISC_LOSS_REDUCED
    label = "reduced" if reduced else "not reduced"
    return {"topic": "disc_height", "scale": f"loss against the neighbouring discs ({DISC_LOSS_REDUCED:g} % or more: "
                "reduced; a workstation threshold, not a published grade)", "grade": label,
                "grade_label": f"disc height {label}", "positive": reduced,
                "text": f"{m.level} disc height {_fmt(m.value, 'mm')}, {loss:.0f} % below the mean of its measured "
                     f"neighbours ({ref:.1f} mm): {label}"}


def _fact_id(kind: str, level: str | None, taken: set[str]) -> str:
    short = {"body_heights": "genant", "slip": "meyerding", "canal_ap_diameter": "canal", "disc_height": "disc"}
    base = f"F-{short.get(kind, kind)}" + (f"-{level}" if level else "")
    fid, n = base, 2
    while fid in taken:
        fid, n = f"{base}-{n}", n + 1
    taken.add(fid)
    return fid


def build_facts(measurements: Iterable[Any] = (), levels_in_view: Iterable[str] = (), modality: str = "",
                sees_images: bool = False, labelling_note: str = "") -> FactSheet:
    """The fact sheet of a series (see the module text). Manual measurements come before automatic ones."""
    ms = sorted((m for m in map(_as_spine, measurements) if m.is_finding), key=lambda m: m.automatic)
    levels = list(levels_in_view)
    sheet = FactSheet(levels_in_view=levels, modality=modality, sees_images=sees_images)
    taken: set[str] = set()
    if levels:
        sheet.facts.append(Fact(_fact_id("levels", None, taken), "levels", "levels", None, None, "", labelling_note
                                or "labelling", text="Levels in view: " + ", ".join(levels)
                                + (f" ({labelling_note})" if labelling_note else "")))
    discs = {m.level: m.value for m in ms if m.kind == "disc_height" and m.level}
    for m in ms:
        if m.kind == "body_heights":
            extra = _genant(m)
        elif m.kind == "slip":
            extra = _meyerding(m)
        elif m.kind == "cobb":
            extra = _cobb(m)
        elif m.kind == "canal_ap_diameter":
            extra = _canal(m)
        elif m.kind == "disc_height":
            extra = _disc(m, discs)
        elif m.kind in ("lordosis", "kyphosis"):
            extra = {"topic": "alignment", "text": f"{m.name} {m.level or ''} {_fmt(m.value, m.unit)} "
                                                 "(measured value, no grade)"}
        else:
            extra = {"topic": "", "text": f"{m.level + ' ' if m.level else ''}{m.name} {_fmt(m.value, m.unit)}"}
        extra["text"] += f" [{_how(m)}]"
        sheet.facts.append(Fact(_fact_id(m.kind, m.level, taken), m.kind, level=m.level, value=round(m.value, 2),
                                unit=m.unit, method=m.method, measurement_id=m.id, **extra))
    if not sees_images:
        for t in IMAGE_ONLY:
            if t.name in ("modic", "degeneration") and modality.upper() not in ("MR", ""):
                sheet.not_assessed.append(NotAssessed(t.name, t.what, f"MRI: not shown by {modality}"))
            else:
                sheet.not_assessed.append(NotAssessed(t.name, t.what, t.needs() + " (this model does not see them)"))
        measured = {(f.topic, f.level) for f in sheet.facts}
        for name in ("fracture", "listhesis", "canal_stenosis", "disc_height"):
            t = TOPICS[name]
            missing = [lv for lv in levels if (is_disc(lv) == (name != "fracture")) and (name, lv) not in measured]
            if missing:
                sheet.not_assessed.append(NotAssessed(name, t.what, f"{t.measure} (not measured at "
                                                                    f"{', '.join(missing)})"))
    return sheet
