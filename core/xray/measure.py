"""Measurements on projection radiographs, in the image plane: distance, angle and Cobb angle, with the scale said.

A radiograph is a projection: there is no patient coordinate system to measure in, only the image plane. Lengths
are in millimetres when a scale is known, else in pixels, and every value says which scale it used:

- ``PixelSpacing`` (DICOM): spacing calibrated by the modality to the patient, usually at the plane of the
  anatomy; ``PixelSpacingCalibrationType``/``Description`` say how when present.
- ``ImagerPixelSpacing`` (DICOM): spacing **at the detector**. The X-ray beam diverges, so the anatomy is projected
  magnified (typically by 5-20 % for a spine radiograph, more the farther it lies from the detector): lengths read
  larger than in the patient. When ``EstimatedRadiographicMagnificationFactor`` is present the spacing is divided by
  it (an estimate for the plane the modality assumed).
- a user calibration: a known length (a calibration ball's diameter, a ruler) drawn on the image; valid in the plane
  of that object only.
- none: pixels.

Angles do not depend on the scale (for square pixels), only on the projection: a rotated patient or an oblique
beam changes them, as it does on film. The Cobb angle is taken between the two endplate lines, each oriented left to
right first, so curves over 90 degrees keep their size (as :func:`core.spine.measure.cobb_angle` does in 3D).
Values are decision support, to be checked by a clinician.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MAGNIFICATION_NOTE = ("at the detector, not corrected for the beam's magnification: lengths read larger than in "
                      "the patient (typically by 5-20 %)")


@dataclass(frozen=True)
class Calibration:
    """Millimetres per pixel along image columns (x) and rows (y), or none; ``source`` says where it came from."""

    mm_per_px_x: float | None = None
    mm_per_px_y: float | None = None
    source: str = "none"          # "PixelSpacing", "ImagerPixelSpacing", "ImagerPixelSpacing/magnification",
    note: str = "no scale: pixels"  # "user calibration" or "none"

    @property
    def calibrated(self) -> bool:
        return self.mm_per_px_x is not None and self.mm_per_px_y is not None

    @property
    def unit(self) -> str:
        return "mm" if self.calibrated else "px"

    def describe(self) -> str:
        if not self.calibrated:
            return "pixels (no calibration)"
        if self.source == USER_SOURCE:
            return f"calibrated by user: {self.mm_per_px_x:.4g} x {self.mm_per_px_y:.4g} mm/px, {self.note}"
        return f"{self.source}: {self.mm_per_px_x:.4g} x {self.mm_per_px_y:.4g} mm/px, {self.note}"

    def words(self) -> str:
        """The scale in a few words, for a value's short form (chat context, report)."""
        return {"PixelSpacing": "mm from PixelSpacing",
                "ImagerPixelSpacing": "mm from ImagerPixelSpacing, at the detector (magnified)",
                "ImagerPixelSpacing/magnification": "mm from ImagerPixelSpacing / estimated magnification",
                USER_SOURCE: "mm calibrated by user"}.get(self.source or "", "pixels, no scale")


NO_CALIBRATION = Calibration()


def _pair(value) -> tuple[float, float] | None:
    try:
        vals = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if len(vals) != 2 or not all(math.isfinite(v) and v > 0 for v in vals):
        return None
    return vals[0], vals[1]


def calibration_from_dicom(ds) -> Calibration:
    """The scale of a projection radiograph from its DICOM header (a pydicom Dataset)."""
    ps = _pair(ds.get("PixelSpacing"))
    ips = _pair(ds.get("ImagerPixelSpacing"))
    if ps:
        row, col = ps
        kind = str(ds.get("PixelSpacingCalibrationType", "") or "").strip()
        desc = str(ds.get("PixelSpacingCalibrationDescription", "") or "").strip()
        note = "calibrated by the modality"
        if kind or desc:
            note += f" ({', '.join(x for x in (kind, desc) if x)})"
        elif ips and np.allclose(ps, ips):
            note = "equal to ImagerPixelSpacing: probably " + MAGNIFICATION_NOTE
        return Calibration(col, row, "PixelSpacing", note)
    if ips:
        row, col = ips
        try:
            factor = float(ds.get("EstimatedRadiographicMagnificationFactor", 0) or 0)
        except (TypeError, ValueError):
            factor = 0.0
        if factor > 0 and factor != 1.0:
            return Calibration(col / factor, row / factor, "ImagerPixelSpacing/magnification",
                               f"detector spacing divided by the estimated magnification factor {factor:g} "
                               "(an estimate, valid in one plane)")
        return Calibration(col, row, "ImagerPixelSpacing", MAGNIFICATION_NOTE)
    return NO_CALIBRATION


def calibration_for_volume(volume) -> Calibration:
    """The scale of a radiograph as loaded (core.studies Volume): from the DICOM header of its first file, or none
    for PNG/JPEG (no spacing) and anything unreadable."""
    from core.xray.header import radiograph_header

    ds = radiograph_header(volume)
    return NO_CALIBRATION if ds is None else calibration_from_dicom(ds)


def calibration_from_known_length(p0, p1, length_mm: float, pixel_aspect: float = 1.0) -> Calibration:
    """A user calibration: the segment p0-p1 (image pixels) is ``length_mm`` long.

    ``pixel_aspect`` is the pixel's height / width (1 for square pixels, or row/column spacing from the header)."""
    if not (length_mm > 0 and math.isfinite(length_mm)):
        raise ValueError(f"the known length must be a positive number of millimetres, got {length_mm}")
    d = np.asarray(p1, float) - np.asarray(p0, float)
    px = math.hypot(d[0], d[1] * pixel_aspect)       # in units of the pixel width
    if px < 2:
        raise ValueError("the calibration segment is shorter than 2 pixels: draw it along the whole known length")
    mm_x = length_mm / px
    return Calibration(mm_x, mm_x * pixel_aspect, USER_SOURCE,
                       f"{length_mm:g} mm over {px:.1f} px, valid in the plane of the calibration object")


USER_SOURCE = "user calibration"
CALIBRATION_SOURCE = "xray-calibration"     # details['source'] of the stored calibration


def calibration_measurement(p0, p1, length_mm: float, display_points=(), user: str = "user",
                            pixel_aspect: float = 1.0):
    """The stored form of a user calibration (kept with the study's measurements, so a reopened radiograph keeps
    its scale): kind ``calibration``, value the known length in mm, the two image points and the scale in
    ``details``. Raises ValueError for a length or segment that cannot calibrate."""
    from core.spine.measure.measurement import SpineMeasurement

    cal = calibration_from_known_length(p0, p1, length_mm, pixel_aspect)
    return SpineMeasurement(
        kind="calibration", name="scale calibration (known length)", level=None, value=float(length_mm), unit="mm",
        points=list(display_points), method=f"user:{user}",
        details={"source": CALIBRATION_SOURCE, "image_points_px": [list(map(float, p0)), list(map(float, p1))],
                 "pixel_aspect": float(pixel_aspect), "mm_per_px_x": cal.mm_per_px_x,
                 "mm_per_px_y": cal.mm_per_px_y, "plane": "radiograph image plane", "scale": cal.describe(),
                 "scale_source": USER_SOURCE})


def calibration_from_measurements(measurements) -> Calibration | None:
    """The latest user calibration among stored measurements (rebuilt from its points and length), or None."""
    found = None
    for m in measurements:
        if m.kind != "calibration" or m.details.get("source") != CALIBRATION_SOURCE:
            continue
        try:
            p0, p1 = m.details["image_points_px"]
            found = calibration_from_known_length(p0, p1, m.value, float(m.details.get("pixel_aspect", 1.0)))
        except (KeyError, ValueError, TypeError):
            continue        # a damaged record is skipped, not fatal
    return found


def effective_calibration(volume, measurements=()) -> Calibration:
    """The scale measurements on this radiograph use: the user's calibration when there is one (it also corrects
    the beam's magnification in the plane of the calibration object), else the DICOM header's, else none."""
    return calibration_from_measurements(measurements) or calibration_for_volume(volume)


def recalibrated(m, calibration: Calibration):
    """A stored image-plane distance, angle, Cobb, slip or SVA measurement measured again with ``calibration``
    (same points, same id and provenance); anything else is returned unchanged."""
    pts = m.details.get("image_points_px")
    if m.details.get("plane") != "radiograph image plane" or not pts:
        return m
    if m.kind in ("slip", "sva"):
        from core.xray.sagittal import remeasured

        return remeasured(m, calibration)
    if m.kind not in ("distance", "angle", "cobb"):
        return m
    if m.kind == "distance":
        pm = distance(pts[0], pts[1], calibration)
    elif m.kind == "angle":
        pm = angle(pts[0], pts[1], pts[2], calibration)
    else:
        pm = cobb((pts[0], pts[1]), (pts[2], pts[3]), calibration)
    new = pm.to_spine_measurement(level=m.level, method=m.method, display_points=m.points)
    new.name, new.created, new.id = m.name, m.created, m.id
    new.details = {**m.details, **new.details}
    return new


@dataclass
class ProjectionMeasurement:
    kind: str                                  # "distance", "angle", "cobb"
    value: float
    unit: str                                  # "mm", "px", "deg"
    points: list[tuple[float, float]]          # image pixels (x, y)
    calibration: Calibration = NO_CALIBRATION
    label: str = ""
    details: dict = field(default_factory=dict)

    def text(self) -> str:
        """The value with its scale, e.g. '42.1 mm (ImagerPixelSpacing: at the detector, ...)' or '312 px (no
        calibration)'."""
        if self.unit == "deg":
            return f"{self.value:.1f}° (image plane)"
        if self.unit == "px":
            return f"{self.value:.0f} px (no calibration)"
        if self.calibration.source == USER_SOURCE:
            return f"{self.value:.1f} mm (calibrated by user: {self.calibration.note})"
        return f"{self.value:.1f} mm ({self.calibration.source}: {self.calibration.note})"

    def to_spine_measurement(self, level: str | None = None, method: str = "user:user", display_points=()):
        """The stored form. Image points go in ``details``; ``points`` are only ``display_points`` (the clicks in
        the viewer's frame of the image, to draw it again), since a projection has no patient millimetres."""
        from core.spine.measure.measurement import SpineMeasurement

        names = {"distance": "distance", "angle": "angle", "cobb": "Cobb angle"}
        details = {"image_points_px": [list(p) for p in self.points], "plane": "radiograph image plane",
                   "scale": self.calibration.describe(), "scale_source": self.calibration.source, **self.details}
        if self.unit != "deg":  # the chat and the report see the scale with the value (to_context)
            details.setdefault("grade_label", self.calibration.words())
        return SpineMeasurement(kind=self.kind, name=self.label or names.get(self.kind, self.kind), level=level,
                                value=self.value, unit=self.unit, points=list(display_points), method=method,
                                details=details)


def _pts(*points) -> list[np.ndarray]:
    out = [np.asarray(p, dtype=float).reshape(2) for p in points]
    if not all(np.all(np.isfinite(p)) for p in out):
        raise ValueError("a point is not finite")
    return out


def distance(p0, p1, calibration: Calibration = NO_CALIBRATION) -> ProjectionMeasurement:
    a, b = _pts(p0, p1)
    d = b - a
    if calibration.calibrated:
        value = math.hypot(d[0] * calibration.mm_per_px_x, d[1] * calibration.mm_per_px_y)
    else:
        value = math.hypot(d[0], d[1])
    return ProjectionMeasurement("distance", value, calibration.unit, [tuple(a), tuple(b)], calibration)


def _scaled(v: np.ndarray, calibration: Calibration) -> np.ndarray:
    if calibration.calibrated:       # non-square pixels change angles: measure in mm
        return v * np.array([calibration.mm_per_px_x, calibration.mm_per_px_y])
    return v


def angle(a, vertex, b, calibration: Calibration = NO_CALIBRATION) -> ProjectionMeasurement:
    """The angle a-vertex-b, 0..180 degrees."""
    pa, pv, pb = _pts(a, vertex, b)
    u, w = _scaled(pa - pv, calibration), _scaled(pb - pv, calibration)
    if np.hypot(*u) == 0 or np.hypot(*w) == 0:
        raise ValueError("an arm of the angle has zero length")
    value = math.degrees(math.atan2(abs(u[0] * w[1] - u[1] * w[0]), float(u @ w)))
    return ProjectionMeasurement("angle", value, "deg", [tuple(pa), tuple(pv), tuple(pb)], calibration)


def line_tilt(p0, p1, calibration: Calibration = NO_CALIBRATION) -> float:
    """Tilt of a line in degrees, positive when it rises towards the image's right; oriented left to right."""
    a, b = _pts(p0, p1)
    d = _scaled(b - a, calibration)
    if np.hypot(*d) == 0:
        raise ValueError("a line has two coincident points")
    if d[0] < 0:
        d = -d
    return math.degrees(math.atan2(-d[1], d[0]))


def cobb(line1, line2, calibration: Calibration = NO_CALIBRATION) -> ProjectionMeasurement:
    """Cobb angle between two endplate lines (each two image points), 0..180 degrees."""
    (a0, a1), (b0, b1) = line1, line2
    t1, t2 = line_tilt(a0, a1, calibration), line_tilt(b0, b1, calibration)
    points = [tuple(p) for p in _pts(a0, a1, b0, b1)]
    return ProjectionMeasurement("cobb", abs(t1 - t2), "deg", points, calibration,
                                 details={"tilts_deg": [t1, t2]})
