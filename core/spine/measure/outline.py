"""A vertebral body's outline in its mid-sagittal plane: the image basis of the automatic measurements.

For one labelled vertebra a local frame is set up at its body centre: ``axis`` (the local spine axis, cranial),
``ap`` (anterior -> posterior, perpendicular to the axis in the sagittal plane) and ``lat``. The image (or a
vertebra's mask) is sampled on that plane on a 0.5 mm grid, averaged over a 5 mm lateral slab (noise), between the
neighbouring vertebrae's centres. The body is then the connected region around the centre that looks like the
body's own tissue:

- CT: brighter than a threshold half-way between the body's level and the disc's level, both found by Otsu's
  method on the central column (so cortical endplates belong to the body; no fixed Hounsfield threshold);
- MR: within half the body-disc contrast of the body's level (the polarity differs between T1 and T2);
- a mask: inside the vertebra's label (sampled linearly, edge at 0.5).

A thin opening (1 mm) cuts osteophyte bridges; in the mid-sagittal plane the posterior elements are a separate
region behind the canal. Each column of the region gives a superior and an inferior endplate position (sub-sample,
by linear interpolation of the crossing); an end that reaches the sampled window or leaves the image is unknown.
Everything is approximate and says why when it cannot measure.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.studies.volume import Volume

STEP_MM = 0.5
SLAB_MM = (-2.0, -1.0, 0.0, 1.0, 2.0)
HALF_WIDTH_MM = 40.0


class OutlineError(Exception):
    """The body cannot be outlined here; the message says why, for the user."""


@dataclass
class Frame:
    centre: np.ndarray  # LPS mm
    axis: np.ndarray  # unit, cranial
    ap: np.ndarray  # unit, posterior, perpendicular to axis
    lat: np.ndarray  # unit

    @classmethod
    def make(cls, centre, axis) -> Frame:
        axis = np.asarray(axis, dtype=float)
        axis = axis / np.linalg.norm(axis)
        if axis[2] < 0:
            axis = -axis
        ap = np.array([0.0, 1.0, 0.0]) - axis[1] * axis
        if np.linalg.norm(ap) < 1e-3:
            raise OutlineError("the spine axis runs anterior-posterior here: no sagittal frame")
        ap /= np.linalg.norm(ap)
        return cls(np.asarray(centre, dtype=float), axis, ap, np.cross(axis, ap))

    def point(self, u: float, v: float) -> np.ndarray:
        return self.centre + u * self.ap + v * self.axis

    def uv(self, p) -> tuple[float, float]:
        d = np.asarray(p, dtype=float) - self.centre
        return float(d @ self.ap), float(d @ self.axis)


class Sampler:
    """Values of a volume at LPS points (linear interpolation, NaN outside the image); of one label if given."""

    def __init__(self, volume: Volume, label: int | None = None) -> None:
        if volume.is_2d:
            raise OutlineError("a single slice: automatic measurements need a 3D series")
        self.volume, self.label = volume, label

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        shape = np.array(self.volume.shape)
        ijk = self.volume.patient_to_voxel(pts.reshape(-1, 3))
        out = np.full(len(ijk), np.nan, dtype=np.float32)
        valid = np.all((ijk >= -0.5) & (ijk <= shape - 0.5), axis=1)
        if not valid.any():
            return out.reshape(pts.shape[:-1])
        lo = np.clip(np.floor(ijk[valid].min(axis=0)).astype(int) - 1, 0, shape - 1)
        hi = np.clip(np.ceil(ijk[valid].max(axis=0)).astype(int) + 2, 1, shape)
        sub = np.asarray(self.volume.data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
        sub = (sub == self.label).astype(np.float32) if self.label is not None else sub.astype(np.float32)
        coords = (ijk[valid] - lo).T
        out[valid] = ndimage.map_coordinates(sub, coords, order=1, mode="nearest")
        return out.reshape(pts.shape[:-1])


@dataclass
class Band:
    u: float  # mm along ap
    top: float  # v of the superior endplate (mm along axis)
    bottom: float  # v of the inferior endplate

    @property
    def height(self) -> float:
        return self.top - self.bottom


@dataclass
class Outline:
    frame: Frame
    us: np.ndarray
    vs: np.ndarray
    region: np.ndarray  # bool [v, u]
    top: np.ndarray  # per column, v of the superior edge (NaN unknown / not in the body)
    bottom: np.ndarray
    u_ant: float
    u_post: float
    body_level: float
    disc_level: float

    @property
    def depth(self) -> float:
        return self.u_post - self.u_ant

    def band(self, frac: float, half: float = 0.05) -> Band | None:
        """Median endplates over the columns at ``frac`` (0 anterior wall .. 1 posterior wall) +- ``half`` of the
        depth; None when fewer than half of those columns have both endplates."""
        u0, u1 = self.u_ant + (frac - half) * self.depth, self.u_ant + (frac + half) * self.depth
        cols = np.nonzero((self.us >= u0) & (self.us <= u1))[0]
        if cols.size == 0:
            return None
        t, b = self.top[cols], self.bottom[cols]
        ok = np.isfinite(t) & np.isfinite(b)
        if ok.sum() < max(1, cols.size / 2):
            return None
        return Band(float(np.mean(self.us[cols])), float(np.median(t[ok])), float(np.median(b[ok])))

    def edge(self, frac: float, side: str) -> float | None:
        """One endplate ('top' or 'bottom') at ``frac`` of the depth: known even if the other end is not."""
        u0, u1 = self.u_ant + (frac - 0.05) * self.depth, self.u_ant + (frac + 0.05) * self.depth
        cols = np.nonzero((self.us >= u0) & (self.us <= u1))[0]
        vals = (self.top if side == "top" else self.bottom)[cols]
        vals = vals[np.isfinite(vals)]
        return float(np.median(vals)) if cols.size and vals.size >= max(1, cols.size / 2) else None

    def wall_axis(self, max_deg: float = 20.0) -> np.ndarray | None:
        """The body's own long axis (LPS unit vector): the mean direction of its anterior and posterior walls,
        fitted over the middle 60 % of its height; None when the walls are not found or tilt more than ``max_deg``
        from the frame's axis (then the frame is kept)."""
        mid = self.band(0.5)
        if mid is None:
            return None
        rows = np.nonzero(np.abs(self.vs - (mid.top + mid.bottom) / 2) <= 0.3 * mid.height)[0]
        rows = [r for r in rows if self.region[r].any()]
        if len(rows) < 5:
            return None
        v = self.vs[rows]
        slopes = []
        for pick in (np.min, np.max):
            u = np.array([self.us[pick(np.nonzero(self.region[r])[0])] for r in rows])
            slopes.append(np.polyfit(v, u, 1)[0])
        slope = float(np.mean(slopes))
        if abs(np.degrees(np.arctan(slope))) > max_deg:
            return None
        axis = self.frame.axis + slope * self.frame.ap
        return axis / np.linalg.norm(axis)

    def wall(self, v: float, side: str) -> float | None:
        """u of the anterior ('ant') or posterior ('post') body wall in the rows around ``v`` (+-1 mm)."""
        rows = np.nonzero(np.abs(self.vs - v) <= 1.0)[0]
        vals = []
        for r in rows:
            cols = np.nonzero(self.region[r])[0]
            if cols.size:
                vals.append(self.us[cols.min()] - STEP_MM / 2 if side == "ant" else self.us[cols.max()] + STEP_MM / 2)
        return float(np.median(vals)) if vals else None


def _otsu(values: np.ndarray) -> float:
    v = np.sort(values[np.isfinite(values)])
    if v.size < 4 or v[-1] - v[0] < 1e-6:
        raise OutlineError("no contrast along the spine axis")
    hist, edges = np.histogram(v, bins=64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    return float(centres[int(np.argmax(w0 * w1 * (m0 - m1) ** 2))])


def sample_plane(sampler: Sampler, frame: Frame, v_lo: float, v_hi: float,
                 half_width: float = HALF_WIDTH_MM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    us = np.arange(-half_width, half_width + 1e-6, STEP_MM)
    vs = np.arange(v_lo, v_hi + 1e-6, STEP_MM)
    uu, vv = np.meshgrid(us, vs)  # [v, u]
    base = frame.centre + uu[..., None] * frame.ap + vv[..., None] * frame.axis
    planes = [sampler(base + w * frame.lat) for w in SLAB_MM]
    return np.mean(planes, axis=0), us, vs  # NaN anywhere in the slab -> NaN


def outline(sampler: Sampler, frame: Frame, v_lo: float, v_hi: float, mode: str,
            min_contrast: float = 0.0) -> Outline:
    """Outline the body around the frame centre; ``mode`` is 'ct', 'mr' or 'mask'."""
    plane, us, vs = sample_plane(sampler, frame, v_lo, v_hi)
    finite = np.isfinite(plane)
    u0 = int(np.argmin(np.abs(us)))
    v0 = int(np.argmin(np.abs(vs)))
    if not finite[v0, u0]:
        raise OutlineError("the body centre is outside the image")
    fill = float(np.nanmedian(plane))
    filled = np.where(finite, plane, fill)
    fine = ndimage.gaussian_filter(filled, 0.6 / STEP_MM)  # for the edges
    smooth = ndimage.gaussian_filter(filled, 1.2 / STEP_MM) if mode == "mr" else fine  # MR marrow is textured
    if mode == "mask":
        body, disc, inside = 1.0, 0.0, smooth >= 0.5
    else:
        core_u = np.abs(us) <= 4.0
        fin = finite[:, core_u]
        count = fin.sum(axis=1)
        column = np.where(count > 0, np.where(fin, smooth[:, core_u], 0.0).sum(axis=1) / np.maximum(count, 1), np.nan)
        thr = _otsu(column)
        centre_high = np.nanmedian(column[np.abs(vs) <= 3.0]) >= thr
        high, low = column[column >= thr], column[column < thr]
        body, disc = (np.median(high), np.median(low)) if centre_high else (np.median(low), np.median(high))
        noise = 1.4826 * float(np.nanmedian(np.abs(plane[np.abs(vs) <= 3.0][:, core_u] - body)))
        contrast = abs(body - disc)
        weak = contrast < max(min_contrast, 3.0 * noise / np.sqrt(len(SLAB_MM)))
        why = (f"body and disc differ by {contrast:.0f} (noise {noise:.0f}): too little contrast to find the "
               "endplates") if weak else "the labelled centre is darker than the discs"
        if mode == "ct" and (weak or not centre_high):
            inside, mode = _shell(fine, finite, why), "shell"  # fatty / osteoporotic marrow: use the cortex
        elif weak:
            raise OutlineError(why)
        elif mode == "ct":
            inside = smooth >= (body + disc) / 2
        else:
            core = smooth[np.abs(vs) <= 3.0][:, core_u]
            texture = 1.4826 * float(np.median(np.abs(core - np.median(core))))
            inside = np.abs(smooth - body) <= max(contrast / 2, 2.0 * texture)
    inside &= finite
    opened = ndimage.binary_opening(inside, structure=_disk(round(1.0 / STEP_MM)))
    labels, n = ndimage.label(opened)
    if n == 0:
        raise OutlineError("no body tissue at the labelled centre")
    lab = labels[v0, u0]
    if lab == 0:  # the centre pixel fell in a gap: take the label nearest to it within 4 mm
        r = round(4.0 / STEP_MM)
        win = labels[max(0, v0 - r): v0 + r + 1, max(0, u0 - r): u0 + r + 1]
        if not win.any():
            raise OutlineError("no body tissue within 4 mm of the labelled centre")
        lab = int(np.bincount(win[win > 0]).argmax())
    region = labels == lab
    top, bottom = _edges(region, fine, finite, vs, body, disc, mode)
    central = np.nonzero(np.abs(vs - _mid_v(top, bottom, u0)) <= 3.0)[0]
    ants = [us[np.nonzero(region[r])[0].min()] for r in central if region[r].any()]
    posts = [us[np.nonzero(region[r])[0].max()] for r in central if region[r].any()]
    if not ants:
        raise OutlineError("the body outline has no central part")
    out = Outline(frame, us, vs, region, top, bottom, float(np.median(ants)) - STEP_MM / 2,
                  float(np.median(posts)) + STEP_MM / 2, float(body), float(disc))
    return out


def _shell(fine: np.ndarray, finite: np.ndarray, why: str) -> np.ndarray:
    """CT bodies whose marrow is no denser than a disc (fat, osteoporosis): the region enclosed by cortical bone
    (above half-way between the plane's median and its 98th percentile, and above 150 HU), holes filled."""
    vals = fine[finite]
    thr = max(150.0, (float(np.median(vals)) + float(np.percentile(vals, 98))) / 2.0)
    cortex = ndimage.binary_closing(fine >= thr, structure=_disk(round(1.0 / STEP_MM)))
    inside = ndimage.binary_fill_holes(cortex)
    if inside.sum() <= cortex.sum() * 1.2:
        raise OutlineError(f"{why}, and no cortical shell encloses it")
    return inside


def _mid_v(top: np.ndarray, bottom: np.ndarray, u0: int) -> float:
    t, b = top[max(0, u0 - 4): u0 + 5], bottom[max(0, u0 - 4): u0 + 5]
    ok = np.isfinite(t) & np.isfinite(b)
    return float(np.median((t[ok] + b[ok]) / 2)) if ok.any() else 0.0


def _disk(r: int) -> np.ndarray:
    y, x = np.ogrid[-r: r + 1, -r: r + 1]
    return x * x + y * y <= r * r


def _edges(region, smooth, finite, vs, body, disc, mode) -> tuple[np.ndarray, np.ndarray]:
    """Per column: v of the top and bottom edge of the region (sub-sample), NaN when unknown."""
    nv, nu = region.shape
    top = np.full(nu, np.nan)
    bottom = np.full(nu, np.nan)
    thr = (body + disc) / 2
    sign = 1.0 if body >= disc else -1.0
    for c in np.nonzero(region.any(axis=0))[0]:
        rows = np.nonzero(region[:, c])[0]
        r_top, r_bot = rows.max(), rows.min()
        if mode == "shell":
            g = region[:, c].astype(float) - 0.5
        elif mode == "mr":
            g = abs(body - disc) / 2 - np.abs(smooth[:, c] - body)
        else:
            g = sign * (smooth[:, c] - thr)
        if r_top + 1 < nv and finite[r_top + 1, c]:
            top[c] = vs[0] + STEP_MM * _crossing(g, r_top, +1)
        if r_bot - 1 >= 0 and finite[r_bot - 1, c]:
            bottom[c] = vs[0] + STEP_MM * _crossing(g, r_bot, -1)
    return top, bottom


def _crossing(g: np.ndarray, r: int, direction: int, reach: int = 3) -> float:
    """Sub-sample index where ``g`` (>= 0 inside) crosses zero leaving the region at row ``r`` in ``direction``:
    the crossing nearest to r within ``reach`` samples (the region may come from a smoother image), else r + 0.5."""
    best = None
    for a in range(r - reach, r + reach + 1):
        b = a + direction
        if not (0 <= a < len(g) and 0 <= b < len(g)):
            continue
        if g[a] >= 0 > g[b]:
            x = a + direction * float(g[a] / (g[a] - g[b]))
            if best is None or abs(x - r) < abs(best - r):
                best = x
    return best if best is not None else r + 0.5 * direction
