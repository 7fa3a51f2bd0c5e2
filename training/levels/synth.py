"""SynthSeg-style training images from spine label maps (Billot et al., Medical Image Analysis 2023).

From a tissue label map (:mod:`spine_model`, or a real map through :mod:`real_maps`) one training sample is drawn:
a random intensity per tissue (a Gaussian mixture: fully random contrasts, or CT-, T1- or T2-like ones with jitter),
partial volume and slice thickness (blur along a random axis), a smooth multiplicative bias field, noise and a
gamma change; then the sagittal slab stack the labeller sees (:mod:`core.spine.autolabel.slabs`, the same code as
at run time), a small in-plane rotation and scaling, and a random field of view (voxels outside it are 0). The
targets follow the same geometry: heatmaps of vertebral-body and disc centres and the anchor class of each body
pixel (:data:`spine_model.REGIONS`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.spine.autolabel.slabs import normalise, raw_stack, slab_offsets
from training.levels import spine_model as sm

# prior means (0..1) per tissue for CT-like, T1-like and T2-like draws (order of spine_model's tissue classes)
_PRIORS = {
    "ct": [0.0, 0.36, 0.42, 0.43, 0.45, 0.05, 0.47, 0.78, 0.50, 0.70, 0.44, 0.43, 0.44, 0.405, 0.415, 0.70, 0.70,
           0.85, 0.41, 0.72],
    "t1": [0.0, 0.90, 0.30, 0.35, 0.42, 0.02, 0.05, 0.05, 0.62, 0.45, 0.30, 0.35, 0.25, 0.10, 0.35, 0.45, 0.50,
           0.10, 0.40, 0.15],
    "t2": [0.0, 0.70, 0.20, 0.30, 0.45, 0.02, 0.05, 0.05, 0.40, 0.30, 0.20, 0.80, 0.15, 0.95, 0.40, 0.30, 0.35,
           0.10, 0.50, 0.10],
}
SIGMA_PX = 1.5  # Gaussian of the centre heatmaps, pixels


@dataclass
class SynthOptions:
    rows: int = 128
    cols: int = 96
    p_random_contrast: float = 0.5  # otherwise CT/T1/T2-like
    p_thick: float = 0.6  # a thick-slice axis
    max_rotation_deg: float = 12.0
    scale_range: tuple[float, float] = (0.88, 1.12)
    p_small_fov: float = 0.35
    max_noise: float = 0.06
    max_bias: float = 0.35
    # 0.2.0 additions (0 = off: how 0.1.0 was trained)
    p_lateral: float = 0.0  # share of stacks centred beside the body (no targets there: do not fire off the midline)
    lateral_max_mm: float = 70.0  # how far beside the body's centre such a stack may lie
    midline_sigma_mm: float = 0.0  # centre targets fade with the stack's left-right distance from the body centre
    max_texture: float = 0.0  # largest amplitude of spatially correlated texture within a tissue (trabecular bone)
    # 0.3.0 additions (0 / 0.3 = off: how 0.1.0 was trained)
    p_flat: float = 0.0  # share of draws with a flat contrast (see tissue_means): only the bone rims tell body from disc
    p_side_empty: float = 0.0  # share of stacks whose side slabs lie outside the image (a tight left-right crop)
    min_fov_rows: float = 0.3  # smallest height of a small field of view, share of the patch rows
    min_fov_cols: float = 0.45  # smallest front-to-back width of a small field of view, share of the patch columns


@dataclass
class Sample:
    image: np.ndarray  # (3, rows, cols) float32 0..1
    heat: np.ndarray  # (2, rows, cols) float32: body centres, disc centres
    region: np.ndarray  # (rows, cols) int64: REGIONS index
    bodies: dict[str, tuple[float, float]]  # name -> (row, col) of the body centres the targets hold
    contrast: str
    fov: np.ndarray  # (rows, cols) bool: the simulated field of view
    x_offset_mm: float = 0.0  # left-right distance of the stack from the focus body's centre
    stack_x: int = 0  # left-right grid index of the stack's central slab in the label map


BONE_RIMS = (sm.CORTEX, sm.ENDPLATE, sm.RIB, sm.PELVIS, sm.SKULL, sm.POSTERIOR)


def flat_means(rng: np.random.Generator) -> np.ndarray:
    """Means of a *flat* contrast: marrow, discs, muscle, organs and the other soft tissues all within a narrow band
    (+-0.01..0.06 of a base level), fat a little darker, air and lung dark, and the cortex, endplates and other bone
    either brighter (CT: 80% of draws) or darker (MR) by 0.08-0.25. Real CT stacks look like this after the
    percentile mapping when air fills much of the field of view (the soft tissue and marrow of an older patient end
    up within a few hundredths of each other near the top of the range, and the endplates are thin lines above
    them); a network that tells bodies from discs by their brightness fires on the discs there."""
    base = rng.uniform(0.55, 0.85)
    band = rng.uniform(0.01, 0.06)
    means = base + rng.uniform(-band, band, sm.N_TISSUES)
    means[sm.AIR] = rng.uniform(0.0, 0.05)
    means[sm.LUNG] = rng.uniform(0.0, 0.12)
    means[sm.FAT] = base - rng.uniform(0.06, 0.2)
    sign = 1.0 if rng.random() < 0.8 else -1.0
    means[list(BONE_RIMS)] = base + sign * rng.uniform(0.08, 0.25, len(BONE_RIMS))
    return np.clip(means, 0.0, 1.0)


def tissue_means(rng: np.random.Generator, contrast: str) -> tuple[np.ndarray, np.ndarray]:
    """Random (mean, std) of every tissue class: uniform means for 'random', :func:`flat_means` for 'flat', else
    the contrast's prior (ct, t1, t2) with jitter (enhanced vessels and organs in some CTs)."""
    if contrast == "flat":
        return flat_means(rng), rng.uniform(0.005, 0.03, sm.N_TISSUES)
    if contrast == "random":
        means = rng.uniform(0.0, 1.0, sm.N_TISSUES)
    else:
        means = np.clip(np.array(_PRIORS[contrast]) + rng.normal(0.0, 0.06, sm.N_TISSUES), 0.0, 1.0)
        if contrast == "ct" and rng.random() < 0.3:
            means[[sm.VESSEL, sm.ORGAN_A]] = rng.uniform(0.5, 0.65, 2)
    return means, rng.uniform(0.005, 0.06, sm.N_TISSUES)


def render(tissue: np.ndarray, means: np.ndarray, stds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The Gaussian mixture: each voxel drawn from its tissue's N(mean, std)."""
    out = means[tissue].astype(np.float32)
    out += rng.standard_normal(tissue.shape, dtype=np.float32) * stds[tissue].astype(np.float32)
    return out


def intensities(tissue: np.ndarray, rng: np.random.Generator, contrast: str) -> np.ndarray:
    """Random intensity per tissue class (GMM) for a label map."""
    return render(tissue, *tissue_means(rng, contrast), rng)


def texture(tissue: np.ndarray, rng: np.random.Generator, max_amp: float) -> np.ndarray:
    """Spatially correlated texture to add to a rendered map: smooth noise of unit variance (correlation length of
    1-3 voxels, like trabecular bone or muscle fibres) times a random amplitude per tissue (0..``max_amp``)."""
    if max_amp <= 0:
        return np.zeros(tissue.shape, dtype=np.float32)
    sigma = rng.uniform(0.6, 1.5)
    noise = ndimage.gaussian_filter(rng.standard_normal(tissue.shape, dtype=np.float32), sigma)
    noise /= max(float(noise.std()), 1e-6)
    amp = rng.uniform(0.0, max_amp, sm.N_TISSUES).astype(np.float32)
    amp[sm.AIR] = 0.0
    return noise * amp[tissue]


def degrade(vol: np.ndarray, rng: np.random.Generator, opt: SynthOptions, step: float) -> np.ndarray:
    """Partial volume and slice thickness, bias field, noise, gamma."""
    sigma = rng.uniform(0.3, 0.8, 3)
    if rng.random() < opt.p_thick:
        axis = int(rng.choice([0, 2], p=[0.6, 0.4]))  # sagittal MR slices, or axial slices
        thick = rng.uniform(2.5, 6.0)
        sigma[axis] = thick / 2.355 / step
    vol = ndimage.gaussian_filter(vol, sigma, mode="nearest")
    if opt.max_bias > 0:
        small = rng.normal(0.0, 1.0, (3, 4, 5)).astype(np.float32)
        field = ndimage.zoom(small, np.array(vol.shape) / np.array(small.shape), order=1)
        vol = vol * np.exp(field[: vol.shape[0], : vol.shape[1], : vol.shape[2]] * rng.uniform(0, opt.max_bias))
    vol = vol + rng.standard_normal(vol.shape, dtype=np.float32) * rng.uniform(0.0, opt.max_noise)
    lo, hi = np.percentile(vol[:: 3, :: 3, :: 3], [0.5, 99.5])
    vol = np.clip((vol - lo) / max(hi - lo, 1e-6), 0, 1)
    return vol ** np.exp(rng.normal(0.0, 0.25))


def _gauss(heat: np.ndarray, r: float, c: float, sigma: float = SIGMA_PX, amp: float = 1.0) -> None:
    rows, cols = heat.shape
    r0, r1 = max(0, int(r - 4 * sigma)), min(rows, int(r + 4 * sigma) + 2)
    c0, c1 = max(0, int(c - 4 * sigma)), min(cols, int(c + 4 * sigma) + 2)
    if r1 <= r0 or c1 <= c0:
        return
    rr, cc = np.mgrid[r0:r1, c0:c1]
    g = amp * np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * sigma * sigma))
    np.maximum(heat[r0:r1, c0:c1], g, out=heat[r0:r1, c0:c1])


def draw_sample(spine: sm.SpineLabelMap, rng: np.random.Generator, opt: SynthOptions | None = None) -> Sample:
    """One training sample from a label map."""
    opt = opt or SynthOptions()
    step = spine.step
    half, lateral = slab_offsets(step)
    names = list(spine.centres)
    focus = names[rng.integers(len(names))]
    cx = spine.centres[focus]
    if opt.p_lateral > 0 and rng.random() < opt.p_lateral:  # beside the body: no targets (draws as 0.1.0 when off)
        side = rng.uniform(spine.half_width[focus], max(spine.half_width[focus] + 1, opt.lateral_max_mm / step))
        x0 = int(np.rint(cx[0] + side * rng.choice([-1.0, 1.0])))
    else:
        x0 = int(np.rint(cx[0] + rng.normal(0.0, 0.25 * spine.half_width[focus])))
    # sub-volume around the focus: all LR slices the stack uses, the whole AP, enough SI for rotation and scale
    span = int(opt.rows * 0.75 * opt.scale_range[1]) + 8
    k_c = int(np.rint(cx[2] + rng.uniform(-0.3, 0.3) * opt.rows))
    lo = np.array([x0 - lateral - half, 0, k_c - span])
    hi = np.array([x0 + lateral + half + 1, spine.tissue.shape[1], k_c + span])
    sub = _crop(spine.tissue, lo, hi, sm.AIR)
    reg = _crop(spine.region[x0: x0 + 1], np.array([0, 0, lo[2]]), np.array([1, hi[1], hi[2]]), 0)[0]
    if opt.p_flat > 0 and rng.random() < opt.p_flat:  # (draws as 0.1.0 when off)
        contrast = "flat"
    else:
        contrast = "random" if rng.random() < opt.p_random_contrast else str(rng.choice(["ct", "t1", "t2"]))
    vol = intensities(sub, rng, contrast)
    if opt.max_texture > 0:
        vol += texture(sub, rng, opt.max_texture)
    vol = degrade(vol, rng, opt, step)
    stack = raw_stack(vol, x0 - lo[0], step)  # (3, S rows top->bottom, P cols)
    if opt.p_side_empty > 0 and rng.random() < opt.p_side_empty:  # as raw_stack gives slabs outside the image
        stack[[[1], [2], [1, 2]][rng.integers(3)]] = np.nan
    n_s = vol.shape[2]
    region2d = reg.T[::-1]  # rows S top->bottom, cols P
    # output pixel (r, c) -> stack pixel: rotation + scale about the focus
    ang = np.radians(rng.uniform(-opt.max_rotation_deg, opt.max_rotation_deg))
    scale = rng.uniform(*opt.scale_range)
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]]) / scale
    centre_in = np.array([n_s - 1 - (cx[2] - lo[2]), cx[1] + rng.uniform(-10, 10)])
    centre_out = np.array([opt.rows / 2 + rng.uniform(-0.25, 0.25) * opt.rows, opt.cols / 2])
    offset = centre_in - rot @ centre_out
    image = np.stack([ndimage.affine_transform(ch, rot, offset, (opt.rows, opt.cols), order=1, cval=np.nan)
                      for ch in stack])
    region = ndimage.affine_transform(region2d, rot, offset, (opt.rows, opt.cols), order=0, cval=0)
    fov = _fov(rng, opt)
    image[:, ~fov] = np.nan
    region[~fov] = 0
    image = normalise(image)
    inv = np.linalg.inv(rot)

    def to_out(p):
        rc = np.array([n_s - 1 - (p[2] - lo[2]), p[1] - lo[1]])
        return inv @ (rc - offset)

    heat = np.zeros((2, opt.rows, opt.cols), dtype=np.float32)
    bodies = {}

    def amplitude(dx: float) -> float:
        return float(np.exp(-0.5 * (dx * step / opt.midline_sigma_mm) ** 2)) if opt.midline_sigma_mm > 0 else 1.0

    for name, p in spine.centres.items():
        if abs(p[0] - x0) > max(1.0, spine.half_width[name] - 2.0):
            continue
        r, c = to_out(p)
        if _inside(fov, r, c):
            _gauss(heat[0], r, c, amp=amplitude(abs(p[0] - x0)))
            bodies[name] = (float(r), float(c))
    for name, p in spine.discs.items():
        upper = name.split("-")[0]
        if abs(p[0] - x0) > max(1.0, spine.half_width.get(upper, 5.0) - 2.0):
            continue
        r, c = to_out(p)
        if _inside(fov, r, c):
            _gauss(heat[1], r, c, amp=amplitude(abs(p[0] - x0)))
    return Sample(image.astype(np.float32), heat, region.astype(np.int64), bodies, contrast, fov,
                  float((x0 - cx[0]) * step), int(x0))


def _crop(a: np.ndarray, lo: np.ndarray, hi: np.ndarray, fill: int) -> np.ndarray:
    out = np.full(tuple(hi - lo), fill, dtype=a.dtype)
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(hi, a.shape)
    if np.any(src_hi <= src_lo):
        return out
    dst = tuple(slice(s - l0, e - l0) for s, e, l0 in zip(src_lo, src_hi, lo))
    out[dst] = a[tuple(slice(s, e) for s, e in zip(src_lo, src_hi))]
    return out


def _fov(rng: np.random.Generator, opt: SynthOptions) -> np.ndarray:
    """A random rectangular field of view inside the patch (small ones: crops around a few vertebrae)."""
    mask = np.zeros((opt.rows, opt.cols), dtype=bool)
    if rng.random() < opt.p_small_fov:
        h = int(rng.uniform(opt.min_fov_rows, 0.7) * opt.rows)
        w = int(rng.uniform(opt.min_fov_cols, 0.9) * opt.cols)
    else:
        h, w = opt.rows, opt.cols
    r0 = rng.integers(0, opt.rows - h + 1)
    c0 = rng.integers(0, opt.cols - w + 1)
    mask[r0:r0 + h, c0:c0 + w] = True
    return mask


def _inside(mask: np.ndarray, r: float, c: float) -> bool:
    ri, ci = int(np.rint(r)), int(np.rint(c))
    return 0 <= ri < mask.shape[0] and 0 <= ci < mask.shape[1] and bool(mask[ri, ci])
