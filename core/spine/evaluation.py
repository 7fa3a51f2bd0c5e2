"""Scoring a labelling against reference positions: identification rate and localisation error (VerSe style).

Identification (Sekuboyina et al., VerSe 2019/2020): a reference vertebra counts as identified when a predicted
vertebra of the same name exists, lies within 20 mm of it, and of all reference vertebrae it is closest to this
one. The rate is over all reference vertebrae. The localisation error is the mean distance between each reference
vertebra and the predicted vertebra of the same name (over the references that have one).

With references on the spinal cord (SCT) only the component along the spine's long axis is compared, since the
cord lies 10-20 mm behind the vertebral bodies a labeller reports.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.spine.labelling import SpineLabelling
from core.spine.reference import ReferenceSet

MAX_DISTANCE_MM = 20.0


@dataclass
class LevelScore:
    name: str
    reference: tuple[float, float, float]
    predicted: tuple[float, float, float] | None
    distance_mm: float | None  # to the predicted vertebra of the same name
    closest_reference: str | None  # the reference vertebra the prediction of this name is closest to
    identified: bool
    nearest_detection_mm: float | None  # to the nearest predicted vertebra whatever its name


@dataclass
class Evaluation:
    levels: list[LevelScore]
    identification_rate: float
    localisation_error_mm: float | None
    detection_error_mm: float | None
    along_axis: bool
    n_predicted: int
    n_named: int
    notes: list[str] = field(default_factory=list)
    confirmed: tuple[str, float, float | None] | None = None  # (level confirmed, rate, error) - see confirm_one


def _axes(points: dict[str, tuple[float, float, float]]) -> dict[str, np.ndarray]:
    """Unit spine direction at each reference point from its neighbours in spine order (S when alone)."""
    names = list(points)
    arr = np.array([points[n] for n in names], dtype=float)
    out = {}
    for i, name in enumerate(names):
        if len(names) < 2:
            axis = np.array([0.0, 0.0, 1.0])
        else:
            axis = arr[max(i - 1, 0)] - arr[min(i + 1, len(names) - 1)]  # cranial minus caudal
        norm = np.linalg.norm(axis)
        out[name] = axis / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
    return out


def evaluate(prediction: SpineLabelling, reference: ReferenceSet,
             max_distance_mm: float = MAX_DISTANCE_MM, confirm: bool = True) -> Evaluation:
    """Score ``prediction``; with ``confirm`` also the semi-automatic figure (:func:`confirm_one`)."""
    refs = reference.points
    along = reference.on_cord
    axes = _axes(refs) if along else {}
    predicted = prediction.centroids()
    all_pred = np.array([v.centroid for v in prediction.vertebrae], dtype=float).reshape(-1, 3)

    def dist(p, ref_name: str) -> float:
        d = np.asarray(p, dtype=float) - np.asarray(refs[ref_name], dtype=float)
        return float(abs(d @ axes[ref_name])) if along else float(np.linalg.norm(d))

    levels = []
    for name, ref in refs.items():
        p = predicted.get(name)
        d = closest = None
        identified = False
        if p is not None:
            d = dist(p, name)
            closest = min(refs, key=lambda other: dist(p, other))
            identified = closest == name and d <= max_distance_mm
        nearest = min((dist(q, name) for q in all_pred), default=None)
        levels.append(LevelScore(name, ref, p, d, closest, identified, nearest))
    n = len(levels)
    matched = [s.distance_mm for s in levels if s.distance_mm is not None]
    nearest = [s.nearest_detection_mm for s in levels if s.nearest_detection_mm is not None]
    notes = list(reference.notes)
    confirmed = confirm_one(prediction, reference, max_distance_mm) if confirm else None
    if along:
        notes.append("reference labels are on the spinal cord, behind the vertebral bodies: positions are compared "
                     "along the spine's long axis only")
    return Evaluation(
        levels=levels,
        identification_rate=sum(s.identified for s in levels) / n if n else 0.0,
        localisation_error_mm=float(np.mean(matched)) if matched else None,
        detection_error_mm=float(np.mean(nearest)) if nearest else None,
        along_axis=along,
        n_predicted=len(prediction.vertebrae),
        n_named=len(predicted),
        notes=notes,
        confirmed=confirmed,
    )


def confirm_one(prediction: SpineLabelling, reference: ReferenceSet,
                max_distance_mm: float = MAX_DISTANCE_MM) -> tuple[str, float, float | None] | None:
    """The semi-automatic figure: identification rate and localisation error after the user confirms one level.

    The reference vertebra with the nearest detection is the one a user would confirm: that detection is named
    after it and the others renamed along the spine (:meth:`SpineLabelling.renamed_from`). None when there is no
    detection. This measures the detection and the order of the vertebrae, not the automatic naming.
    """
    if not prediction.vertebrae or not reference.points:
        return None
    pts = np.array([v.centroid for v in prediction.vertebrae], dtype=float)
    best = None
    for name, ref in reference.points.items():
        d = np.linalg.norm(pts - np.asarray(ref, dtype=float), axis=1)
        if reference.on_cord:
            axis = _axes(reference.points)[name]
            d = np.abs((pts - np.asarray(ref, dtype=float)) @ axis)
        i = int(np.argmin(d))
        if best is None or d[i] < best[2]:
            best = (name, i, float(d[i]))
    name, index, _ = best
    try:
        renamed = prediction.renamed_from(index, name, user="evaluation", configuration=reference.configuration)
    except ValueError:
        return None
    ev = evaluate(renamed, reference, max_distance_mm, confirm=False)
    return name, ev.identification_rate, ev.localisation_error_mm


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def format_report(ev: Evaluation) -> str:
    """The text `spinemed levels eval` prints: rate, error, then one row per reference vertebra."""
    loc = ev.localisation_error_mm
    lines = [f"identification rate: {ev.identification_rate:.2f}"]
    if loc is None and ev.detection_error_mm is not None:
        lines.append(f"localisation error mm: {ev.detection_error_mm:.1f}")
        lines.append("note: no predicted vertebra carries a reference name: the localisation error above is to the "
                     "nearest (unnamed) detection")
    else:
        lines.append(f"localisation error mm: {_fmt(loc)}")
    lines.append(f"detection error mm (nearest detection, any name): {_fmt(ev.detection_error_mm)}")
    lines.append(f"predicted vertebrae: {ev.n_predicted} ({ev.n_named} named); reference vertebrae: {len(ev.levels)}")
    if ev.confirmed is not None:
        name, rate, err = ev.confirmed
        lines.append(f"semi-automatic (the user confirms {name} on the nearest detection, the others follow): "
                     f"identification rate {rate:.2f}, localisation error mm {_fmt(err)}")
    if ev.along_axis:
        lines.append("distances: along the spine's long axis (reference on the spinal cord)")
    for note in ev.notes:
        lines.append(f"note: {note}")
    lines.append("")
    lines.append(f"{'level':<6} {'identified':<10} {'error mm':>8} {'nearest mm':>10}  closest ref  predicted (LPS mm)")
    for s in ev.levels:
        pred = "-" if s.predicted is None else "(" + ", ".join(f"{c:.1f}" for c in s.predicted) + ")"
        lines.append(f"{s.name:<6} {'yes' if s.identified else 'no':<10} {_fmt(s.distance_mm):>8} "
                     f"{_fmt(s.nearest_detection_mm):>10}  {s.closest_reference or '-':<11}  {pred}")
    return "\n".join(lines)
