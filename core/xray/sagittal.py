"""Slip and sagittal balance on a lateral radiograph, in the image plane, from points the user clicks.

- **Slip** (spondylolisthesis, Meyerding HW, Surg Gynecol Obstet 1932): the posterior-inferior corner of the slipped
  vertebra is dropped perpendicularly on the lower vertebra's superior endplate (posterior corner -> anterior
  corner); the slip is the distance of that foot from the posterior corner as a percentage of the endplate's length,
  graded I-IV by quarters and V (spondyloptosis) beyond 100 %. A ratio: it holds without a scale. The formula and the
  grading are those of :mod:`core.spine.measure.geometry` (``slip_percent``, ``meyerding_grade``, ``slip_class``),
  applied to the image points in millimetres (pixels when the image has no scale).
- **Sagittal vertical axis (SVA)**: the horizontal offset of the C7 plumb line (dropped from the centre of the C7
  body) from the posterior-superior corner of S1; positive when the plumb line falls anterior to S1. It is defined on
  a standing full-length lateral radiograph; "horizontal" is along the image rows (the film assumed upright) unless
  a true vertical is given (two image points on a plumb line or vertical marker, stored as a set-up measurement by
  :func:`vertical_measurement`). Which side of the image is
  anterior comes from the DICOM header (``PatientOrientation``: its first value is the patient direction of the
  image's rows, towards the right) or from the user. Graded by the SRS-Schwab adult spinal deformity classification
  (Schwab F et al., Spine 2012;37:1077-82) global alignment modifier: 0 below 40 mm, + 40 to 95 mm, ++ above 95 mm.
  Millimetres need a scale (:mod:`core.xray.measure`); with ImagerPixelSpacing the offset reads magnified.

- **Lumbar lordosis and thoracic kyphosis** (Cobb method, as on the sagittal view of a CT or MR): the image points
  are turned into sagittal-plane points by the anterior side (:func:`sagittal_points`), so the signs hold whichever
  way the patient faces.

Decision support, to be checked by a clinician.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.spine.measure.geometry import MEYERDING, meyerding_grade, slip_percent
from core.xray.header import radiograph_header
from core.xray.measure import NO_CALIBRATION, Calibration

PLANE = "radiograph image plane"
FILM = "standing full-length lateral radiograph"
SCHWAB_SVA = "SRS-Schwab classification (Schwab et al., Spine 2012): SVA modifier 0 < 40 mm, + 40-95 mm, ++ > 95 mm"
MIN_PX = 2.0


@dataclass(frozen=True)
class Facing:
    """Which image side the patient faces: ``sign`` +1 anterior = image right (increasing columns), -1 = image left;
    ``source`` says who said so."""

    sign: int
    source: str

    @property
    def side(self) -> str:
        return "right" if self.sign > 0 else "left"

    def describe(self) -> str:
        return f"anterior = image {self.side} ({self.source})"


def facing_from_orientation(orientation) -> Facing | None:
    """From DICOM PatientOrientation (two codes, e.g. ``["A", "F"]``): the first is the direction of the rows
    (towards the image's right). None when it names neither anterior nor posterior (e.g. an AP view)."""
    try:
        row, col = (str(v).strip().upper() for v in orientation)
    except (TypeError, ValueError):
        return None
    if ("A" in row) == ("P" in row):
        return None
    return Facing(1 if "A" in row else -1, f"PatientOrientation {row}\\{col}")


def facing_for_volume(volume) -> Facing | None:
    """Which side is anterior by the DICOM header of a loaded radiograph; None for PNG/JPEG or a header without it."""
    ds = radiograph_header(volume)
    if ds is None:
        return None
    value = ds.get("PatientOrientation")
    return facing_from_orientation(value) if value else None


def frontal_view(volume) -> str:
    """'' unless the DICOM header of a loaded radiograph says it is a frontal (AP or PA) view, where slip, SVA and
    pelvic parameters are not defined: then why (ViewPosition, or PatientOrientation rows running left-right)."""
    ds = radiograph_header(volume)
    if ds is None:
        return ""
    view = str(ds.get("ViewPosition", "") or "").strip().upper()
    if view in ("AP", "PA"):
        return f"the header says this is an {view} view (ViewPosition {view})"
    orientation = [str(v).strip().upper() for v in (ds.get("PatientOrientation") or [])]
    if len(orientation) == 2 and orientation[0] in ("L", "R"):
        return f"the header says this is a frontal view (PatientOrientation {orientation[0]}\\{orientation[1]})"
    return ""


def _pts(points, names) -> list[np.ndarray]:
    out = [np.asarray(p, float).reshape(2) for p in points]
    for p, name in zip(out, names):
        if not np.all(np.isfinite(p)):
            raise ValueError(f"{name} is not a finite image point")
    return out


def _mm(v: np.ndarray, calibration: Calibration) -> np.ndarray:
    if calibration.calibrated:
        return v * np.array([calibration.mm_per_px_x, calibration.mm_per_px_y])
    return v


def _scale_details(calibration: Calibration) -> dict:
    return {"plane": PLANE, "scale": calibration.describe(), "scale_source": calibration.source}


# --- slip ------------------------------------------------------------------------------------------------------
def radiograph_slip(upper_posterior_inferior, lower_posterior_superior, lower_anterior_superior,
                    calibration: Calibration = NO_CALIBRATION, level: str | None = None, display_points=(),
                    method: str = "user:user"):
    """The Meyerding slip (kind ``slip``, value in %) from three image points (pixels, x right, y down), in the
    click order of the slip tool. ValueError for a zero-length endplate."""
    from core.spine.measure.measurement import SpineMeasurement

    names = ("the upper vertebra's posterior-inferior corner", "the lower vertebra's posterior-superior corner",
             "the lower vertebra's anterior-superior corner")
    up, ps, as_ = _pts((upper_posterior_inferior, lower_posterior_superior, lower_anterior_superior), names)
    width_px = float(np.hypot(*(as_ - ps)))
    if width_px < MIN_PX:
        raise ValueError("the lower vertebra's endplate has zero length (its two corners are the same point): "
                         "click its posterior and then its anterior corner")
    up3, ps3, as3 = (np.append(_mm(q, calibration), 0.0) for q in (up, ps, as_))
    pct = slip_percent(up3, ps3, as3)
    grade = meyerding_grade(pct)
    name = "anterolisthesis" if pct > 0 else "retrolisthesis" if pct < 0 else "spondylolisthesis"
    length = float(np.linalg.norm(as3 - ps3))
    details = {"grade": grade, "grade_label": MEYERDING[grade] if pct >= 0 else "retrolisthesis, not graded",
               "image_points_px": [list(map(float, q)) for q in (up, ps, as_)], "view": "radiograph",
               "definition": "Meyerding 1932: translation along the lower superior endplate, % of its length",
               **_scale_details(calibration)}
    details["slip_mm" if calibration.calibrated else "slip_px"] = round(pct / 100.0 * length, 2)
    details["endplate_mm" if calibration.calibrated else "endplate_px"] = round(length, 2)
    return SpineMeasurement("slip", f"{name} slip", level, round(pct, 2), "%", list(display_points), method,
                            details=details)


# --- sagittal vertical axis ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SagittalVerticalAxis:
    value: float                 # mm (px without a scale); + = C7 plumb line anterior to S1
    unit: str
    foot_px: tuple[float, float]  # the plumb line's point level with S1 (image pixels), to draw it
    horizontal: str              # "image rows" or "perpendicular to the user's true vertical"

    def modifier(self) -> str | None:
        """The SRS-Schwab global alignment modifier ('0', '+', '++'); None without millimetres."""
        if self.unit != "mm":
            return None
        return "0" if self.value < 40.0 else "+" if self.value <= 95.0 else "++"


def sagittal_vertical_axis(c7_centre, s1_posterior_superior, facing: Facing,
                           calibration: Calibration = NO_CALIBRATION, vertical=None) -> SagittalVerticalAxis:
    """SVA from the C7 body's centre and S1's posterior-superior corner (image pixels, x right, y down).

    ``vertical``: two image points on a true vertical (either order), else the image columns are vertical."""
    c7, s1 = _pts((c7_centre, s1_posterior_superior), ("the C7 centre", "the S1 posterior-superior corner"))
    if facing is None or facing.sign not in (1, -1):
        raise ValueError("which side of the image is anterior is not known: choose it in the tool's options")
    if float(np.hypot(*(s1 - c7))) < MIN_PX:
        raise ValueError("the C7 centre and the S1 corner are the same point")
    down = np.array([0.0, 1.0])          # in millimetres (or square pixels), pointing to the feet
    horizontal = "image rows"
    if vertical is not None:
        v0, v1 = _pts(vertical, ("a true vertical point", "a true vertical point"))
        d = _mm(v1 - v0, calibration)
        if float(np.hypot(*(v1 - v0))) < MIN_PX:
            raise ValueError("the true vertical's two points are the same point")
        down = d / np.hypot(*d) * (1 if d[1] > 0 else -1)
        if down[1] < math.cos(math.radians(45)):
            raise ValueError("the true vertical is tilted more than 45° from the image columns")
        horizontal = "perpendicular to the user's true vertical"
    u = _mm(s1 - c7, calibration)
    if float(u @ down) <= 0:
        raise ValueError("the C7 centre must lie above S1 (a standing lateral film, head up)")
    anterior = np.array([down[1], -down[0]]) * facing.sign     # down turned to the right (+x) for sign +1
    value = float(-(u @ anterior))                              # C7 relative to S1, along anterior
    # the plumb line's point at S1's level: C7 moved along `down` by the vertical part of C7->S1, back in pixels
    foot_mm = (u @ down) * down
    scale = np.array([calibration.mm_per_px_x, calibration.mm_per_px_y]) if calibration.calibrated else np.ones(2)
    foot = c7 + foot_mm / scale
    return SagittalVerticalAxis(value, calibration.unit, (float(foot[0]), float(foot[1])), horizontal)


def sva_measurement(c7_centre, s1_posterior_superior, facing: Facing, calibration: Calibration = NO_CALIBRATION,
                    vertical=None, display_points=(), method: str = "user:user"):
    """The stored form: kind ``sva`` at C7-S1, value in mm (px without a scale), + = anterior; ``details`` say the
    side taken as anterior and why, the horizontal used, the scale, the film it holds on and the SRS-Schwab
    modifier (mm only)."""
    from core.spine.measure.measurement import SpineMeasurement

    sva = sagittal_vertical_axis(c7_centre, s1_posterior_superior, facing, calibration, vertical)
    mod = sva.modifier()
    label = (f"SRS-Schwab SVA modifier {mod}" if mod is not None else "not graded: no scale (pixels)")
    details = {"image_points_px": [list(map(float, q)) for q in (c7_centre, s1_posterior_superior)],
               "foot_px": list(sva.foot_px), "anterior_sign": facing.sign, "anterior_source": facing.source,
               "anterior": facing.describe(),
               "horizontal": sva.horizontal, "film": FILM, "reference": SCHWAB_SVA, "schwab_modifier": mod,
               "grade_label": f"{label}; + = C7 plumb line anterior to S1; {calibration.words()}; {FILM}",
               "view": "radiograph",
               "vertical_px": None if vertical is None else [list(map(float, q)) for q in vertical],
               **_scale_details(calibration)}
    return SpineMeasurement("sva", "sagittal vertical axis", "C7-S1", round(sva.value, 2), sva.unit,
                            list(display_points), method, details=details)


# --- lordosis and kyphosis --------------------------------------------------------------------------------------
def sagittal_points(points_px, facing: Facing, calibration: Calibration = NO_CALIBRATION) -> list[np.ndarray]:
    """Image points as points of the patient's sagittal plane (LPS mm, or pixels without a scale): the image's
    anterior side becomes A (-y), its rows' downward direction inferior (-z); so the sagittal conventions of
    :mod:`core.spine.measure.geometry` (lordosis, kyphosis) apply to a lateral radiograph whichever way it faces."""
    if facing is None or facing.sign not in (1, -1):
        raise ValueError("which side of the image is anterior is not known: choose it in the tool's options")
    out = []
    for q in _pts(points_px, [f"point {k + 1}" for k in range(len(points_px))]):
        x, y = _mm(q, calibration)
        out.append(np.array([0.0, -facing.sign * x, -y]))
    return out


def sagittal_cobb_measurement(kind: str, points_px, facing: Facing, calibration: Calibration = NO_CALIBRATION,
                              display_points=(), method: str = "user:user"):
    """Lumbar lordosis (kind ``lordosis``: two points on the L1 superior endplate, two on the S1 superior endplate)
    or thoracic kyphosis (``kyphosis``: T4 superior, T12 inferior) on a lateral radiograph, with the signs of the
    sagittal view (+ = lordosis / kyphosis); the Cobb method of :mod:`core.spine.measure.geometry`."""
    from core.spine.measure import geometry

    if len(points_px) != 4:
        raise ValueError("a sagittal Cobb angle takes two points on each of two endplates")
    for a, b in ((0, 1), (2, 3)):
        if float(np.hypot(*(np.asarray(points_px[b], float) - np.asarray(points_px[a], float)))) < MIN_PX:
            raise ValueError("an endplate line has zero length (its two points are the same point)")
    p = sagittal_points(points_px, facing, calibration)
    if kind == "lordosis":
        m = geometry.lordosis_measurement((p[0], p[1]), (p[2], p[3]), method=method)
    elif kind == "kyphosis":
        m = geometry.kyphosis_measurement((p[0], p[1]), (p[2], p[3]), method=method)
    else:
        raise ValueError(f"not a sagittal Cobb angle: {kind!r}")
    m.value = round(m.value, 2)
    m.points = [tuple(float(v) for v in np.asarray(q, float).reshape(3)) for q in display_points]
    m.details.update({"image_points_px": [list(map(float, q)) for q in points_px], "anterior_sign": facing.sign,
                      "anterior_source": facing.source, "anterior": facing.describe(), "view": "radiograph",
                      **_scale_details(calibration)})
    return m


# --- true vertical --------------------------------------------------------------------------------------------
VERTICAL_SOURCE = "xray-true-vertical"     # details['source'] of the stored true vertical


def vertical_measurement(p0, p1, display_points=(), method: str = "user:user"):
    """The stored form of a true vertical (two image points on a plumb line or the film's vertical marker): a set-up
    measurement (kind ``true_vertical``, never a patient finding), value its tilt from the image columns in degrees
    (+ when its lower end lies to the image's right). SVAs measured afterwards take their horizontal from it."""
    from core.spine.measure.measurement import SpineMeasurement

    a, b = _pts((p0, p1), ("a true vertical point", "a true vertical point"))
    d = b - a
    if float(np.hypot(*d)) < MIN_PX:
        raise ValueError("the true vertical's two points are the same point")
    if d[1] < 0:
        d = -d
    tilt = math.degrees(math.atan2(d[0], d[1]))
    if abs(tilt) > 45.0:
        raise ValueError(f"the true vertical is tilted {abs(tilt):.0f}° from the image columns (more than 45°): "
                         "click two points on a plumb line or the film's vertical marker")
    return SpineMeasurement("true_vertical", "true vertical (SVA reference)", None, round(tilt, 2), "deg",
                            list(display_points), method,
                            details={"source": VERTICAL_SOURCE, "plane": PLANE, "view": "radiograph",
                                     "vertical_px": [list(map(float, a)), list(map(float, b))]})


def vertical_from_measurements(measurements):
    """The image points of the latest stored true vertical, or None (the image columns are vertical)."""
    found = None
    for m in measurements:
        pts = m.details.get("vertical_px") if m.kind == "true_vertical" else None
        if pts is not None and len(pts) == 2:
            found = pts
    return found


def remeasured(m, calibration: Calibration):
    """A stored radiograph slip or SVA measured again with ``calibration`` (same points, id and provenance)."""
    pts = m.details["image_points_px"]
    if m.kind == "slip":
        new = radiograph_slip(*pts, calibration=calibration, level=m.level, display_points=m.points,
                               method=m.method)
    else:
        facing = Facing(int(m.details["anterior_sign"]), str(m.details.get("anterior_source", "")))
        new = sva_measurement(*pts, facing=facing, calibration=calibration, vertical=m.details.get("vertical_px"),
                              display_points=m.points, method=m.method)
    new.name, new.created, new.id = m.name, m.created, m.id
    stale = ("slip_mm", "slip_px", "endplate_mm", "endplate_px")       # in the old scale's unit
    new.details = {**{k: v for k, v in m.details.items() if k not in stale}, **new.details}
    return new
