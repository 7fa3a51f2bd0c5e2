"""A synthetic CT of a trunk with a spine, for tests and benchmarks (not anatomy-accurate, but HU-realistic).

Each vertebra is a body (cancellous bone in a cortical shell) with a posterior ring around the spinal canal, a
spinous and two transverse processes; intervertebral discs separate the bodies; thoracic vertebrae carry ribs that
slope down and wrap forwards; the sacrum is a wide block without discs flanked by iliac bones; the column follows a
lordotic curve. The exact body centres are returned so tests know the answer.

The top of the neck, when the phantom starts at C1 or C2: C2 is one piece of bone, a body taller than the other
cervical bodies with the dens rising from it (together ~36 mm, about two cervical pitches); C1 is a ring without a
body (anterior arch in front of the dens, lateral masses beside it, posterior arch behind the canal) around the upper
dens; starting at C1 adds the skull base 5 mm above the dens tip (occipital floor with the foramen magnum, the clivus
rising forwards, the skull's wall). C1 has no body centre, so it is not in ``centres``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.spine.anatomy import STANDARD, SpineConfiguration
from core.studies.volume import Volume

_HEIGHTS = {"C": (14.0, 5.0), "T": (21.0, 6.0), "L": (27.0, 10.0)}  # body height, disc height (mm)
_RADII = {"C": (10.0, 8.0), "T": (16.0, 13.0), "L": (23.0, 17.0)}  # body half-width (x), half-depth (y)
_ENDPLATE_MM = 2.0  # cortical endplate and the denser subchondral bone under it
_C2 = (20.0, 16.0)  # C2: body height, dens height (mm), one bone (adults: 35-40 mm from endplate to dens tip)
_DENS_RADII = (5.0, 5.5)  # dens half-width, half-depth (mm)
_C1_HEIGHT = 12.0  # the atlas ring, around the upper part of the dens
_BASION_GAP = 5.0  # dens tip to the basion (front rim of the foramen magnum)
_SKULL_ROOM = 30.0  # extra room kept above the column for the skull base when the phantom starts at C1
_SACRAL_TILT = 0.35  # the sacrum moves back by this many mm per mm down from S1's top
_S1_CENTRE_MM = 15.0  # S1's centre below its top: half an S1 body


@dataclass
class Phantom:
    volume: Volume
    centres: dict[str, tuple[float, float, float]]  # vertebral-body centres, LPS mm
    discs: dict[str, tuple[float, float, float]] = field(default_factory=dict)


def spine_phantom(first: str = "T10", last: str = "S1", shape=(160, 160, 120), spacing=(1.5, 1.5, 2.0),
                  ribs: bool = True, lordosis_mm: float = 8.0, noise_hu: float = 15.0, seed: int = 0,
                  config: SpineConfiguration = STANDARD, chunk: int = 64, endplates: bool = False,
                  trunk_width_mm: float | None = None, wedges: dict[str, float] | None = None) -> Phantom:
    """CT volume (LPS axes, int16 HU) with the vertebrae ``first``..``last`` stacked from the top of the FOV.

    The column starts 10 mm below the top of the field of view; levels that do not fit are left out.
    ``endplates``: close each body's shell with 2 mm cortical endplates top and bottom (S1: top), as in a real spine;
    off by default, the phantom the older tests and the benchmark were written for.
    ``trunk_width_mm``: the trunk's width, by default the field of view's; wider for a sagittal slab that shows only
    the middle of the trunk (muscle on both sides of the spine, not the fat and air of its flanks).
    ``wedges``: vertebra name -> anterior height loss (0..1) of a wedge deformity: the superior endplate slopes
    down from the posterior wall (full height) to the anterior wall (height x (1 - loss)); disc tissue fills the
    space above it. At the automatic measurement's columns (10 % and 90 % of the depth) the loss is 0.9 x loss of
    the full height.
    """
    nx, ny, nz = shape
    sx, sy, sz = spacing
    names = config.vertebrae[config.index(first): config.index(last) + 1]
    skull = names[0] == "C1"
    z_top = (nz - 1) * sz - 10.0 - (_SKULL_ROOM if skull else 0.0)
    layout = []  # (name, z_top, z_bottom) of each body, mm from the bottom of the FOV (C2: dens tip to body)
    z = z_top
    for name in names:
        if name == "S1":
            layout.append((name, z, z - 90.0))
            break
        if name == "C1":  # a ring around the upper dens: C2 starts at the same height, without a disc between
            layout.append((name, z, z - _C1_HEIGHT))
            continue
        if name == "C2":
            layout.append((name, z, z - sum(_C2)))
            z -= sum(_C2) + _HEIGHTS["C"][1]
            continue
        body, disc = _HEIGHTS[name[0]]
        layout.append((name, z, z - body))
        z -= body + disc
    length = max(1.0, z_top - layout[-1][2])
    basion = z_top + _BASION_GAP if skull else None
    cx = (nx - 1) * sx / 2.0
    cy0 = (ny - 1) * sy * 0.55

    def centre_y(zz):  # lordotic curve: bodies move anteriorly (-y) in the middle of the column
        return cy0 - lordosis_mm * np.sin(np.pi * np.clip((z_top - zz) / length, 0, 1))

    rng = np.random.default_rng(seed)
    data = np.empty(shape, dtype=np.int16)
    x = (np.arange(nx) * sx)[:, None]
    y = (np.arange(ny) * sy)[None, :]
    for k0 in range(0, nz, chunk):
        k1 = min(nz, k0 + chunk)
        block = np.full((nx, ny, k1 - k0), -1000.0, dtype=np.float32)
        for kk in range(k0, k1):
            block[:, :, kk - k0] = _slice(kk * sz, x, y, cx, centre_y, layout, ribs, trunk_width_mm or nx * sx,
                                          ny * sy, basion, endplates, wedges or {})
        if noise_hu:
            block += rng.normal(0.0, noise_hu, block.shape).astype(np.float32)
        data[:, :, k0:k1] = np.clip(block, -1024, 3000).astype(np.int16)
    affine = np.diag([sx, sy, sz, 1.0])
    vol = Volume(data=data, affine=affine, modality="CT", series_description="spine phantom",
                 series_uid="phantom:" + "-".join([first, last, str(seed)]))
    centres, discs = {}, {}
    for n, (name, top, bottom) in enumerate(layout):
        if name == "C1":  # no body
            continue
        zc = (top + bottom) / 2 if name != "S1" else top - _S1_CENTRE_MM
        if name == "C2":  # centre of the bone in front of the canal: body and dens, weighted by their volumes
            (hb, hd), (rx, ry) = _C2, _RADII["C"]
            vb, vd = rx * ry * hb, _DENS_RADII[0] * _DENS_RADII[1] * hd
            zc = bottom + (vb * hb / 2 + vd * (hb + hd / 2)) / (vb + vd)
        yc = centre_y(zc) + (_SACRAL_TILT * _S1_CENTRE_MM if name == "S1" else 0.0)  # where S1 is drawn
        centres[name] = (float(cx), float(yc), float(zc))
        if n + 1 < len(layout):
            zd = (bottom + layout[n + 1][1]) / 2
            discs[config.disc_between(name, layout[n + 1][0])] = (float(cx), float(centre_y(zd)), float(zd))
    return Phantom(vol, centres, discs)


def _slice(z, x, y, cx, centre_y, layout, ribs, width, depth, basion=None, endplates=False, wedges=None):
    out = np.full((x.shape[0], y.shape[1]), -1000.0, dtype=np.float32)
    trunk = ((x - cx) / (0.45 * width)) ** 2 + ((y - depth * 0.5) / (0.45 * depth)) ** 2
    out[trunk < 1.0] = -90.0  # fat
    out[trunk < 0.8] = 40.0  # muscle / organs
    cy = centre_y(z)
    if basion is not None and z >= basion:
        _skull(out, x, y, cx, cy, z - basion)
    for n, (name, top, bottom) in enumerate(layout):
        region = name[0] if name != "S1" else "S"
        rx, ry = _RADII.get(region, (25.0, 18.0))
        if name == "C1":
            if bottom <= z <= top:
                _atlas(out, x, y, cx, cy, ry)
            continue
        if name == "C2" and bottom + _C2[0] < z <= top:  # the dens, straight on the body
            dens = ((x - cx) / _DENS_RADII[0]) ** 2 + ((y - cy - 1.0) / _DENS_RADII[1]) ** 2
            out[dens < 1.0] = 480.0
            out[dens < 0.5] = 210.0
            continue
        if region == "S":
            if bottom <= z <= top:
                _sacrum(out, x, y, cx, cy, z, top, plate=endplates and top - z < _ENDPLATE_MM)
            elif top < z <= top + 35.0:  # iliac crests reach up beside L5, apart from it
                for side in (-1, 1):
                    out[(np.abs(x - cx - side * 80.0) < 12.0) & (np.abs(y - cy - 5.0) < 25.0)] = 350.0
            continue
        if bottom <= z <= top:
            r = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
            loss = (wedges or {}).get(name, 0.0)
            # superior endplate: flat, or sloping down to the anterior wall (y = cy - ry) of a wedged body
            z_top = top - loss * (top - bottom) * np.clip((cy + ry - y) / (2 * ry), 0.0, 1.0) if loss else top
            inside = np.broadcast_to(z <= z_top, r.shape)
            out[(r < 1.0) & inside] = 480.0  # cortex
            if loss:
                out[(r < 1.0) & ~inside] = 90.0  # disc tissue over the depressed endplate
            # the endplates close the shell at both ends (C2's top goes on into the dens)
            cancellous = (r < 0.8) & inside
            if endplates:
                cancellous &= np.broadcast_to(z_top - z >= _ENDPLATE_MM, r.shape) if name != "C2" else True
                if z - bottom < _ENDPLATE_MM:
                    cancellous[:] = False
            out[cancellous] = 210.0  # cancellous
            _posterior(out, x, y, cx, cy, rx, ry, canal=7.0 if region != "L" else 9.0)
            if ribs and region == "T" and z > (top + bottom) / 2:
                _rib(out, x, y, cx, cy, rx, ry, z, top, width, depth)
        elif n + 1 < len(layout) and layout[n + 1][1] < z < bottom:
            r = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
            out[r < 1.0] = 90.0  # disc
            _posterior(out, x, y, cx, cy, rx, ry, canal=7.0 if region != "L" else 9.0, open_ring=True)
        if ribs and region == "T" and bottom - 40 < z < (top + bottom) / 2:
            _rib(out, x, y, cx, cy, rx, ry, z, top, width, depth)
    return out


def _atlas(out, x, y, cx, cy, ry):
    """C1: anterior arch in front of the dens (2 mm joint space), lateral masses beside it, the posterior arch
    around the back of the canal; no body."""
    front = cy + 1.0 - _DENS_RADII[1] - 2.0
    out[((x - cx) / 9.0) ** 2 + ((y - front + 3.0) / 3.0) ** 2 < 1.0] = 480.0
    for side in (-1, 1):
        mass = ((x - cx - side * 15.0) / 6.0) ** 2 + ((y - cy - 2.0) / 8.0) ** 2
        out[mass < 1.0] = 480.0
        out[mass < 0.5] = 210.0
    canal = 8.0
    ccy = cy + ry + canal + 1.0
    rr = np.hypot(x - cx, y - ccy)
    out[(rr >= canal) & (rr < canal + 4.0) & (y > ccy - 2.0)] = 480.0
    out[rr < canal] = 15.0


def _skull(out, x, y, cx, cy, h):
    """The skull base ``h`` mm above the basion: the occipital floor (8 mm) with the foramen magnum behind the
    basion, then the clivus rising forwards inside the skull's wall, with brain around it."""
    inside = ((x - cx) / 68.0) ** 2 + ((y - cy - 25.0) / 72.0) ** 2
    out[inside < 1.0] = 480.0  # the skull's wall (and the floor, below)
    if h < 8.0:
        out[np.hypot(x - cx, y - cy - 17.0) < 15.0] = 15.0  # foramen magnum: CSF around the medulla
        return
    out[inside < 0.84] = 30.0  # brain
    clivus = (np.abs(x - cx) < 12.0) & (y > cy - 0.9 * h - 8.0) & (y < cy - 0.9 * h + 4.0)
    out[clivus] = 450.0


def _posterior(out, x, y, cx, cy, rx, ry, canal, open_ring=False):
    ccy = cy + ry + canal + 1.0
    rr = np.hypot(x - cx, y - ccy)
    if not open_ring:
        out[(rr >= canal) & (rr < canal + 5.0)] = 550.0  # pedicles and laminae
        out[(np.abs(x - cx) < 3.0) & (y > ccy + canal) & (y < ccy + canal + 28.0)] = 500.0  # spinous process
        out[(np.abs(y - ccy) < 4.0) & (np.abs(x - cx) > canal) & (np.abs(x - cx) < rx + 20.0)] = 500.0
    else:
        out[(rr >= canal) & (rr < canal + 5.0) & (y > ccy + 2.0)] = 450.0  # facet joints / laminae edge
    out[rr < canal] = 15.0  # canal


def _rib(out, x, y, cx, cy, rx, ry, z, top, width, depth):
    """A rib leaving the vertebra at its upper half, curving forwards, 1 mm lower per 4 mm outwards."""
    drop = top - z
    reach = rx + 12.0 + 4.0 * drop  # lateral distance of the rib at this height
    if reach > 0.42 * width:
        return
    ang = np.clip((reach - rx - 12.0) / (0.3 * width), 0.0, 1.2)
    ry_rib = cy + ry * 0.6 - 25.0 * ang
    for side in (-1, 1):
        xr = cx + side * reach
        rib = ((x - xr) / 5.0) ** 2 + ((y - ry_rib) / 6.0) ** 2 < 1.0
        out[rib] = 450.0


def _sacrum(out, x, y, cx, cy, z, top, plate=False):
    drop = top - z
    ycen = cy + _SACRAL_TILT * drop  # the sacrum tilts backwards
    half_width = 50.0 - 0.3 * drop
    body = ((x - cx) / max(12.0, half_width)) ** 2 + ((y - ycen) / 18.0) ** 2 < 1.0
    out[body] = 480.0 if plate else 260.0  # S1's superior endplate, then sacral marrow
    rr = np.hypot(x - cx, y - (ycen + 24.0))
    out[(rr >= 6) & (rr < 10)] = 500.0
    out[rr < 6] = 15.0
    for side in (-1, 1):  # iliac wings beside the sacroiliac joints, 2 mm gap
        ilium = (np.abs(x - cx - side * (half_width + 22.0)) < 20.0) & (np.abs(y - ycen - 5.0) < 25.0)
        out[ilium & ~body] = 350.0
