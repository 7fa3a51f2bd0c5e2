"""The manual measurement tools: the points each one takes (in order), what to click next, and the measurement made
from the points with the :mod:`core.spine.measure.geometry` builders.

- distance: 2 points; angle: 3 (end, vertex, end); Cobb: 4 (two points on each endplate line, in the view's plane).
- lordosis: 4 points, two on the L1 superior endplate then two on the S1 superior endplate; kyphosis: two on the
  superior endplate of the upper vertebra (T4, or T5) then two on the T12 inferior endplate. Both are signed
  sagittal Cobb angles (:func:`core.spine.measure.lumbar_lordosis`, :func:`~core.spine.measure.thoracic_kyphosis`):
  positive = lordosis / kyphosis; either end of a line may be clicked first.
- slip: 3 points, the posterior-inferior corner of the upper vertebra, then the posterior-superior and the
  anterior-superior corners of the lower one (:func:`core.spine.measure.slip_percent`, Meyerding grade); its level is
  the one chosen in ``options['slip_level']``, else the nearest labelled disc.

- pelvis: 4 points on a lateral radiograph, the posterior then anterior corner of the S1 superior endplate, then the
  two femoral head centres: pelvic incidence with sacral slope and pelvic tilt (:mod:`core.xray.pelvis`).
- sva: 2 points on a standing lateral radiograph, the centre of the C7 body then the posterior-superior corner of
  S1: the sagittal vertical axis (:mod:`core.xray.sagittal`); which side is anterior comes from the DICOM header or
  from the tool's option (``options['anterior']``: "header", "right" or "left"); its horizontal runs along the
  image rows, or perpendicular to the latest true vertical (tool ``vertical``: 2 points on a plumb line, a set-up
  measurement like the scale calibration, not a finding).

Lordosis, kyphosis and slip are taken on the sagittal view of a CT or MR, or on a lateral radiograph (their
conventions are sagittal: on a radiograph, lordosis and kyphosis need the anterior side, as the SVA does). On a plain
radiograph, distance, angle, Cobb, slip, lordosis, kyphosis and SVA are measured in the image plane with the image's
own scale, in pixels when it has none (:mod:`core.xray.measure`), and only on points inside the image; the lateral
tools are refused on a radiograph whose header says it is AP or PA. The slip's level is the one chosen, else the
nearest labelled disc; the kyphosis's upper vertebra is the labelled vertebra nearest its first line, else T4.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.spine.measure import geometry as measure
from core.spine.measure.measurement import SpineMeasurement


@dataclass(frozen=True)
class Tool:
    key: str
    label: str  # button text, and the start of the hint
    steps: tuple[str, ...]  # what each click places
    tip: str
    plane: str | None = None  # the only view orientation it is measured on; None: any
    radiograph: bool = False  # also measured on a plain (lateral) radiograph, in the image plane

    @property
    def points(self) -> int:
        return len(self.steps)

    def prompt(self, placed: int) -> str:
        """What to click next, e.g. 'Slip: click the posterior-inferior corner of the upper vertebra (1/3)'."""
        step = min(placed, self.points - 1)
        return f"{self.label}: click {self.steps[step]} ({step + 1}/{self.points})"


def _line(what: str) -> tuple[str, str]:
    return f"one end of {what}", f"the other end of {what}"


TOOLS = {t.key: t for t in (
    Tool("distance", "Distance", ("the first point", "the second point"), "Two clicks: the distance in mm"),
    Tool("angle", "Angle", ("the first end", "the vertex", "the second end"), "Three clicks: end, vertex, end"),
    Tool("cobb", "Cobb", (*_line("the first endplate line"), *_line("the second endplate line")),
         "Four clicks: two points on each endplate line (angle in the plane of the view)"),
    Tool("lordosis", "Lordosis", (*_line("the L1 superior endplate"), *_line("the S1 superior endplate")),
         "Lumbar lordosis (sagittal view or lateral radiograph): two points on the L1 superior endplate, two on the "
         "S1 superior endplate", plane="sagittal", radiograph=True),
    Tool("kyphosis", "Kyphosis", (*_line("the T4 (or T5) superior endplate"), *_line("the T12 inferior endplate")),
         "Thoracic kyphosis (sagittal view or lateral radiograph): two points on the T4 (or T5) superior endplate, "
         "two on the T12 inferior endplate", plane="sagittal", radiograph=True),
    Tool("slip", "Slip", ("the posterior-inferior corner of the upper vertebra",
                          "the posterior-superior corner of the lower vertebra",
                          "the anterior-superior corner of the lower vertebra"),
         "Spondylolisthesis (sagittal view or lateral radiograph): the upper vertebra's posterior-inferior corner, "
         "then the lower vertebra's posterior-superior and anterior-superior corners (slip %, Meyerding grade)",
         plane="sagittal", radiograph=True),
    Tool("pelvis", "Pelvic incidence", ("the posterior corner of the S1 superior endplate",
                                        "the anterior corner of the S1 superior endplate",
                                        "the centre of one femoral head",
                                        "the centre of the other femoral head (the same point if superimposed)"),
         "Lateral radiograph: S1 endplate posterior then anterior corner, then both femoral head centres "
         "(pelvic incidence, sacral slope, pelvic tilt; core.xray.pelvis)", plane="radiograph"),
    Tool("sva", "SVA", ("the centre of the C7 vertebral body", "the posterior-superior corner of S1"),
         "Standing full-length lateral radiograph: the C7 body's centre, then S1's posterior-superior corner "
         "(sagittal vertical axis, + = anterior; set which side the patient faces unless the header says it)",
         plane="radiograph"),
    Tool("vertical", "True vertical", ("one point on a plumb line or the film's vertical marker",
                                       "another point on it, lower down"),
         "Lateral radiograph: two points on a true vertical (plumb line, vertical marker); SVAs measured afterwards "
         "take their horizontal perpendicular to it instead of along the image rows", plane="radiograph"),
)}
LATERAL_ONLY = ("pelvis", "slip", "sva", "vertical", "lordosis", "kyphosis")   # refused on a radiograph whose header says AP or PA


def wrong_view(tool: Tool, view) -> str:
    """Why ``tool`` cannot be placed on ``view`` ('' when it can)."""
    on_radiograph = getattr(view, "radiograph", False)
    if tool.plane == "radiograph":
        return "" if on_radiograph else f"{tool.label} is measured on a lateral radiograph"
    if on_radiograph:
        if tool.plane is None or tool.radiograph:
            return ""
        return f"{tool.label} is measured on the {tool.plane} view of a CT or MR series, not on a plain radiograph"
    if tool.plane is None or view.orientation == tool.plane:
        return ""
    return f"{tool.label} is measured on the {tool.plane} view"


def build(tool: Tool, points: list, view, model, method: str, options: dict | None = None) -> SpineMeasurement:
    """The measurement of ``tool`` from its points (patient mm) placed on ``view``; ValueError if degenerate.
    ``options``: the tools' options (``anterior`` for the SVA)."""
    p = points
    if getattr(view, "radiograph", False) and tool.key in ("distance", "angle", "cobb", "pelvis", "slip", "sva",
                                                           "vertical", "lordosis", "kyphosis"):
        return _on_radiograph(tool, p, view, method, getattr(model, "measurements", ()), options or {})
    if tool.key == "distance":
        m = measure.distance_measurement(p[0], p[1], method=method)
    elif tool.key == "angle":
        m = measure.angle_measurement(p[0], p[1], p[2], method=method)
    elif tool.key == "cobb":
        m = measure.cobb_measurement((p[0], p[1]), (p[2], p[3]), plane=view.orientation, method=method)
    elif tool.key == "lordosis":
        m = measure.lordosis_measurement((p[0], p[1]), (p[2], p[3]), method=method)
    elif tool.key == "kyphosis":
        m = _kyphosis(p, model, method)
    elif tool.key == "slip":
        m = measure.slip_measurement(p[0], p[1], p[2], level=_slip_level(options) or model.disc_near(p),
                                     method=method)
    else:
        raise ValueError(f"unknown measurement tool {tool.key!r}")
    m.details.setdefault("view", view.orientation)
    return m


def _kyphosis(p: list, model, method: str) -> SpineMeasurement:
    """Kyphosis from the labelled vertebra nearest the first line (T4 when unlabelled). T4 and T5 are the standard
    upper ends; another one above T12 (e.g. T3) is kept as the level and noted in the details."""
    upper = model.vertebra_near(p[:2]) or "T4"
    labelling = model.state.labelling
    config = labelling.configuration if labelling is not None else None
    if (config is not None and upper in config.vertebrae and "T12" in config.vertebrae
            and config.index(upper) >= config.index("T12")):
        raise ValueError(f"the first line is at {upper}: kyphosis runs from T4 (or T5) down to T12")
    m = measure.kyphosis_measurement((p[0], p[1]), (p[2], p[3]), upper=upper if upper in ("T4", "T5") else "T4",
                                     method=method)
    if upper not in ("T4", "T5"):
        m.level = f"{upper}-T12"
        m.details["convention"] = f"Cobb {upper} superior to T12 inferior endplate; + = kyphosis"
        m.details["note"] = f"upper line nearest {upper}: not the standard T4 or T5"
    return m


def _on_radiograph(tool: Tool, p: list, view, method: str, measurements=(), options=None) -> SpineMeasurement:
    """A tool in the image plane of a plain radiograph, in mm only when the user calibrated the scale or the image
    says it (DICOM PixelSpacing / ImagerPixelSpacing, see core.xray.measure), else in pixels; the scale is recorded.
    Points outside the image, and lateral tools on an image whose header says AP, are refused."""
    from core.xray import measure as xm
    from core.xray import sagittal

    vol = view.state.volume
    px = [vol.patient_to_voxel(q)[:2] + 0.5 for q in p]      # image pixels, pixel centres at +0.5
    width, height = vol.shape[0], vol.shape[1]
    for k, q in enumerate(px):
        if not (0.0 <= q[0] <= width and 0.0 <= q[1] <= height):
            raise ValueError(f"point {k + 1} ({tool.steps[k]}) lies outside the image ({width} x {height} px): "
                             "click on the radiograph")
    if tool.key in LATERAL_ONLY:
        frontal = sagittal.frontal_view(vol)
        if frontal:
            raise ValueError(f"{tool.label} is measured on a lateral radiograph; {frontal}")
    if tool.key == "vertical":
        return sagittal.vertical_measurement(px[0], px[1], display_points=p, method=method)
    if tool.key == "pelvis":
        from core.xray.pelvis import pelvic_measurement

        return pelvic_measurement(px, display_points=p, method=method)
    cal = xm.effective_calibration(vol, measurements)
    if tool.key == "slip":
        return sagittal.radiograph_slip(px[0], px[1], px[2], cal, level=_slip_level(options), display_points=p,
                                        method=method)
    if tool.key in ("lordosis", "kyphosis"):
        facing = _facing(vol, (options or {}).get("anterior", "header"))
        return sagittal.sagittal_cobb_measurement(tool.key, px, facing, cal, display_points=p, method=method)
    if tool.key == "sva":
        facing = _facing(vol, (options or {}).get("anterior", "header"))
        vertical = sagittal.vertical_from_measurements(measurements)
        sva = sagittal.sagittal_vertical_axis(px[0], px[1], facing, cal, vertical)
        foot = vol.voxel_to_patient((sva.foot_px[0] - 0.5, sva.foot_px[1] - 0.5, 0.0))
        return sagittal.sva_measurement(px[0], px[1], facing, cal, vertical, display_points=[*p, foot],
                                        method=method)
    if tool.key == "distance":
        pm = xm.distance(px[0], px[1], cal)
    elif tool.key == "angle":
        pm = xm.angle(px[0], px[1], px[2], cal)
    else:
        pm = xm.cobb((px[0], px[1]), (px[2], px[3]), cal)
    m = pm.to_spine_measurement(method=method, display_points=p)
    m.details["view"] = "radiograph"
    return m


def _slip_level(options) -> str | None:
    """The slip's segment the user chose in the tool's options, or None (the nearest labelled disc)."""
    level = (options or {}).get("slip_level", "auto")
    return None if level in (None, "", "auto") else str(level)


def _facing(vol, choice: str):
    """Which side is anterior: the user's choice ("right"/"left"), else what the DICOM header says."""
    from core.xray.sagittal import Facing, facing_for_volume

    header = facing_for_volume(vol)
    if choice in ("right", "left"):
        sign = 1 if choice == "right" else -1
        said = "" if header is None or header.sign == sign else f"; the header says image {header.side}"
        return Facing(sign, f"set by the user{said}")
    if header is None:
        raise ValueError("the image does not say which side is anterior (no PatientOrientation): choose "
                         "'Patient faces' image left or right in the Measurements tab")
    return header
