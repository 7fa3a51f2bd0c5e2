"""Spine measurements on points in LPS patient millimetres (no Qt): geometry, clinical grades, and how each is taken.

All points are ``(x, y, z)`` in LPS mm (+x patient Left, +y Posterior, +z Superior), e.g. from
``Volume.voxel_to_patient``. Lines are two points ``(p0, p1)``. Every function raises ``ValueError`` on degenerate
input (coincident points, zero-length lines) rather than returning a meaningless number.

Conventions, stated once:

- **Cobb angle** (:func:`cobb_angle`): the angle between the two endplate lines, measured in the plane of
  measurement (coronal for scoliosis, sagittal for kyphosis/lordosis; by default chosen from the lines, see below).
  Each line's direction is first *oriented*: towards patient left (+x) in the coronal plane, towards posterior (+y)
  in the sagittal plane (if a line was drawn the other way it is reversed). The reported angle is the angle between
  the two oriented directions, 0..180 degrees. Because the directions are oriented, parallel endplates give 0 and a
  severe curve keeps its true size: endplates tilted +60 and -60 degrees give 120, never the 60 of its supplement.
  This holds for every endplate tilted less than 90 degrees from the plane's horizontal (left-right or
  anterior-posterior), i.e. any vertebra that is not lying on its side. Drawing perpendiculars to the
  endplates, as on film, gives the same value; they are not needed.
- **Sagittal tilt** of an endplate (:func:`endplate_tilt`): the elevation, in degrees, of its posterior end above its
  anterior end in the sagittal plane (LPS y-z): positive when the endplate descends anteriorly (as the S1 endplate
  does, sacral slope). Lordosis = tilt(lower) - tilt(upper); kyphosis = tilt(upper) - tilt(lower).
- **Lumbar lordosis** (:func:`lumbar_lordosis`): Cobb angle between the superior endplate of L1 and the superior
  endplate of S1, in the sagittal plane; positive = lordosis (concave posteriorly), negative = kyphotic alignment.
- **Thoracic kyphosis** (:func:`thoracic_kyphosis`): Cobb angle between the superior endplate of T4 (or of T5, the
  SRS convention when T4 is hidden by the shoulders; the level is recorded) and the inferior endplate of T12;
  positive = kyphosis (convex posteriorly).
- **Spondylolisthesis** (:func:`slip_percent`, Meyerding): the distance, along the lower vertebra's superior
  endplate, from its posterior-superior corner to the posterior-inferior corner of the vertebra above, as a
  percentage of the endplate's anterior-posterior length; positive = anterolisthesis, negative = retrolisthesis.
  Grades (:func:`meyerding_grade`): 0 for no anterior slip (<= 0 %), I for (0, 25], II (25, 50], III (50, 75],
  IV (75, 100], V > 100 (spondyloptosis): a boundary value belongs to the lower grade. Retrolisthesis is not graded.
- **Vertebral body heights** (:func:`body_heights`): anterior, middle and posterior heights, each the distance
  between corresponding points on the superior and inferior endplates (optionally projected on the spine axis).
  **Height loss** (:func:`height_loss`, Genant semi-quantitative): each height's reduction relative to a reference
  height: the expected height given by the caller (e.g. the posterior height of the adjacent normal vertebrae),
  else the largest of the vertebra's own three heights (which cannot see a uniform crush). Loss = the largest
  reduction. Grade 0: < 20 %; 1 (mild): 20 % <= loss < 25 %; 2 (moderate): 25 % <= loss <= 40 %; 3 (severe):
  > 40 %. Type: "wedge" when the anterior height is the most reduced, "biconcave" when the middle one is, "crush"
  when the posterior one is or when all three are reduced alike (within 5 points of each other). Percentages are
  compared after rounding to 1e-6 %, so geometry that is exactly on a boundary is graded as written here.
- **Disc height** (:func:`disc_height`): the mean of the anterior, middle and posterior heights (each the distance
  from the upper vertebra's inferior endplate to the lower vertebra's superior endplate, optionally along the disc
  normal). An automatic measurement that has only the middle height says so in its details.
- **AP canal diameter** (:func:`canal_ap_diameter`): at the mid-sagittal plane, from the posterior wall of the
  vertebral body (or disc) to the anterior edge of the lamina / ligamentum flavum, optionally projected on a given
  anterior-posterior direction.

:class:`~core.spine.measure.measurement.SpineMeasurement` (re-exported here) is the stored form; the ``*_measurement``
helpers build one from points with the right kind, name, unit and details.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.spine.measure.measurement import KINDS, SpineMeasurement, measurements_from_json, measurements_to_json  # noqa: F401

# --- planes ------------------------------------------------------------------------------------------------
# plane name -> (normal, orientation axis: the direction each line is turned towards)
PLANES = {
    "coronal": (np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])),  # orient towards patient left
    "sagittal": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])),  # orient towards posterior
    "axial": (np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])),  # orient towards patient left
}
_EPS = 1e-9


def _p(p) -> np.ndarray:
    a = np.asarray(p, dtype=float)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise ValueError(f"a point must be three finite LPS coordinates in mm, got {p!r}")
    return a


def _line(line) -> tuple[np.ndarray, np.ndarray]:
    if len(line) != 2:
        raise ValueError("a line is two points (p0, p1)")
    p0, p1 = _p(line[0]), _p(line[1])
    if np.linalg.norm(p1 - p0) < 1e-6:
        raise ValueError("the two points of a line coincide")
    return p0, p1


def _unit(v: np.ndarray, what: str = "vector") -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n < _EPS:
        raise ValueError(f"zero-length {what}")
    return v / n


def _angle_between(u: np.ndarray, v: np.ndarray) -> float:
    u, v = _unit(u), _unit(v)
    return float(np.degrees(np.arctan2(np.linalg.norm(np.cross(u, v)), float(u @ v))))


# --- basic geometry ----------------------------------------------------------------------------------------
def distance(p, q) -> float:
    """Euclidean distance in mm between two LPS points."""
    return float(np.linalg.norm(_p(p) - _p(q)))


def angle(a, vertex, b) -> float:
    """Angle in degrees (0..180) at ``vertex`` between the rays vertex->a and vertex->b."""
    v = _p(vertex)
    u, w = _p(a) - v, _p(b) - v
    if np.linalg.norm(u) < 1e-6 or np.linalg.norm(w) < 1e-6:
        raise ValueError("an angle's end points must differ from its vertex")
    return _angle_between(u, w)


def _plane(plane, d1: np.ndarray, d2: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """(normal or None, orientation axis) for a plane given by name, by a normal vector, or None (automatic)."""
    if isinstance(plane, str):
        try:
            return PLANES[plane]
        except KeyError:
            raise ValueError(f"unknown plane {plane!r}; use one of {', '.join(PLANES)} or a normal vector") from None
    if plane is not None:
        normal = _unit(np.asarray(plane, dtype=float), "plane normal")
        # orientation axis: left or posterior, whichever lies more in the plane
        cands = [PLANES["coronal"][1], PLANES["sagittal"][1]]
        axis = max(cands, key=lambda c: np.linalg.norm(c - (c @ normal) * normal))
        return normal, axis
    # automatic: the lines' own plane; oriented left-right if they run mostly left-right, else anterior-posterior
    lr = abs(d1[0]) + abs(d2[0])
    ap = abs(d1[1]) + abs(d2[1])
    return None, PLANES["coronal"][1] if lr >= ap else PLANES["sagittal"][1]


def _oriented(d: np.ndarray, axis: np.ndarray) -> np.ndarray:
    return -d if float(d @ axis) < 0 else d


def cobb_angle(line1, line2, plane: str | np.ndarray | None = None) -> float:
    """Cobb angle in degrees (0..180) between two endplate lines, each ``(p0, p1)`` in LPS mm.

    ``plane``: "coronal" (scoliosis), "sagittal" (kyphosis, lordosis), "axial", a plane normal vector, or None to
    measure in the plane the two lines span (the 3D angle between their directions), orienting them left-right
    when they run mostly left-right, else anterior-posterior. Each direction is projected on the plane and
    oriented towards patient left (coronal, axial) or posterior (sagittal) before the angle between them is taken,
    so severe curves over 90 degrees are reported as such (see the module text).
    """
    a0, a1 = _line(line1)
    b0, b1 = _line(line2)
    d1, d2 = a1 - a0, b1 - b0
    normal, axis = _plane(plane, d1, d2)
    if normal is not None:
        d1 = d1 - (d1 @ normal) * normal
        d2 = d2 - (d2 @ normal) * normal
        if np.linalg.norm(d1) < 1e-6 or np.linalg.norm(d2) < 1e-6:
            raise ValueError("a line is perpendicular to the plane of measurement: it has no direction there")
    return _angle_between(_oriented(d1, axis), _oriented(d2, axis))


def endplate_tilt(line) -> float:
    """Sagittal tilt in degrees (-90..90): elevation of the endplate's posterior end above its anterior end.

    Measured in the LPS y-z plane (the x component is ignored); positive when the endplate descends anteriorly.
    """
    p0, p1 = _line(line)
    d = p1 - p0
    d = _oriented(np.array([0.0, d[1], d[2]]), PLANES["sagittal"][1])
    if np.linalg.norm(d) < 1e-6:
        raise ValueError("the endplate line runs left-right only: it has no sagittal direction")
    return float(np.degrees(np.arctan2(d[2], d[1])))


def sagittal_cobb(upper_line, lower_line) -> float:
    """Signed sagittal Cobb angle, tilt(lower) - tilt(upper): positive = lordosis, negative = kyphosis."""
    return endplate_tilt(lower_line) - endplate_tilt(upper_line)


def lumbar_lordosis(l1_superior, s1_superior) -> float:
    """Lumbar lordosis (L1-S1, Cobb method) in degrees: L1 superior endplate to S1 superior endplate, sagittal
    plane; positive = lordosis."""
    return sagittal_cobb(l1_superior, s1_superior)


def thoracic_kyphosis(upper_superior, t12_inferior) -> float:
    """Thoracic kyphosis (Cobb method) in degrees: superior endplate of T4 (or T5) to inferior endplate of T12,
    sagittal plane; positive = kyphosis."""
    return -sagittal_cobb(upper_superior, t12_inferior)


# --- spondylolisthesis ---------------------------------------------------------------------------------------
MEYERDING = {0: "no anterolisthesis", 1: "Meyerding grade I", 2: "Meyerding grade II", 3: "Meyerding grade III",
             4: "Meyerding grade IV", 5: "Meyerding grade V (spondyloptosis)"}


def slip_percent(upper_posterior_inferior, lower_posterior_superior, lower_anterior_superior) -> float:
    """Slip of the upper vertebra on the lower one, % of the lower superior endplate's length (Meyerding).

    The offset of the upper vertebra's posterior-inferior corner from the lower vertebra's posterior-superior
    corner is projected on the lower endplate (posterior -> anterior); positive = anterolisthesis.
    """
    ps, as_ = _p(lower_posterior_superior), _p(lower_anterior_superior)
    width = float(np.linalg.norm(as_ - ps))
    if width < 1e-6:
        raise ValueError("the lower endplate's corners coincide")
    forward = (as_ - ps) / width
    return float((_p(upper_posterior_inferior) - ps) @ forward / width * 100.0)


def meyerding_grade(percent: float) -> int:
    """0 (no anterior slip), 1..4 for (0,25], (25,50], (50,75], (75,100]; 5 above 100 %."""
    p = round(float(percent), 6)
    if p <= 0.0:
        return 0
    for grade, upper in ((1, 25.0), (2, 50.0), (3, 75.0), (4, 100.0)):
        if p <= upper:
            return grade
    return 5


# An automatic slip this small cannot be told from zero (a normal phantom measures up to 3 %): it is not graded,
# neither on the views nor in the findings. A slip a user measured is graded as measured.
AUTO_SLIP_PRECISION = 5.0  # %


def slip_class(percent: float, automatic: bool) -> str:
    """How a slip reads, in one place for the views, the lists and the findings: "within precision" (an automatic
    slip under AUTO_SLIP_PRECISION), "retrolisthesis" (negative: Meyerding does not grade it), "none" (0), or the
    Meyerding grade "I".."V"."""
    if automatic and abs(percent) < AUTO_SLIP_PRECISION:
        return "within precision"
    if percent < 0:
        return "retrolisthesis"
    grade = meyerding_grade(percent)
    return ("none", "I", "II", "III", "IV", "V")[grade]


# --- body heights and Genant grading -------------------------------------------------------------------------
GENANT = {0: "Genant grade 0 (normal)", 1: "Genant grade 1 (mild)", 2: "Genant grade 2 (moderate)",
          3: "Genant grade 3 (severe)"}
_UNIFORM_POINTS = 5.0


@dataclass(frozen=True)
class BodyHeights:
    anterior: float
    middle: float
    posterior: float


@dataclass(frozen=True)
class HeightLoss:
    heights: BodyHeights
    reference: float  # mm, the height the reductions are relative to
    reference_source: str  # "given" | "own maximum"
    anterior_percent: float
    middle_percent: float
    posterior_percent: float
    loss_percent: float  # the largest reduction
    grade: int  # Genant 0..3
    type: str  # "none" | "wedge" | "biconcave" | "crush"

    @property
    def ratio(self) -> float:
        """Height-loss ratio 0..1 (loss_percent / 100)."""
        return self.loss_percent / 100.0

    @property
    def grade_label(self) -> str:
        label = GENANT[self.grade]
        return label if self.grade == 0 else f"{label}, {self.type}"


def _heights_along(top: np.ndarray, bottom: np.ndarray, axis) -> float:
    d = top - bottom
    if axis is not None:
        return float(abs(d @ _unit(np.asarray(axis, dtype=float), "axis")))
    return float(np.linalg.norm(d))


def body_heights(superior, inferior, axis=None) -> BodyHeights:
    """Anterior, middle and posterior body heights (mm).

    ``superior`` and ``inferior``: three points each, (anterior, middle, posterior), on the superior and inferior
    endplates. Each height is the distance between corresponding points, or its component along ``axis`` (the
    local spine axis) when given.
    """
    if len(superior) != 3 or len(inferior) != 3:
        raise ValueError("body heights need three points (anterior, middle, posterior) on each endplate")
    h = [_heights_along(_p(s), _p(i), axis) for s, i in zip(superior, inferior)]
    return BodyHeights(*h)


def genant_grade(loss_percent: float) -> int:
    """Genant semi-quantitative grade from a height reduction in %: 0 <20, 1 [20,25), 2 [25,40], 3 >40."""
    p = round(float(loss_percent), 6)
    if p < 20.0:
        return 0
    if p < 25.0:
        return 1
    if p <= 40.0:
        return 2
    return 3


def height_loss(heights: BodyHeights, reference: float | None = None) -> HeightLoss:
    """Genant grading of one vertebra's heights, relative to ``reference`` (expected height, mm) if given, else
    to the largest of its own three heights."""
    hs = np.array([heights.anterior, heights.middle, heights.posterior], dtype=float)
    if np.any(~np.isfinite(hs)) or np.any(hs < 0):
        raise ValueError(f"body heights must be finite and non-negative, got {hs.tolist()}")
    if reference is not None:
        ref, source = float(reference), "given"
    else:
        ref, source = float(hs.max()), "own maximum"
    if ref <= 0:
        raise ValueError("the reference height must be positive")
    losses = np.clip((1.0 - hs / ref) * 100.0, 0.0, 100.0)
    loss = float(losses.max())
    grade = genant_grade(loss)
    if grade == 0:
        kind = "none"
    elif losses.max() - losses.min() <= _UNIFORM_POINTS:
        kind = "crush"
    else:
        kind = ("wedge", "biconcave", "crush")[int(np.argmax(losses))]
    return HeightLoss(heights, ref, source, float(losses[0]), float(losses[1]), float(losses[2]), loss, grade, kind)


# --- discs and canal ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiscHeight:
    anterior: float | None
    middle: float
    posterior: float | None

    @property
    def mean(self) -> float:
        """The disc height: mean of the heights measured (all three when available)."""
        vals = [h for h in (self.anterior, self.middle, self.posterior) if h is not None]
        return float(np.mean(vals))


def disc_height(upper_inferior, lower_superior, normal=None) -> DiscHeight:
    """Disc height from three point pairs (anterior, middle, posterior): on the upper vertebra's inferior endplate
    and on the lower vertebra's superior endplate. Each height is their distance, or its component along the disc
    ``normal`` when given. ``DiscHeight.mean`` is the disc height reported."""
    if len(upper_inferior) != 3 or len(lower_superior) != 3:
        raise ValueError("disc height needs three points (anterior, middle, posterior) on each endplate")
    h = [_heights_along(_p(u), _p(lo), normal) for u, lo in zip(upper_inferior, lower_superior)]
    return DiscHeight(*h)


def canal_ap_diameter(anterior, posterior, ap_axis=None) -> float:
    """AP diameter of the spinal canal (mm): from the posterior wall of the body (``anterior`` point) to the
    anterior edge of the lamina (``posterior`` point), or that distance's component along ``ap_axis``."""
    return _heights_along(_p(posterior), _p(anterior), ap_axis)


# --- SpineMeasurement builders --------------------------------------------------------------------------------
def _pts(*groups) -> list:
    out = []
    for g in groups:
        out.extend(g)
    return out


def distance_measurement(p, q, method: str = "user:user", level: str | None = None) -> SpineMeasurement:
    return SpineMeasurement("distance", "distance", level, distance(p, q), "mm", [p, q], method)


def angle_measurement(a, vertex, b, method: str = "user:user", level: str | None = None) -> SpineMeasurement:
    return SpineMeasurement("angle", "angle", level, angle(a, vertex, b), "deg", [a, vertex, b], method)


def cobb_measurement(line1, line2, plane: str | None = None, level: str | None = None,
                     method: str = "user:user") -> SpineMeasurement:
    """Points: line1 p0, p1, line2 p0, p1. ``level`` e.g. 'T5-T12' (the end vertebrae)."""
    value = cobb_angle(line1, line2, plane)
    return SpineMeasurement("cobb", "Cobb angle", level, value, "deg", _pts(line1, line2), method,
                            details={"plane": plane if isinstance(plane, str) else "lines' own plane",
                                     "convention": "angle between endplate lines oriented left/posterior, 0..180"})


def lordosis_measurement(l1_superior, s1_superior, method: str = "user:user") -> SpineMeasurement:
    return SpineMeasurement("lordosis", "lumbar lordosis", "L1-S1", lumbar_lordosis(l1_superior, s1_superior), "deg",
                            _pts(l1_superior, s1_superior), method,
                            details={"convention": "Cobb L1 superior to S1 superior endplate; + = lordosis"})


def kyphosis_measurement(upper_superior, t12_inferior, upper: str = "T4", method: str = "user:user"
                         ) -> SpineMeasurement:
    if upper not in ("T4", "T5"):
        raise ValueError("thoracic kyphosis is measured from T4 or T5")
    return SpineMeasurement("kyphosis", "thoracic kyphosis", f"{upper}-T12",
                            thoracic_kyphosis(upper_superior, t12_inferior), "deg", _pts(upper_superior, t12_inferior),
                            method, details={"convention": f"Cobb {upper} superior to T12 inferior endplate; "
                                                           "+ = kyphosis"})


def slip_measurement(upper_posterior_inferior, lower_posterior_superior, lower_anterior_superior, level: str,
                     method: str = "user:user") -> SpineMeasurement:
    """``level``: the slipped segment, e.g. 'L4-L5' (L4 slipping on L5)."""
    pct = slip_percent(upper_posterior_inferior, lower_posterior_superior, lower_anterior_superior)
    grade = meyerding_grade(pct)
    name = "anterolisthesis" if pct > 0 else "retrolisthesis" if pct < 0 else "spondylolisthesis"
    details = {"grade": grade, "grade_label": MEYERDING[grade] if pct >= 0 else "retrolisthesis, not graded",
               "slip_mm": pct / 100.0 * distance(lower_posterior_superior, lower_anterior_superior)}
    return SpineMeasurement("slip", f"{name} slip", level, pct, "%",
                            [upper_posterior_inferior, lower_posterior_superior, lower_anterior_superior], method,
                            details=details)


def body_heights_measurement(heights: BodyHeights, level: str, points=(), reference: float | None = None,
                             method: str = "user:user", extra: dict | None = None) -> SpineMeasurement:
    """Value = height-loss ratio in % (Genant); details carry the three heights (mm), grade and type."""
    hl = height_loss(heights, reference)
    details = {"anterior_mm": heights.anterior, "middle_mm": heights.middle, "posterior_mm": heights.posterior,
               "reference_mm": hl.reference, "reference_source": hl.reference_source, "grade": hl.grade,
               "type": hl.type, "grade_label": hl.grade_label, **(extra or {})}
    return SpineMeasurement("body_heights", "vertebral body height loss", level, hl.loss_percent, "%",
                            list(points), method, details=details)


def disc_height_measurement(dh: DiscHeight, level: str, points=(), method: str = "user:user",
                            extra: dict | None = None) -> SpineMeasurement:
    details = {"anterior_mm": dh.anterior, "middle_mm": dh.middle, "posterior_mm": dh.posterior, **(extra or {})}
    if dh.anterior is None or dh.posterior is None:
        details["note"] = "middle height only"
    return SpineMeasurement("disc_height", "disc height", level, dh.mean, "mm", list(points), method, details=details)


def canal_measurement(anterior, posterior, level: str | None, ap_axis=None, method: str = "user:user"
                      ) -> SpineMeasurement:
    return SpineMeasurement("canal_ap_diameter", "AP canal diameter", level,
                            canal_ap_diameter(anterior, posterior, ap_axis), "mm", [anterior, posterior], method)
