"""Synthesis for the learned labeller: random spine label maps, real label maps, SynthSeg-style images with known
answers (tissue intensity statistics, body centres and classes surviving rotation, scaling and field-of-view crops,
slab stacks oriented as at run time)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from core.spine.anatomy import SpineConfiguration
from core.spine.autolabel.slabs import normalise, raw_stack, slab_offsets
from training.levels import spine_model as sm
from training.levels.synth import BONE_RIMS, SynthOptions, _fov, draw_sample, render, texture, tissue_means

STILL = SynthOptions(max_rotation_deg=0.0, scale_range=(1.0, 1.0), p_small_fov=0.0, p_thick=0.0, max_noise=0.0,
                     max_bias=0.0)


@pytest.fixture(scope="module")
def spine():
    return sm.generate_spine(np.random.default_rng(3), sm.SpineOptions(p_t11=0, p_t13=0, p_l4=0, p_l6=0))


def test_spine_has_every_body_with_its_class(spine):
    config = spine.config
    assert config == SpineConfiguration()
    assert list(spine.centres) == list(config.vertebrae[1:])  # C2 .. S1, spine order
    for name, c in spine.centres.items():
        i, j, k = np.round(c).astype(int)
        assert spine.region[i, j, k] == sm.region_of(name), name
        assert spine.tissue[i, j, k] in (sm.MARROW, sm.CORTEX, sm.ENDPLATE), name
    zs = [c[2] for c in spine.centres.values()]
    assert all(a > b for a, b in itertools.pairwise(zs))  # cranial to caudal: k falls
    for disc, c in spine.discs.items():
        upper, lower = disc.split("-")
        assert spine.centres[lower][2] < c[2] < spine.centres[upper][2], disc
        i, j, k = np.round(c).astype(int)
        assert spine.tissue[i, j, k] in (sm.ANNULUS, sm.NUCLEUS, sm.DEGENERATED, sm.ENDPLATE, sm.CORTEX), disc
    # the canal lies behind the bodies (+P), with CSF in it
    l3 = np.round(spine.centres["L3"]).astype(int)
    behind = spine.tissue[l3[0], l3[1]:, l3[2]]
    assert sm.CSF in behind


def test_variants_change_the_levels():
    six = sm.generate_spine(np.random.default_rng(1), sm.SpineOptions(p_t11=0, p_t13=0, p_l4=0, p_l6=1.0))
    assert "L6" in six.centres and six.config.lumbar == 6
    assert six.region[tuple(np.round(six.centres["L6"]).astype(int))] == sm.region_of("L6") == 4
    t13 = sm.generate_spine(np.random.default_rng(2), sm.SpineOptions(p_t11=0, p_t13=1.0, p_l4=0, p_l6=0))
    assert "T13" in t13.centres and t13.region[tuple(np.round(t13.centres["T13"]).astype(int))] == 3


def test_gaussian_mixture_statistics():
    rng = np.random.default_rng(0)
    tissue = np.zeros((40, 40, 40), dtype=np.uint8)
    tissue[20:] = sm.MARROW
    tissue[:, :10] = sm.CSF
    means, stds = tissue_means(rng, "random")
    img = render(tissue, means, stds, rng)
    for label in (sm.AIR, sm.MARROW, sm.CSF):
        vals = img[tissue == label]
        assert abs(vals.mean() - means[label]) < 4 * stds[label] / np.sqrt(vals.size) + 1e-4
        assert abs(vals.std() - stds[label]) < 0.1 * stds[label] + 1e-4
    # contrast priors keep their order: CSF bright on T2, dark on T1; cortex bright on CT
    t2, _ = tissue_means(np.random.default_rng(1), "t2")
    t1, _ = tissue_means(np.random.default_rng(1), "t1")
    ct, _ = tissue_means(np.random.default_rng(1), "ct")
    assert t2[sm.CSF] > t2[sm.MARROW] and t1[sm.CSF] < t1[sm.MARROW] and ct[sm.CORTEX] > ct[sm.MUSCLE]


def test_slab_stack_orientation():
    step = 2.0
    half, lateral = slab_offsets(step)
    data = np.zeros((60, 30, 50), dtype=np.float32)  # L, P, S
    data[30, 7, 40] = 9.0  # centre slab, 7 voxels back, high up
    data[30 + lateral, 20, 5] = 5.0  # right-hand side slab (towards L), low down
    st = raw_stack(data, 30, step)
    assert st.shape == (3, 50, 30)
    assert st[0, 50 - 1 - 40, 7] == pytest.approx(9.0 / (2 * half + 1))
    assert st[2, 50 - 1 - 5, 20] == pytest.approx(5.0 / (2 * half + 1))
    assert st[1].max() == 0.0
    # a side slab wholly outside the volume is no data: 0 after normalisation
    edge = normalise(raw_stack(data + np.arange(50, dtype=np.float32), 1, step))
    assert np.all(edge[1] == 0.0) and edge[0].max() > 0


def test_sample_targets_follow_the_geometry(spine):
    rng = np.random.default_rng(5)
    moving = SynthOptions(p_small_fov=0.0)
    for opt in (STILL, moving):
        for _ in range(4):
            s = draw_sample(spine, rng, opt)
            assert s.image.shape == (3, opt.rows, opt.cols) and s.image.min() >= 0 and s.image.max() <= 1
            assert s.bodies, "a sample without a body in the central slab"
            for name, (r, c) in s.bodies.items():
                ri, ci = int(np.rint(r)), int(np.rint(c))
                assert s.heat[0, ri, ci] > 0.75, name  # the heatmap peaks on the body centre
                window = s.region[max(0, ri - 1): ri + 2, max(0, ci - 1): ci + 2]
                assert sm.region_of(name) in window, name  # its class survives rotation and scaling


def test_field_of_view_crops(spine):
    rng = np.random.default_rng(8)
    opt = SynthOptions(p_small_fov=1.0)
    for _ in range(6):
        s = draw_sample(spine, rng, opt)
        outside = ~s.fov
        assert outside.mean() > 0.2  # a crop: a good part of the patch is outside the field of view
        assert np.all(s.image[:, outside] == 0) and np.all(s.region[outside] == 0)
        peaks = (s.heat[0] > 0.85) & (s.heat[0] == ndimage.maximum_filter(s.heat[0], 3))
        assert not np.any(peaks & outside)  # no body centre outside it
        assert peaks.sum() == len(s.bodies)
        for r, c in s.bodies.values():
            assert not outside[int(np.rint(r)), int(np.rint(c))]


def test_real_verse_map(samples):
    from training.levels.real_maps import real_label_map

    m = real_label_map(samples / "verse004_labels_only_T9-L5" / "sub-verse004_seg-vert_msk.nii.gz", "verse")
    assert list(m.centres) == ["T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    for name, c in m.centres.items():
        assert m.region[tuple(np.round(c).astype(int))] == sm.region_of(name), name
    assert "T12-L1" in m.discs and (m.tissue == sm.ANNULUS).sum() > 100  # discs filled between the bodies
    assert (m.tissue == sm.CSF).sum() > 100  # the canal the rings enclose
    s = draw_sample(m, np.random.default_rng(0), STILL)
    assert s.bodies and all(sm.region_of(n) in (3, 4) for n in s.bodies)


def test_stacks_beside_the_body_have_no_targets(spine):
    """p_lateral: stacks centred beside the body (its half-width or more from the centre) carry empty targets."""
    rng = np.random.default_rng(11)
    opt = SynthOptions(max_rotation_deg=0.0, scale_range=(1.0, 1.0), p_small_fov=0.0, p_lateral=1.0,
                       lateral_max_mm=60.0)
    offsets = []
    for _ in range(6):
        s = draw_sample(spine, rng, opt)
        offsets.append(s.x_offset_mm)
        assert abs(s.x_offset_mm) >= 2 * min(spine.half_width.values()) - 2.0
        assert abs(s.x_offset_mm) <= 60.0 + 2.0
        assert s.heat[0].max() == 0.0 and not s.bodies
    assert min(offsets) < 0 < max(offsets)  # both sides


def test_centre_targets_fade_away_from_the_midline(spine):
    """midline_sigma_mm: a body's heatmap peak is exp(-dx^2 / 2 sigma^2) at a stack dx mm beside its centre."""
    rng = np.random.default_rng(12)
    sigma = 6.0
    opt = SynthOptions(max_rotation_deg=0.0, scale_range=(1.0, 1.0), p_small_fov=0.0, midline_sigma_mm=sigma)
    seen = set()
    for _ in range(30):
        s = draw_sample(spine, rng, opt)
        for name, (r, c) in s.bodies.items():
            ri, ci = int(np.rint(r)), int(np.rint(c))
            peak = s.heat[0, max(0, ri - 1): ri + 2, max(0, ci - 1): ci + 2].max()
            expect = np.exp(-0.5 * ((spine.centres[name][0] - s.stack_x) * spine.step / sigma) ** 2)
            assert 0.85 * expect <= peak <= expect + 1e-6, (name, s.stack_x, peak, expect)
        if s.bodies:
            seen.add(round(abs(s.x_offset_mm)))
    assert 0 in seen and max(seen) >= 4  # on and beside the midline
    flat = draw_sample(spine, np.random.default_rng(12), STILL)
    assert max(flat.heat[0].max(), 0.0) > 0.9  # 0.1.0's flat targets when off


def test_texture_is_spatially_correlated_within_a_tissue():
    """Texture: unit-variance smooth noise times a per-tissue amplitude (none in air); neighbouring voxels correlate,
    unlike the Gaussian mixture's own per-voxel noise."""
    rng = np.random.default_rng(4)
    tissue = np.full((40, 40, 40), sm.MARROW, dtype=np.uint8)
    tissue[:, :, :8] = sm.AIR
    tex = texture(tissue, rng, 0.1)
    assert np.all(tex[tissue == sm.AIR] == 0.0)
    marrow = tex[:, :, 10:]
    assert 0 < marrow.std() <= 0.1 + 1e-6
    a, b = marrow[:-1].ravel(), marrow[1:].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.5
    white = render(tissue, np.full(sm.N_TISSUES, 0.5), np.full(sm.N_TISSUES, 0.05), rng)[:, :, 10:]
    assert abs(np.corrcoef(white[:-1].ravel(), white[1:].ravel())[0, 1]) < 0.05
    assert np.all(texture(tissue, rng, 0.0) == 0.0)


SOFT = (sm.MARROW, sm.ANNULUS, sm.NUCLEUS, sm.DEGENERATED, sm.MUSCLE, sm.ORGAN_A, sm.ORGAN_B, sm.VESSEL, sm.CSF,
        sm.CORD)


def test_flat_contrast_leaves_only_the_bone_rims():
    """p_flat: marrow, discs and soft tissue within 0.12 of each other; every bone rim brighter than all of them
    (CT-like, most draws) or darker than all of them (MR-like); air darkest."""
    rng = np.random.default_rng(21)
    brighter = 0
    for _ in range(200):
        means, stds = tissue_means(rng, "flat")
        soft = means[list(SOFT)]
        rims = means[list(BONE_RIMS)]
        assert soft.max() - soft.min() <= 0.12 + 1e-9
        assert rims.min() > soft.max() or rims.max() < soft.min()
        brighter += rims.min() > soft.max()
        assert means[sm.AIR] < means[sm.FAT] < soft.min()
        assert stds.max() <= 0.03
    assert 0.7 < brighter / 200 < 0.9  # CT-like in 80% of draws


def test_flat_draws_render_bodies_like_discs(spine):
    """A flat sample: the central slab's marrow and disc centres within a few hundredths, the endplate rims stand
    out; p_flat=0 draws exactly as before (0.1.0's samples)."""
    rng = np.random.default_rng(22)
    opt = SynthOptions(max_rotation_deg=0.0, scale_range=(1.0, 1.0), p_small_fov=0.0, p_thick=0.0, max_noise=0.0,
                       max_bias=0.0, p_flat=1.0)
    s = draw_sample(spine, rng, opt)
    assert s.contrast == "flat"
    assert s.bodies
    a = draw_sample(spine, np.random.default_rng(5), STILL)
    b = draw_sample(spine, np.random.default_rng(5), SynthOptions(**{**STILL.__dict__, "p_flat": 0.0}))
    assert np.array_equal(a.image, b.image) and a.contrast == b.contrast != "flat"


def test_empty_side_slabs(spine):
    """p_side_empty: one or both side slabs are empty (0 after normalising, as outside a tight crop at run time);
    the central slab and the targets are kept."""
    rng = np.random.default_rng(23)
    opt = SynthOptions(max_rotation_deg=0.0, scale_range=(1.0, 1.0), p_small_fov=0.0, p_side_empty=1.0)
    which = set()
    for _ in range(12):
        s = draw_sample(spine, rng, opt)
        empty = tuple(int(c) for c in (1, 2) if not s.image[c].any())
        assert empty and s.image[0].std() > 0.05
        which.add(empty)
        peaks = (s.heat[0] > 0.85) & (s.heat[0] == ndimage.maximum_filter(s.heat[0], 3))
        assert peaks.sum() == len(s.bodies) > 0
    assert which == {(1,), (2,), (1, 2)}
    plain = draw_sample(spine, np.random.default_rng(23), SynthOptions(max_rotation_deg=0.0, p_small_fov=0.0))
    assert plain.image[1].any() and plain.image[2].any()


def test_small_fields_of_view_reach_the_minimum():
    """min_fov_rows / min_fov_cols: crops as small as the minimum (of the patch) and never smaller."""
    rng = np.random.default_rng(24)
    opt = SynthOptions(p_small_fov=1.0, min_fov_rows=0.15, min_fov_cols=0.25)
    hs, ws = [], []
    for _ in range(300):
        m = _fov(rng, opt)
        rows, cols = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
        hs.append(len(rows))
        ws.append(len(cols))
    assert min(hs) >= int(0.15 * opt.rows) and min(hs) < 0.2 * opt.rows < 0.3 * opt.rows
    assert min(ws) >= int(0.25 * opt.cols) and min(ws) < 0.3 * opt.cols
    old = [int(_fov(rng, SynthOptions(p_small_fov=1.0)).any(1).sum()) for _ in range(100)]
    assert min(old) >= int(0.3 * 128)  # the 0.1.0 crops were never below 77 mm
