"""A random whole-spine label map (tissue classes on a 2 mm grid) with the answers a labeller must find.

Grown from :mod:`core.synthetic.phantom` into a varied model for synthesis: one spine from C1 with the skull base down to
the coccyx region of the sacrum, of random size and pitch, with cervical lordosis, thoracic kyphosis, lumbar lordosis
and a sacral tilt of random amplitude, optional scoliosis, 11/12/13 thoracic and 4/5/6 lumbar vertebrae (4 =
sacralised L5), degenerated and collapsed discs, wedge fractures, posterior elements, canal with the cord ending at
L1-L2, ribs on the thoracic vertebrae, iliac bones, lungs, aorta, organs, bowel gas and other round distractors,
muscle, fat and air. Each vertebra is a
straight elliptic cylinder along the local tangent of the column.

Grid axes are towards L, P, S (as :mod:`core.spine.autolabel.grid`); coordinates below are grid voxels of ``STEP``
mm. Returned with the tissue map: a region map (which anchor class each vertebral body voxel belongs to: C2, C3-C7,
thoracic, lumbar, sacrum), the body centres and disc centres by level name.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from core.spine.anatomy import SpineConfiguration

STEP = 2.0

# tissue classes of the label map (each gets its own random intensity at synthesis)
AIR, FAT, MUSCLE, ORGAN_A, ORGAN_B, LUNG, VESSEL, CORTEX, MARROW, POSTERIOR, ANNULUS, NUCLEUS, DEGENERATED, CSF, \
    CORD, RIB, PELVIS, SKULL, BRAIN, ENDPLATE = range(20)
N_TISSUES = 20
TISSUE_NAMES = ("air", "fat", "muscle", "organ_a", "organ_b", "lung", "vessel", "cortex", "marrow", "posterior",
                "annulus", "nucleus", "degenerated_disc", "csf", "cord", "rib", "pelvis", "skull", "brain",
                "endplate")
# anchor classes of vertebral bodies (the network's class map)
REGIONS = ("background", "C2", "C3-C7", "thoracic", "lumbar", "sacrum")


def region_of(name: str) -> int:
    if name == "C2":
        return 1
    return {"C": 2, "T": 3, "L": 4, "S": 5}[name[0]] if name != "C1" else 0


@dataclass
class SpineOptions:
    """Probabilities and ranges of the random spine (defaults: what the shipped model was trained with)."""

    p_t11: float = 0.08
    p_t13: float = 0.08
    p_l4: float = 0.06  # sacralised L5
    p_l6: float = 0.08
    p_scoliosis: float = 0.25
    p_degenerated: float = 0.15  # per disc
    p_collapsed: float = 0.03  # per disc
    p_fracture: float = 0.04  # per vertebra
    size_range: tuple[float, float] = (0.8, 1.2)


@dataclass
class SpineLabelMap:
    tissue: np.ndarray  # uint8 [L, P, S]
    region: np.ndarray  # uint8 [L, P, S]: REGIONS index of vertebral-body voxels, 0 elsewhere
    step: float
    config: SpineConfiguration
    centres: dict[str, np.ndarray]  # body centres, grid voxels
    discs: dict[str, np.ndarray]  # disc centres, grid voxels
    half_width: dict[str, float]  # body half-width (voxels), to tell whether a slab cuts the body
    notes: list[str] = field(default_factory=list)


def _interp_knots(s: np.ndarray, knots_s, knots_v) -> np.ndarray:
    return np.interp(s, knots_s, knots_v)


class _Painter:
    """Paints shapes into a label volume, each within its bounding box."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.tissue = np.zeros(shape, dtype=np.uint8)
        self.region = np.zeros(shape, dtype=np.uint8)
        self.shape = shape

    def box(self, centre, radius):
        lo = np.maximum(np.floor(np.asarray(centre) - radius).astype(int), 0)
        hi = np.minimum(np.ceil(np.asarray(centre) + radius).astype(int) + 1, self.shape)
        if np.any(hi <= lo):
            return None
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        grids = np.meshgrid(*[np.arange(a, b, dtype=np.float32) for a, b in zip(lo, hi)], indexing="ij")
        return sl, [g - c for g, c in zip(grids, centre)]

    def cylinder(self, centre, tangent, e1, half_h, rx, ry, label, region=None, only=None, wedge=0.0):
        """Elliptic cylinder: axis ``tangent`` (unit), lateral axis ``e1``; ``wedge`` shortens the front (0..1)."""
        e2 = np.cross(tangent, e1)
        got = self.box(centre, max(half_h, rx, ry) + 1.5)
        if got is None:
            return None
        sl, (dx, dy, dz) = got
        w = dx * tangent[0] + dy * tangent[1] + dz * tangent[2]
        u = dx * e1[0] + dy * e1[1] + dz * e1[2]
        v = dx * e2[0] + dy * e2[1] + dz * e2[2]
        hh = half_h * (1.0 - wedge * np.clip(0.5 - 0.5 * v / ry, 0, 1))  # v<0: towards the front
        mask = ((u / rx) ** 2 + (v / ry) ** 2 <= 1.0) & (np.abs(w) <= hh)
        if only is not None:
            mask &= np.isin(self.tissue[sl], only)
        self.tissue[sl][mask] = label
        if region is not None:
            self.region[sl][mask] = region
        return sl, mask, u, v, w, hh

    def capsule(self, p0, p1, r, label, only=None):
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        got = self.box((p0 + p1) / 2, np.linalg.norm(p1 - p0) / 2 + r + 1)
        if got is None:
            return
        sl, (dx, dy, dz) = got
        d = p1 - p0
        c = (p0 + p1) / 2
        rel = np.stack([dx + c[0] - p0[0], dy + c[1] - p0[1], dz + c[2] - p0[2]])
        t = np.clip((rel * d[:, None, None, None]).sum(0) / max(d @ d, 1e-6), 0, 1)
        dist2 = ((rel - t[None] * d[:, None, None, None]) ** 2).sum(0)
        mask = dist2 <= r * r
        if only is not None:
            mask &= np.isin(self.tissue[sl], only)
        self.tissue[sl][mask] = label

    def ellipsoid(self, centre, radii, label, only=None):
        got = self.box(centre, max(radii) + 1)
        if got is None:
            return None
        sl, (dx, dy, dz) = got
        mask = (dx / radii[0]) ** 2 + (dy / radii[1]) ** 2 + (dz / radii[2]) ** 2 <= 1.0
        if only is not None:
            mask &= np.isin(self.tissue[sl], only)
        self.tissue[sl][mask] = label
        return sl, mask


def _config(rng, opt: SpineOptions) -> SpineConfiguration:
    t = 11 if rng.random() < opt.p_t11 else 13 if rng.random() < opt.p_t13 / (1 - opt.p_t11) else 12
    r = rng.random()
    lumbar = 4 if r < opt.p_l4 else 6 if r < opt.p_l4 + opt.p_l6 else 5
    return SpineConfiguration(thoracic=t, lumbar=lumbar)


def _body_dims(names: list[str], rng, scale: float):
    """Per level: body height, disc height below, half-width, half-depth (mm)."""
    n_c = sum(1 for x in names if x[0] == "C")
    n_t = sum(1 for x in names if x[0] == "T")
    out = []
    for i, name in enumerate(names):
        if name[0] == "C":
            f = 0.0
        elif name[0] == "T":
            f = (i - n_c + 1) / (n_t + 1)
        elif name[0] == "L":
            f = 1.0 + (i - n_c - n_t) / 5.0
        else:
            f = 2.0
        height = np.interp(f, [0, 1, 2], [14.0, 22.0, 28.0])
        disc = np.interp(f, [0, 0.3, 1, 2], [5.0, 4.5, 6.5, 10.0])
        rx = np.interp(f, [0, 1, 2], [10.0, 17.0, 24.0])
        ry = np.interp(f, [0, 1, 2], [8.0, 14.0, 17.0])
        j = rng.uniform(0.92, 1.08, 4)
        out.append((height * scale * j[0], disc * scale * j[1], rx * scale * j[2], ry * scale * j[3]))
    return out


def generate_spine(rng: np.random.Generator, opt: SpineOptions | None = None, lr_mm: float = 128.0,
                   ap_mm: float = 240.0, step: float = STEP) -> SpineLabelMap:
    """One random spine, C1 to the sacrum, as a label map of ``lr_mm`` x ``ap_mm`` x (its length + head) mm."""
    opt = opt or SpineOptions()
    config = _config(rng, opt)
    names = list(config.vertebrae)
    scale = rng.uniform(*opt.size_range)
    dims = _body_dims(names, rng, scale)
    # --- lengths along the column (mm from the dens tip) ---
    layout = {}  # name -> (s_top, s_bottom)
    s = 0.0
    c2_body, dens = 20.0 * scale, 16.0 * scale
    for i, name in enumerate(names):
        h, d, _rx, _ry = dims[i]
        if name == "C1":
            layout[name] = (0.0, 12.0 * scale)
            continue
        if name == "C2":
            layout[name] = (0.0, c2_body + dens)
            s = c2_body + dens + dims[i][1]
            continue
        if name == "S1":
            layout[name] = (s, s + 100.0 * scale)
            s += 100.0 * scale
            break
        layout[name] = (s, s + h)
        s += h + d
    length = s
    # --- the column's curve: tangent angle (deg, + = moving posterior going down) at knots ---
    def at(name, frac=0.5):
        a, b = layout[name]
        return a + frac * (b - a)
    last_t = f"T{config.thoracic}"
    last_l = f"L{config.lumbar}" if config.lumbar >= 1 else last_t
    amp = rng.uniform(0.3, 1.5, 4)
    knots = [(0.0, -10 * amp[0] + rng.normal(0, 5)), (at("C5"), 0.0 + rng.normal(0, 5)),
             (at("T1"), 18 * amp[1] + rng.normal(0, 5)), (at("T7"), rng.normal(0, 5)),
             (at(last_t), -15 * amp[2] + rng.normal(0, 5)), (at("L3"), rng.normal(0, 5)),
             (at(last_l, 1.0), 25 * amp[3] + rng.normal(0, 5)), (at("S1", 0.0) + 5, 35 + 15 * amp[3]),
             (length, 70 + rng.normal(0, 10))]
    ks, kv = zip(*sorted(knots))
    ss = np.arange(0.0, length + 1.0, 1.0)
    theta = np.radians(_interp_knots(ss, ks, kv))
    y = np.concatenate([[0.0], np.cumsum(np.sin(theta[:-1]))])
    z = -np.concatenate([[0.0], np.cumsum(np.cos(theta[:-1]))])
    x = np.zeros_like(ss)
    if rng.random() < opt.p_scoliosis:
        amp_x = rng.uniform(8.0, 30.0)
        lam = rng.uniform(250.0, 550.0)
        x = amp_x * np.sin(2 * np.pi * ss / lam + rng.uniform(0, 2 * np.pi)) * np.clip(
            (ss - at("T1")) / 80.0, 0, 1) * np.clip((at("S1", 0) - ss) / 60.0, 0, 1)
    # --- the grid: column centred in LR, body centres ~62% back in AP, head room above ---
    head_mm = 90.0
    sh = (int(lr_mm / step), int(ap_mm / step), int((length - z.min() * 0 + head_mm + 40.0) / step))
    z_extent = (z.max() - z.min()) + head_mm + 30.0
    sh = (sh[0], sh[1], int(z_extent / step))
    off = np.array([lr_mm / 2, ap_mm * 0.55 - (y.max() + y.min()) / 2 + 0.1 * ap_mm, z_extent - head_mm - z.max()])
    line = (np.stack([x, y, z], 1) + off) / step  # voxels

    def pt(si):
        return line[int(np.clip(round(si), 0, len(line) - 1))]

    def tangent(si):
        i = int(np.clip(round(si), 1, len(line) - 2))
        t = line[i + 1] - line[i - 1]
        return t / np.linalg.norm(t) * np.array([1, 1, 1])

    def frame(si):
        t = -tangent(si)  # pointing cranially
        e1 = np.array([1.0, 0.0, 0.0]) - t[0] * t
        e1 /= np.linalg.norm(e1)
        return t, e1, np.cross(t, e1)

    p = _Painter(sh)
    _surroundings(p, rng, line, layout, names, step, dims)
    centres, discs, half_width = {}, {}, {}
    canal_r = rng.uniform(5.5, 8.0) / step
    # --- discs first (bodies overwrite their edges) ---
    for i, name in enumerate(names[1:-1], start=1):
        nxt = names[i + 1]
        a = layout[name][1]
        b = layout[nxt][0]
        mid = (a + b) / 2
        h = (b - a)
        rx = (dims[i][2] + dims[i + 1][2]) / 2 / step
        ry = (dims[i][3] + dims[i + 1][3]) / 2 / step
        t, e1, _ = frame(mid)
        r = rng.random()
        lab = ANNULUS
        if r < opt.p_collapsed:
            h = max(1.5, 0.25 * h)
            lab = DEGENERATED
        elif r < opt.p_collapsed + opt.p_degenerated:
            h *= rng.uniform(0.45, 0.85)
            lab = DEGENERATED
        p.cylinder(pt(mid), t, e1, h / 2 / step + 0.6, rx, ry, lab)
        if lab == ANNULUS:
            p.cylinder(pt(mid), t, e1, h / 2 / step * 0.6, rx * 0.55, ry * 0.55, NUCLEUS)
        discs[f"{name}-{nxt}"] = pt(mid).copy()
    # --- bodies ---
    for i, name in enumerate(names):
        if name == "C1":
            continue
        a, b = layout[name]
        h, _d, rx, ry = dims[i]
        rx, ry = rx / step, ry / step
        reg = region_of(name)
        if name == "C2":
            body_mid = b - c2_body / 2
            t, e1, _ = frame(body_mid)
            _body(p, pt(body_mid), t, e1, c2_body / 2 / step, rx, ry, reg, step)
            dens_mid = a + dens / 2
            td, e1d, _ = frame(dens_mid)
            p.cylinder(pt(dens_mid) + 0.0, td, e1d, dens / 2 / step + 0.5, 5.0 * scale / step, 5.5 * scale / step,
                       CORTEX, reg)
            p.cylinder(pt(dens_mid), td, e1d, dens / 2 / step - 0.5, 3.2 * scale / step, 3.6 * scale / step,
                       MARROW, reg)
            vb, vd = rx * ry * c2_body, 5.0 * 5.5 * scale * scale / step / step * dens
            sc = (body_mid * vb + dens_mid * vd) / (vb + vd)
            centres[name] = pt(sc).copy()
            half_width[name] = rx
            continue
        if name == "S1":
            _sacrum(p, rng, a, b, line, frame, pt, rx, ry, step, canal_r)
            centres[name] = pt(a + 15.0 * scale).copy()
            half_width[name] = rx
            continue
        mid = (a + b) / 2
        t, e1, _ = frame(mid)
        wedge = rng.uniform(0.3, 0.6) if rng.random() < opt.p_fracture else 0.0
        _body(p, pt(mid), t, e1, h / 2 / step, rx, ry, reg, step, wedge)
        centres[name] = pt(mid).copy()
        half_width[name] = rx
    # --- canal, cord, posterior elements, ribs ---
    s_cord_end = layout["L1"][1] if "L1" in layout else layout[last_t][1]
    sacrum_top = layout["S1"][0]
    ry_of = np.interp(ss, [layout[nm][0] for nm in names[1:]], [dims[i][3] for i in range(1, len(names))])
    rx_of = np.interp(ss, [layout[nm][0] for nm in names[1:]], [dims[i][2] for i in range(1, len(names))])
    canal_pts = []
    for si in np.arange(-12.0, sacrum_top + 60.0, 3.0):
        t, e1, e2 = frame(max(si, 0))
        ry_here = ry_of[int(np.clip(si, 0, len(ss) - 1))] / step
        if si > sacrum_top:
            ry_here += 0.35 * (si - sacrum_top) / step
        canal_pts.append(pt(max(si, 0)) + (si < 0) * t * (-si / step) + e2 * (ry_here + canal_r + 1.0))
    for i, name in enumerate(names):
        if name in ("S1",):
            continue
        a, b = layout[name]
        if name == "C2":
            a = b - c2_body
        mid = (a + b) / 2
        t, e1, e2 = frame(mid)
        cc = canal_pts[int(np.clip((mid + 12.0) / 3.0, 0, len(canal_pts) - 1))]
        ring_h = max((b - a) / 2 / step, 4.0 / step)
        p.cylinder(cc, t, e1, ring_h, canal_r + 2.8 / step * scale + 0.6, canal_r * 1.15 + 2.8 / step * scale,
                   POSTERIOR, only=(AIR, FAT, MUSCLE, ORGAN_A, ORGAN_B, LUNG, VESSEL))
        sp_len = rng.uniform(18.0, 38.0) * scale / step * (0.6 if name[0] == "C" else 1.0)
        back = cc + e2 * (canal_r + 1.0)
        p.capsule(back, back + e2 * sp_len - t * sp_len * (0.5 if name[0] == "T" else 0.15),
                  2.5 / step * scale + 0.5, POSTERIOR, only=(FAT, MUSCLE, LUNG))
        tp_len = (rx_of[int(mid)] / step + 18.0 / step) * (1.0 if name[0] != "C" else 0.8)
        for side in (-1, 1):
            p.capsule(cc, cc + side * e1 * tp_len + e2 * 2.0, 3.0 / step * scale + 0.5, POSTERIOR,
                      only=(FAT, MUSCLE, LUNG, VESSEL))
        if name[0] == "T":  # a rib from the body's back corner, out, back, then down and forward
            rx_b = dims[i][2] / step
            head = pt(a + 0.25 * (b - a)) + e2 * (dims[i][3] / step * 0.7)
            for side in (-1, 1):
                q0 = head + side * e1 * rx_b * 0.85
                q1 = q0 + side * e1 * 18.0 / step + e2 * 10.0 / step - t * 4.0 / step
                q2 = q1 + side * e1 * 35.0 / step + e2 * 8.0 / step - t * 12.0 / step
                q3 = q2 + side * e1 * 25.0 / step - e2 * 15.0 / step - t * 15.0 / step
                for u0, u1 in ((q0, q1), (q1, q2), (q2, q3)):
                    p.capsule(u0, u1, rng.uniform(3.5, 5.5) / step * scale, RIB, only=(FAT, MUSCLE, LUNG, VESSEL))
    for c0, c1 in itertools.pairwise(canal_pts):
        p.capsule(c0, c1, canal_r, CSF, only=(FAT, MUSCLE, POSTERIOR, ORGAN_A, ORGAN_B, VESSEL, LUNG, SKULL, BRAIN,
                                              RIB, PELVIS))
    n_cord = int(np.clip((s_cord_end + 12.0) / 3.0, 1, len(canal_pts) - 1))
    for c0, c1 in itertools.pairwise(canal_pts[:n_cord + 1]):
        p.capsule(c0, c1, canal_r * rng.uniform(0.45, 0.6), CORD, only=(CSF,))
    _skull(p, rng, line, frame, pt, canal_pts[0], step, scale)
    return SpineLabelMap(p.tissue, p.region, step, config, centres, discs, half_width)


def _body(p: _Painter, c, t, e1, half_h, rx, ry, reg, step, wedge=0.0):
    shell = 1.6 / step
    p.cylinder(c, t, e1, half_h, rx, ry, CORTEX, reg, wedge=wedge)
    p.cylinder(c, t, e1, half_h, rx - shell, ry - shell, ENDPLATE, reg, wedge=wedge)
    p.cylinder(c, t, e1, max(half_h - shell, 0.5), rx - shell, ry - shell, MARROW, reg, wedge=wedge)


def _sacrum(p, rng, a, b, line, frame, pt, rx, ry, step, canal_r):
    """Sacrum: a tapering column of bone along the curve below S1's top, iliac bones beside its upper half."""
    n = 0
    for si in np.arange(a, b, 3.0):
        frac = (si - a) / max(b - a, 1.0)
        t, e1, e2 = frame(si)
        half = 2.2 / step
        wx = rx * (1.0 + 0.9 * (1 - frac) ** 2) * (1 - 0.55 * frac)
        wy = ry * (1.0 - 0.45 * frac)
        p.cylinder(pt(si), t, e1, half, wx, wy, CORTEX, 5)
        p.cylinder(pt(si), t, e1, half, wx - 0.9, wy - 0.9, MARROW, 5)
        if frac < 0.45:
            for side in (-1, 1):
                c = pt(si) + side * e1 * (wx + 14.0 / step) + e2 * 6.0 / step
                p.cylinder(c, t, e1, half, 10.0 / step, 22.0 / step, PELVIS)
        if rng.random() < 0.25 and 0.25 < frac < 0.3 and n == 0:  # an S1-S2 remnant disc
            p.cylinder(pt(si), t, e1, 0.9, wx * 0.7, wy * 0.7, ANNULUS)
            n = 1
    for si in np.arange(a - 40.0, a + 30.0, 4.0):  # iliac crests up beside the lowest lumbar vertebra
        t, e1, e2 = frame(max(si, 0))
        for side in (-1, 1):
            c = pt(max(si, 0)) + side * e1 * (rx + 50.0 / step) + e2 * 4.0 / step
            p.cylinder(c, t, e1, 2.2 / step, 8.0 / step, 25.0 / step, PELVIS, only=(FAT, MUSCLE, ORGAN_A, ORGAN_B))


def _skull(p, rng, line, frame, pt, canal_top, step, scale):
    """Skull base above the dens: the occipital floor with the foramen magnum over the canal, the clivus rising
    forwards to the front of the dens, the skull's wall and the brain."""
    t, _e1, e2 = frame(0)
    tip = pt(0)
    basion = tip + t * 5.0 / step - e2 * 2.0 / step
    centre = basion + t * 45.0 / step + e2 * 25.0 / step
    radii = np.array([70.0, 85.0, 60.0]) * scale / step
    p.ellipsoid(centre, radii, SKULL)
    p.ellipsoid(centre, radii - 6.0 / step, BRAIN)
    floor = basion + e2 * 20.0 / step
    p.ellipsoid(floor, (30.0 / step, 30.0 / step, 4.0 / step), SKULL)
    p.capsule(canal_top, canal_top + t * 25.0 / step, 9.0 / step, CSF)  # foramen magnum and the medulla's CSF
    p.capsule(basion, basion + t * 35.0 / step - e2 * 20.0 / step, 6.0 / step, SKULL)  # clivus
    # C1: anterior arch in front of the dens, posterior arch behind the canal
    c1 = pt(8.0)
    p.ellipsoid(c1 - e2 * 9.0 / step, (8.0 / step, 3.0 / step, 4.5 / step), CORTEX)
    p.ellipsoid(canal_top + e2 * 9.0 / step - t * 8.0 / step, (14.0 / step, 3.5 / step, 4.0 / step), POSTERIOR)


def _surroundings(p: _Painter, rng, line, layout, names, step, dims):
    """Air, fat, muscle and the organs around the column: a trunk whose front and back walls follow the column,
    a thinner neck, lungs beside the thoracic column, an aorta in front of it, organs in the abdomen."""
    _nx, ny, nz = p.shape
    k_of = line[:, 2]
    order = np.argsort(k_of)
    ks = np.arange(nz)
    y_col = np.interp(ks, k_of[order], line[order, 1])
    x_col = np.interp(ks, k_of[order], line[order, 0])
    s_of_k = np.interp(ks, k_of[order], np.arange(len(line))[order])

    def s_at(name, frac=0.5):
        a, b = layout[name]
        return a + frac * (b - a)

    s_t1, s_t12 = s_at("T1", 0), s_at(f"T{sum(n[0] == 'T' for n in names)}", 1)
    front = np.where(s_of_k < s_t1 - 20, rng.uniform(45, 70), rng.uniform(110, 200)) / step
    back = np.where(s_of_k < s_t1 - 20, rng.uniform(45, 70), rng.uniform(55, 100)) / step
    fat = rng.uniform(4, 30) / step
    yy = np.arange(ny)[None, :, None]
    lo = (y_col - front)[None, None, :]
    hi = (y_col + back)[None, None, :]
    inside = (yy >= lo) & (yy <= hi)
    inner = (yy >= lo + fat) & (yy <= hi - fat)
    tissue = p.tissue
    tissue[:] = AIR
    tissue[np.broadcast_to(inside, p.shape)] = FAT
    tissue[np.broadcast_to(inner, p.shape)] = MUSCLE
    top = int(line[0, 2] + 10 / step)
    tissue[:, :, top:] = np.where(tissue[:, :, top:] != AIR, MUSCLE, AIR)
    # lungs: beside and in front of the thoracic column
    for si in np.arange(s_t1 + 10, s_t12 - 10, 6.0):
        c = line[int(np.clip(si, 0, len(line) - 1))]
        for side in (-1, 1):
            p.ellipsoid(c + np.array([side * 55.0, -35.0, 0.0]) / step,
                        (40.0 / step, 55.0 / step, 6.0 / step), LUNG, only=(MUSCLE,))
    # trachea in front of the cervical column
    for si in np.arange(10.0, s_t1 + 20, 5.0):
        c = line[int(np.clip(si, 0, len(line) - 1))]
        p.ellipsoid(c + np.array([0.0, -28.0, 0.0]) / step, (9.0 / step, 8.0 / step, 4.0 / step), LUNG,
                    only=(MUSCLE, FAT))
    # aorta in front and to the left of the thoracolumbar column
    s_end = s_at("S1", 0) - 40
    pts = [line[int(np.clip(si, 0, len(line) - 1))] + np.array([12.0, -28.0, 0.0]) / step
           for si in np.arange(s_t1 + 40, s_end, 10.0)]
    r_ao = rng.uniform(9.0, 15.0) / step
    for a, b in itertools.pairwise(pts):
        p.capsule(a, b, r_ao, VESSEL, only=(MUSCLE, LUNG))
    # organs: random blobs in front of the column below the thorax and in the pelvis
    for _ in range(rng.integers(4, 10)):
        si = rng.uniform(s_t12 - 60, s_end + 120)
        c = line[int(np.clip(si, 0, len(line) - 1))] + np.array(
            [rng.uniform(-50, 50), -rng.uniform(50, 110), 0.0]) / step
        p.ellipsoid(c, rng.uniform(20, 60, 3) / step, ORGAN_A if rng.random() < 0.5 else ORGAN_B,
                    only=(MUSCLE,))
    # bowel: gas pockets with a wall, and random blobs of any tissue (distractors a labeller must not take for
    # vertebrae: round, walled, bright or dark things in front of and beside the column)
    for _ in range(rng.integers(6, 16)):
        si = rng.uniform(s_t1 - 40, s_end + 140)
        c = line[int(np.clip(si, 0, len(line) - 1))] + np.array(
            [rng.uniform(-60, 60), -rng.uniform(35, 120), 0.0]) / step
        r = rng.uniform(6, 22, 3) / step
        if rng.random() < 0.5:
            p.ellipsoid(c, r + 1.5 / step, ORGAN_B, only=(MUSCLE, ORGAN_A, FAT))
            p.ellipsoid(c, r, AIR, only=(ORGAN_B,))
        else:
            p.ellipsoid(c, r, int(rng.choice([ORGAN_A, ORGAN_B, VESSEL, FAT, CORTEX, MARROW])),
                        only=(MUSCLE, ORGAN_A, ORGAN_B, FAT))
    del x_col
