"""Automatic spine measurements from a labelling and its image (or a vertebra label map): approximate, and honest.

    result = auto_measurements(volume, labelling)                       # from the image (CT or MR)
    result = auto_measurements(volume, labelling, labelmap, "verse")    # from vertebra masks
    result.measurements   # [SpineMeasurement]: body heights (Genant), disc heights, slips
    result.skipped        # ["L5 body heights: cut by the field of view", ...]

How (see :mod:`core.spine.measure.outline` for the outline of a body in its mid-sagittal plane):

- **Body heights**: anterior, middle and posterior heights are the median endplate-to-endplate distances, along
  the local spine axis, over the columns at 5-15 %, 45-55 % and 85-95 % of the body's depth from its anterior wall
  (inside the corners, which are rounded and carry osteophytes). Graded with Genant's method against the
  vertebra's own largest height, or against the mean of its two neighbours' largest heights when both were measured
  and are larger (which lets a uniform crush show).
- **Disc heights**: for two adjacent measured vertebrae, the distances between the upper one's inferior endplate
  and the lower one's superior endplate, along the disc normal (the mean of the two bodies' own axes, from their
  walls: the line between the centres would be tilted by a slip), at the anterior, middle and posterior columns; the disc height is their mean. A disc whose
  outer columns are not both known gives its middle height only, and says so.
- **Slip**: Meyerding, from the outlines: the upper body's posterior-inferior corner, and the lower body's posterior-
  and anterior-superior corners (the walls 2 mm inside the endplates), with :func:`core.spine.measure.slip_percent`.

Every measurement's method is ``auto:<how>@<version>``, its details say "approximate" and what it was derived from.
A vertebra without a name, without a neighbour (no axis), the sacrum (no body heights), a body cut by the field of
view or without enough contrast is skipped with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.spine.labelling import SpineLabelling
from core.spine.measure.geometry import (
    BodyHeights,
    DiscHeight,
    body_heights_measurement,
    disc_height_measurement,
    slip_measurement,
)
from core.spine.measure.measurement import SpineMeasurement
from core.spine.measure.outline import Frame, Outline, OutlineError, Sampler, outline
from core.studies.volume import Volume

VERSION = "1"
BANDS = {"anterior": 0.10, "middle": 0.50, "posterior": 0.90}
_CT_MIN_CONTRAST_HU = 50.0
_WALL_INSET_MM = 2.0


@dataclass
class AutoMeasurements:
    measurements: list[SpineMeasurement] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    outlines: dict[str, Outline] = field(default_factory=dict)


def _mode(volume: Volume) -> str:
    modality = (volume.modality or "").upper()
    if modality == "CT":
        return "ct"
    if modality == "MR":
        return "mr"
    sample = np.asarray(volume.data[::8, ::8, ::4])
    return "ct" if sample.size and float(sample.min()) < -500.0 else "mr"


def _axes(labelling: SpineLabelling) -> list[np.ndarray | None]:
    """Local cranial spine axis at each vertebra, from its neighbours' centres (None when it has none)."""
    pts = [np.asarray(v.centroid) for v in labelling.vertebrae]
    out: list[np.ndarray | None] = []
    for i in range(len(pts)):
        up = pts[i - 1] if i > 0 else None
        down = pts[i + 1] if i + 1 < len(pts) else None
        if up is None and down is None:
            out.append(None)
            continue
        d = (up if up is not None else pts[i]) - (down if down is not None else pts[i])
        n = np.linalg.norm(d)
        out.append(d / n if n > 1e-6 else None)
    return out


def auto_measurements(volume: Volume, labelling: SpineLabelling, labelmap: Volume | None = None,
                      numbering=None) -> AutoMeasurements:
    """Body heights, disc heights and slips where the labelling and the image allow (see the module text).

    ``labelmap`` + ``numbering`` (a :class:`~core.spine.numbering.Numbering` or its key, e.g. "verse") make the
    outlines from each vertebra's mask instead of the image intensities.
    """
    result = AutoMeasurements()
    if volume.is_2d:
        result.skipped.append("all: a single slice or projection image; automatic measurements need a 3D series")
        return result
    if numbering is not None and isinstance(numbering, str):
        from core.spine.numbering import get_numbering
        numbering = get_numbering(numbering)
    mode = "mask" if labelmap is not None else _mode(volume)
    how = "mask-outline" if mode == "mask" else f"{mode}-sagittal-outline"
    method = f"auto:{how}@{VERSION}"
    verts = labelling.vertebrae
    axes = _axes(labelling)
    outlines: list[Outline | None] = [None] * len(verts)
    for i, v in enumerate(verts):
        who = v.name or f"vertebra {i + 1}"
        if axes[i] is None:
            result.skipped.append(f"{who}: no adjacent vertebra to give the local spine axis")
            continue
        try:
            sampler = Sampler(labelmap if labelmap is not None else volume,
                              _label_of(v, numbering) if labelmap is not None else None)
            frame = Frame.make(v.centroid, axes[i])
            v_lo, v_hi = _window(verts, i, frame)
            contrast = _CT_MIN_CONTRAST_HU if mode == "ct" else 0.0
            outlines[i] = outline(sampler, frame, v_lo, v_hi, mode, contrast)
            own = outlines[i].wall_axis()  # the body's own axis, from its walls (neighbours may be displaced)
            if own is not None and np.degrees(np.arccos(np.clip(own @ frame.axis, -1, 1))) > 1.0:
                frame = Frame.make(v.centroid, own)
                v_lo, v_hi = _window(verts, i, frame)
                outlines[i] = outline(sampler, frame, v_lo, v_hi, mode, contrast)
            if v.name:
                result.outlines[v.name] = outlines[i]
        except (OutlineError, KeyError, ValueError) as exc:
            result.skipped.append(f"{who}: {exc}")
    heights = {i: _heights(o) for i, o in enumerate(outlines) if o is not None}
    for i, v in enumerate(verts):
        if outlines[i] is None or not v.name:
            if outlines[i] is not None:
                result.skipped.append(f"vertebra {i + 1}: not named, so not measured (name the levels first)")
            continue
        if v.name == "S1":
            continue  # the sacrum has no vertebral-body heights to grade
        m = _body_measurement(v.name, i, outlines[i], heights, method, v.partial)
        if isinstance(m, str):
            result.skipped.append(f"{v.name} body heights: {m}")
        else:
            result.measurements.append(m)
    for i in range(len(verts) - 1):
        a, b = verts[i], verts[i + 1]
        if not (a.name and b.name) or outlines[i] is None or outlines[i + 1] is None:
            continue
        try:
            level = labelling.configuration.disc_between(a.name, b.name)
        except ValueError:
            continue
        normal = _disc_normal(outlines[i], outlines[i + 1])
        for made in (_disc_measurement(level, outlines[i], outlines[i + 1], normal, method),
                     _slip(level, outlines[i], outlines[i + 1], method)):
            if isinstance(made, str):
                result.skipped.append(f"{level} {made}")
            else:
                result.measurements.append(made)
    return result


def _label_of(v, numbering) -> int:
    if numbering is None:
        raise ValueError("a label map needs its numbering (verse, totalseg, ...)")
    if not v.name:
        raise ValueError("not named: its label in the mask is unknown")
    return numbering.encode(v.name)


def _window(verts, i: int, frame: Frame) -> tuple[float, float]:
    """v range of the sampled plane: 85 % of the way to each neighbour's centre (the other side's when missing)."""
    up = frame.uv(verts[i - 1].centroid)[1] if i > 0 else None
    down = frame.uv(verts[i + 1].centroid)[1] if i + 1 < len(verts) else None
    up = up if up is not None and up > 3.0 else (-down if down is not None and down < -3.0 else 30.0)
    down = down if down is not None and down < -3.0 else -up
    return 0.85 * down, 0.85 * up


def _heights(o: Outline) -> dict:
    return {k: o.band(frac) for k, frac in BANDS.items()}


def _body_measurement(name: str, i: int, o: Outline, heights: dict, method: str, partial: bool):
    bands = heights[i]
    missing = [k for k, b in bands.items() if b is None]
    if missing:
        return ("endplates not found at the " + ", ".join(missing) + " column(s): cut by the field of view, or "
                "not separated from the next body")
    if o.depth < 5.0 or o.depth > 80.0:
        return f"implausible body depth {o.depth:.0f} mm: the outline is not a vertebral body"
    hs = BodyHeights(*(bands[k].height for k in BANDS))
    if min(hs.anterior, hs.middle, hs.posterior) < 2.0 or max(hs.anterior, hs.middle, hs.posterior) > 1.5 * o.depth \
            + 20.0:
        return f"implausible heights {hs}: the outline is not a vertebral body"
    own = max(hs.anterior, hs.middle, hs.posterior)
    reference, source = None, "own largest height"
    nbrs = [heights.get(j) for j in (i - 1, i + 1)]
    if all(n and all(n.values()) for n in nbrs):
        ref = float(np.mean([max(b.height for b in n.values()) for n in nbrs]))
        if ref > own:
            reference, source = ref, "mean of the neighbours' largest heights"
    pts = []
    for k in BANDS:
        b = bands[k]
        pts += [o.frame.point(b.u, b.top), o.frame.point(b.u, b.bottom)]
    extra = {"approximate": True, "derived_from": _derived(method), "points_order": "anterior top, anterior "
             "bottom, middle top, middle bottom, posterior top, posterior bottom", "reference_note": source,
             "depth_mm": o.depth}
    if partial:
        extra["note"] = "the labelling marks this vertebra as cut by the field of view"
    return body_heights_measurement(hs, name, pts, reference, method, extra)


def _derived(method: str) -> str:
    if "mask" in method:
        return "vertebra mask, mid-sagittal plane"
    return "image intensities, mid-sagittal plane (" + method.split(":")[1].split("-")[0].upper() + ")"


def _disc_normal(upper: Outline, lower: Outline) -> np.ndarray:
    """The mean of the two bodies' own axes (not the line between their centres, which a slip tilts)."""
    n = upper.frame.axis + lower.frame.axis
    return n / np.linalg.norm(n)


def _disc_measurement(level: str, upper: Outline, lower: Outline, normal: np.ndarray, method: str):
    hs, pts = {}, []
    for k, frac in BANDS.items():
        b_up, b_lo = upper.edge(frac, "bottom"), lower.edge(frac, "top")
        if b_up is None or b_lo is None:
            continue
        u_up = upper.u_ant + frac * upper.depth
        u_lo = lower.u_ant + frac * lower.depth
        p, q = upper.frame.point(u_up, b_up), lower.frame.point(u_lo, b_lo)
        h = float((p - q) @ normal)
        if h < 0:
            return f"disc height: the endplates overlap ({h:.1f} mm) at the {k} column: outlines unreliable"
        hs[k] = h
        pts += [p, q]
    if "middle" not in hs:
        return "disc height: the facing endplates were not found at the middle column"
    dh = DiscHeight(hs.get("anterior"), hs["middle"], hs.get("posterior"))
    if dh.anterior is None or dh.posterior is None:
        dh = DiscHeight(None, hs["middle"], None)
        pts = pts[2:4] if "anterior" in hs else pts[:2]
    extra = {"approximate": True, "derived_from": _derived(method), "along": "disc normal"}
    return disc_height_measurement(dh, level, pts, method, extra)


def _corner_v(o: Outline, side: str, wall_u: float) -> float | None:
    """v of an endplate ('top'/'bottom') at a wall: the line through its 10 % and 90 % columns, extrapolated (the
    corners themselves are rounded and carry osteophytes)."""
    a, p = o.edge(BANDS["anterior"], side), o.edge(BANDS["posterior"], side)
    if a is None or p is None:
        return None
    ua, up = o.u_ant + BANDS["anterior"] * o.depth, o.u_ant + BANDS["posterior"] * o.depth
    return float(a + (p - a) * (wall_u - ua) / (up - ua))


def _slip(level: str, upper: Outline, lower: Outline, method: str):
    b_up = upper.edge(BANDS["posterior"], "bottom")
    t_lo_p, t_lo_a = lower.edge(BANDS["posterior"], "top"), lower.edge(BANDS["anterior"], "top")
    if b_up is None or t_lo_p is None or t_lo_a is None:
        return "slip: the corners of the facing endplates were not found"
    w_up = upper.wall(b_up + _WALL_INSET_MM, "post")
    w_lo_p = lower.wall(t_lo_p - _WALL_INSET_MM, "post")
    w_lo_a = lower.wall(t_lo_a - _WALL_INSET_MM, "ant")
    if w_up is None or w_lo_p is None or w_lo_a is None:
        return "slip: the body walls near the disc were not found"
    v_pi, v_ps, v_as = _corner_v(upper, "bottom", w_up), _corner_v(lower, "top", w_lo_p), _corner_v(lower, "top", w_lo_a)
    if v_pi is None or v_ps is None or v_as is None:
        return "slip: the facing endplates were not found across the bodies"
    pi = upper.frame.point(w_up, v_pi)
    ps, as_ = lower.frame.point(w_lo_p, v_ps), lower.frame.point(w_lo_a, v_as)
    m = slip_measurement(pi, ps, as_, level, method)
    m.details.update({"approximate": True, "derived_from": _derived(method),
                      "corners": "body walls (2 mm inside the endplates) meeting the endplate lines"})
    return m
