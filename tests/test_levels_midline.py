"""The learned labeller's midline: the plane of mirror symmetry through a vertebra (body, canal, arch) found in the
image whatever the contrast, not pulled by an organ or vessel beside it; the midline curve outvoting detections off
the column."""
from __future__ import annotations

import numpy as np

from core.spine.autolabel.learned import SYM_MIN, midline_curve, mirror_midline


def _vertebra(shape=(80, 60, 30), xc=41.3, c=25.0, aorta=True, rng=None, invert=False) -> np.ndarray:
    """A 2 mm grid [L, P, S]: an elliptic body centred at left-right ``xc`` (sub-voxel), a bony ring behind it
    around the canal, soft edges; an aorta beside the body on one side (asymmetric)."""
    rng = rng or np.random.default_rng(0)
    i, j = np.mgrid[0: shape[0], 0: shape[1]].astype(float)

    def soft(d):  # 1 inside (d < 0), 0 outside, a one-voxel ramp
        return np.clip(0.5 - d, 0.0, 1.0)

    body = soft(np.hypot((i - xc) / 10.0, (j - c) / 8.0) * 8.0 - 8.0)
    ring_r = np.hypot(i - xc, j - (c + 14.0))
    ring = soft(ring_r - 6.0) * (1 - soft(ring_r - 3.5))
    img = 0.2 + 0.5 * body + 0.8 * ring
    if aorta:
        img += 0.7 * soft(np.hypot(i - (xc - 16.0), j - (c - 10.0)) - 5.0)
    if invert:  # MR-like: bright canal, darker bone
        img = 1.2 - img
    vol = np.repeat(img[:, :, None], shape[2], axis=2)
    return (vol + rng.normal(0.0, 0.03, vol.shape)).astype(np.float32)


def test_mirror_midline_finds_the_plane_of_symmetry_beside_a_start_off_it():
    for xc, invert in ((41.3, False), (37.8, True)):
        data = _vertebra(xc=xc, invert=invert)
        for start in (xc - 9.0, xc + 7.0):  # the network's estimate, 14-18 mm off
            x, score = mirror_midline(data, start, 25.0, 15.0)
            assert abs(x - xc) < 0.5, (xc, start, x)
            assert score > 0.6


def test_mirror_midline_without_room_keeps_the_estimate():
    data = _vertebra(shape=(20, 60, 30), xc=10.0, aorta=False)
    x, score = mirror_midline(data, 10.0, 25.0, 15.0)  # the block (48 mm wide) does not fit in 40 mm
    assert (x, score) == (10.0, 0.0)


def test_midline_curve_outvotes_detections_off_the_column():
    data = _vertebra(shape=(90, 60, 60), xc=44.0)
    on = [{"x": 44.0 + dx, "r": r, "c": 25.0, "score": 0.8} for dx, r in ((-3, 5), (2, 15), (-1, 25), (4, 35))]
    # a hip-like detection far to the side, where no mirror plane is near: outvoted
    off = [{"x": 80.0, "r": 20.0, "c": 25.0, "score": 0.9}]
    mid = midline_curve(on + off, data)
    assert mid is not None
    for r in (0.0, 20.0, 45.0):
        assert abs(mid(r) - 44.0) < 0.6
    flat = np.random.default_rng(1).normal(0.0, 1.0, (90, 60, 60)).astype(np.float32)  # noise: no symmetry
    assert mirror_midline(flat, 44.0, 25.0, 30.0)[1] < SYM_MIN
    assert midline_curve(on, flat) is None


def test_real_mr_crop_detections_lie_on_the_midline(samples):
    """On the real cervical T2 crop (TPTBox, C5-C7), every body the learned labeller finds is within 4 mm of a
    reference body centre from left to right (0.1.0's peaks alone put them 13-20 mm off the midline)."""
    from core.library.opener import load_volume
    from core.spine.autolabel.learned import LearnedLevels
    from core.spine.numbering import get_numbering
    from core.spine.reference import reference_from_labelmap

    folder = samples / "tptbox_mri_cervical_crop_C5-C7"
    image, _ = load_volume(folder / "sub-mri_label-6_T2w.nii.gz")
    labelmap, _ = load_volume(folder / "sub-mri_seg-vert_label-6_msk.nii.gz")
    ref = reference_from_labelmap(labelmap, get_numbering("verse"), canal_from_neighbours=True)
    refs = np.array(list(ref.points.values()))
    labelling = LearnedLevels().run(image)
    assert len(labelling.vertebrae) >= 2
    for v in labelling.vertebrae:
        d = refs - np.asarray(v.centroid)
        nearest = d[np.argmin(np.linalg.norm(d, axis=1))]
        assert abs(nearest[0]) < 4.0, (v.centroid, nearest)
