"""The learned labeller's column profile (pipeline3): bodies re-found along the column the first detections trace,
with known answers on synthetic profiles and maps (a missed body added, duplicates merged, discs the body channel
fires on dropped, the pitch); on a real CT the bodies found on the reference do not go down, on a real MR crop all
three bodies are found. Pipeline4: the bodies' depth from the class map, the pitch floor it gives a short column
(the network's half period refused), and the finer second pass only where the first finds few bodies."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from core.spine.autolabel import learned
from core.spine.autolabel.learned import (
    PEAK_MIN,
    column_pitch,
    column_profile_bodies,
    complete_by_pitch,
    merge_close,
    profile_peaks,
)


def _bumps(n: int, centres, heights, sigma: float = 2.0) -> np.ndarray:
    r = np.arange(n, dtype=float)
    out = np.zeros(n)
    for c, h in zip(centres, heights):
        out = np.maximum(out, h * np.exp(-0.5 * ((r - c) / sigma) ** 2))
    return out


def test_column_pitch_is_the_period_of_the_profile():
    r = np.arange(120, dtype=float)
    for period in (8.0, 13.0, 19.0):
        assert column_pitch(np.cos(2 * np.pi * r / period), fallback=99.0) == period
    assert column_pitch(np.zeros(120), fallback=7.5) == 7.5  # flat: no period, the fallback


def test_a_body_missing_between_two_detections_is_added_where_the_profile_has_a_maximum():
    body = _bumps(100, [10, 25, 40, 55, 70], [0.8, 0.8, 0.35, 0.8, 0.8])
    found = [10, 25, 55, 70]  # 40 missed: its peak was weak
    assert complete_by_pitch(found, body, body, pitch=15.0) == [10, 25, 40, 55, 70]
    flat = _bumps(100, [10, 25, 55, 70], [0.8] * 4)  # nothing between 25 and 55: nothing added
    assert complete_by_pitch(found, flat, flat, pitch=15.0) == found
    weak = _bumps(100, [10, 25, 40, 55, 70], [0.8, 0.8, PEAK_MIN - 0.1, 0.8, 0.8])  # too weak to be a body
    assert complete_by_pitch(found, weak, weak, pitch=15.0) == found
    assert complete_by_pitch([10, 25, 70], body, body, pitch=15.0) == [10, 25, 70]  # 3 pitches: not one body


def test_duplicates_closer_than_half_a_pitch_are_merged_keeping_the_stronger():
    score = _bumps(60, [10, 13, 30, 45], [0.5, 0.9, 0.7, 0.7])
    assert merge_close([10, 13, 30, 45], score, pitch=15.0) == [13, 30, 45]
    assert merge_close([10, 30, 45], score, pitch=15.0) == [10, 30, 45]


def test_profile_peaks_keep_bodies_and_drop_the_discs_the_body_channel_fires_on():
    bodies_at, discs_at = [8, 26, 44, 62, 80], [17, 35, 53, 71]
    body = _bumps(90, bodies_at + discs_at, [0.7, 0.75, 0.7, 0.8, 0.7] + [0.5] * 4)  # fires on discs too
    disc = _bumps(90, discs_at, [0.8] * 4)
    peaks = profile_peaks(body - disc, body, disc, pitch=18.0)
    assert peaks == bodies_at


def _maps(rows=100, cols=60, n_stacks=9, bodies=(10, 26, 42, 58, 74, 90), weak=42, c=30):
    """Network-like maps: body blobs every 16 rows on a straight column at ``c`` in the middle stacks (one weak),
    disc blobs between them."""
    maps = np.zeros((n_stacks, 8, rows, cols), np.float32)
    rr, cc = np.mgrid[0:rows, 0:cols].astype(float)
    for r in bodies:
        h = 0.4 if weak is not None and r == weak else 0.85
        maps[3:6, 0] = np.maximum(maps[3:6, 0], h * np.exp(-0.5 * (((rr - r) / 2.0) ** 2 + ((cc - c) / 2.0) ** 2)))
    for a, b in itertools.pairwise(bodies):
        d = 0.5 * (a + b)
        maps[3:6, 1] = np.maximum(maps[3:6, 1], 0.8 * np.exp(-0.5 * (((rr - d) / 1.5) ** 2 + ((cc - c) / 3) ** 2)))
    maps[:, 6] = 1.0  # lumbar class everywhere
    return maps


def test_column_profile_adds_the_weak_body_the_seeds_missed():
    maps = _maps()
    xs = list(range(0, 36, 4))  # stacks every 2 grid voxels (4 mm); 3..5 are the middle ones (x 12..20)
    seeds = [{"x": 16.0, "r": float(r), "c": 30.0, "score": 0.85, "region": np.eye(6)[4]} for r in (10, 26, 58, 74, 90)]
    out = column_profile_bodies(maps, xs, seeds)
    assert [round(b["r"]) for b in out] == [10, 26, 42, 58, 74, 90]
    added = next(b for b in out if round(b["r"]) == 42)
    assert abs(added["c"] - 30.0) <= 1.0 and abs(added["x"] - 16.0) <= 4.0
    assert int(np.argmax(added["region"])) == 4
    assert out[0] is seeds[0]  # a body found before keeps its own position


def test_column_profile_from_one_body_grows_along_the_column():
    """One body found (a short or faint image): the column is followed from it a vertebra at a time, with an
    adult pitch assumed, and the other bodies of the maps are found."""
    maps = _maps(weak=None)
    xs = list(range(0, 36, 4))
    seed = [{"x": 16.0, "r": 42.0, "c": 30.0, "score": 0.85, "region": np.eye(6)[4]}]
    out = column_profile_bodies(maps, xs, seed)
    assert [round(b["r"]) for b in out] == [10, 26, 42, 58, 74, 90]


def test_column_profile_keeps_the_seeds_when_it_finds_fewer():
    maps = np.zeros((9, 8, 100, 60), np.float32)  # the maps show nothing along the column
    seeds = [{"x": 16.0, "r": float(r), "c": 30.0, "score": 0.85, "region": np.eye(6)[4]} for r in (10, 26, 42)]
    assert column_profile_bodies(maps, list(range(0, 36, 4)), seeds) is seeds


def test_real_ct_bodies_found_on_the_reference_do_not_go_down(monkeypatch):
    """On TotalSegmentator's example CT (tests/data, T11-S1), the bodies found within 12 mm of a reference body
    centre with the column profile are at least as many as without it (pipeline2)."""
    from pathlib import Path

    from core.library.opener import load_volume
    from core.spine.autolabel.learned import LearnedLevels
    from core.spine.numbering import get_numbering
    from core.spine.reference import reference_from_labelmap

    folder = Path(__file__).parent / "data" / "totalseg_example_ct"
    image, _ = load_volume(folder / "ct.nii.gz")
    ref = reference_from_labelmap(load_volume(folder / "seg_vertebrae_totalseg.nii.gz")[0],
                                  get_numbering("totalseg"), canal_from_neighbours=True)
    refs = np.array(list(ref.points.values()))

    def on_reference(labelling) -> int:
        pts = np.array([v.centroid for v in labelling.vertebrae])
        return int(sum(np.linalg.norm(pts - r, axis=1).min() <= 12.0 for r in refs))

    backend = LearnedLevels()
    with_profile = on_reference(backend.run(image))
    monkeypatch.setattr(learned, "column_profile_bodies", lambda maps, xs, seeds, midline=None, step=2.0: seeds)
    without = on_reference(backend.run(image))
    assert with_profile >= without >= 3


def test_real_mr_crop_all_three_bodies_found(samples):
    """On the real cervical T2 crop (TPTBox, C5-C7), each of the three reference bodies has a detection within
    6 mm (pipeline2 found two of them: C5, at the top edge, was missed)."""
    from core.library.opener import load_volume
    from core.spine.autolabel.learned import LearnedLevels
    from core.spine.numbering import get_numbering
    from core.spine.reference import reference_from_labelmap

    folder = samples / "tptbox_mri_cervical_crop_C5-C7"
    image, _ = load_volume(folder / "sub-mri_label-6_T2w.nii.gz")
    ref = reference_from_labelmap(load_volume(folder / "sub-mri_seg-vert_label-6_msk.nii.gz")[0],
                                  get_numbering("verse"), canal_from_neighbours=True)
    pts = np.array([v.centroid for v in LearnedLevels().run(image).vertebrae])
    for name, p in ref.points.items():
        assert np.linalg.norm(pts - np.asarray(p), axis=1).min() <= 6.0, name


def test_sacrum_below_the_lowest_body_gives_s1_from_the_anchor_classes():
    """The network marks S1 in its sacrum class rather than with a body peak: where the sacrum class starts below
    the lowest body, S1 is one pitch below that body and sacrum-type, and the names follow from it; where the sacrum
    class starts above the lowest body's centre, that body is S1; with no sacrum there is none."""
    from core.spine.autolabel.learned import sacrum_below

    bodies_at = (10, 26, 42)
    maps = _maps(bodies=bodies_at, weak=None)
    xs = list(range(0, 36, 4))
    seeds = [{"x": 16.0, "r": float(r), "c": 30.0, "score": 0.85, "region": np.eye(6)[4]} for r in bodies_at]
    assert sacrum_below(maps, xs, seeds) is None  # lumbar class everywhere: no sacrum
    sacral = maps.copy()
    sacral[:, 6, 52:] = 0.05
    sacral[:, 7, 52:, 30:40] = 0.95  # the sacrum from row 52 down, a little behind the column's line
    s1 = sacrum_below(sacral, xs, seeds)
    assert s1 is not None and s1 is not seeds[-1] and int(np.argmax(s1["region"])) == 5
    assert s1["r"] == 58.0 and 30.0 <= s1["c"] <= 40.0  # one pitch (16 rows) below the lowest body
    probs = np.array([b["region"] for b in seeds] + [s1["region"]])
    assert learned.name_detections(probs)[0] == ["L3", "L4", "L5", "S1"]
    inside = maps.copy()
    inside[:, 6, 38:] = 0.05
    inside[:, 7, 38:, 26:40] = 0.95  # the sacrum starts above the lowest body's centre: that body is S1
    s1 = sacrum_below(inside, xs, seeds)
    assert s1 is not None and s1["r"] == 42.0 and int(np.argmax(s1["region"])) == 5
    short = sacral[:, :, :52]  # the image ends where the sacrum would start: no anchor
    assert sacrum_below(short, xs, seeds) is None


def test_a_disc_between_every_two_bodies_midway_where_the_disc_channel_found_none():
    from core.spine.autolabel.learned import _discs_between

    bodies = [{"x": 10.0, "r": float(r), "c": 30.0 + r / 10, "score": 0.8} for r in (10, 26, 42)]
    found = [{"x": 10.0, "r": 19.0, "c": 31.0, "score": 0.7}, {"x": 10.0, "r": 50.0, "c": 31.0, "score": 0.9}]
    discs = _discs_between(found, bodies)
    assert len(discs) == 2
    assert discs[0] is found[0]  # the disc channel's, between the first two bodies
    assert discs[1]["r"] == 34.0 and abs(discs[1]["c"] - 33.4) < 1e-9 and discs[1]["score"] == 0.3  # midway, weak


# --- pipeline4: short columns and small images ----------------------------------------------------------------------
def _with_bodies(maps: np.ndarray, rows, c: int, depth: int) -> np.ndarray:
    """The anchor-class channels of ``maps`` with a body ``depth`` columns deep (front to back) around each row of
    ``rows`` at column ``c`` (lumbar class there), background elsewhere."""
    out = maps.copy()
    out[:, 2:] = 0.0
    out[:, 2] = 1.0
    for r in rows:
        out[:, 2, r - 3: r + 4, c - depth // 2: c - depth // 2 + depth] = 0.05
        out[:, 6, r - 3: r + 4, c - depth // 2: c - depth // 2 + depth] = 0.95
    return out


def test_body_depth_is_read_from_the_class_map():
    from core.spine.autolabel.learned import body_depth

    maps = _with_bodies(_maps(weak=None), (10, 26, 42, 58, 74, 90), c=30, depth=15)
    seeds = [{"x": 16.0, "r": float(r), "c": 30.0} for r in (26, 42)]
    assert body_depth(maps, list(range(0, 36, 4)), seeds) == 15.0
    cut = maps.copy()
    cut[:, 2, :, :25] = 0.05  # the body runs into the image's front edge: its depth is unknown
    assert body_depth(cut, list(range(0, 36, 4)), seeds) is None


def test_column_pitch_floor_refuses_the_half_period():
    r = np.arange(120, dtype=float)
    half = np.cos(2 * np.pi * r / 8.0)  # the body channel fires on bodies and discs alike: half the period
    assert column_pitch(half, fallback=99.0) == 8.0
    assert column_pitch(half, fallback=99.0, floor=11.0) == 16.0
    assert column_pitch(np.cos(2 * np.pi * r / 8.0)[:20], fallback=21.0, floor=11.0) == 21.0  # too short: fallback


def test_short_column_pitch_comes_from_the_body_depth_not_the_networks_half_period():
    """Two seed bodies 16 rows apart, a profile whose strongest period is half that (the body channel firing on the
    discs too): the first pass's pitch is the bodies' (16), not 8; from one seed, 0.9 body depths."""
    from core.spine.autolabel.learned import PITCH_PER_DEPTH, _first_pitch

    maps = _with_bodies(_maps(weak=None), (10, 26, 42, 58, 74, 90), c=30, depth=16)
    r = np.arange(100, dtype=float)
    contrast = np.cos(2 * np.pi * r / 8.0)
    seeds = [{"x": 16.0, "r": float(r), "c": 30.0} for r in (26, 42)]
    xs = list(range(0, 36, 4))
    assert _first_pitch(maps, xs, seeds, contrast, np.diff([26, 42]), 2.0) == 16.0
    assert _first_pitch(maps, xs, seeds[:1], contrast, np.array([]), 2.0) == PITCH_PER_DEPTH * 16
    long_column = [{"x": 16.0, "r": float(r), "c": 30.0} for r in (10, 26, 42, 58)]  # 4 seeds: the profile's own
    assert _first_pitch(maps, xs, long_column, contrast, np.diff([10, 26, 42, 58]), 2.0) == 8.0


def test_the_finer_pass_runs_for_small_images_and_where_few_bodies_are_found(monkeypatch):
    """A tall column of several bodies is labelled on the 2 mm grid alone; an image less than 100 mm tall, or one
    where the first pass finds fewer than three bodies, gets a second pass on the 1.5 mm grid, kept when its bodies'
    scores add up to clearly more (1.2 times)."""
    from core.spine.autolabel.learned import FINE_STEP_MM, STEP_MM, LearnedLevels, choose_pass
    from core.synthetic.phantom import spine_phantom

    steps = []
    real = learned.iso_grid
    monkeypatch.setattr(learned, "iso_grid",
                        lambda vol, step, cancel=None: steps.append(step) or real(vol, step, cancel))
    ph = spine_phantom(first="T11", last="L5", shape=(128, 128, 110), spacing=(1.5, 1.5, 2.0))
    backend = LearnedLevels()
    lab = backend.run(ph.volume)
    assert len(lab.vertebrae) >= 3 and steps == [STEP_MM]
    steps.clear()
    short = spine_phantom(first="L1", last="L3", shape=(128, 128, 40), spacing=(1.5, 1.5, 2.0))  # 80 mm tall
    backend.run(short.volume)
    assert steps == [STEP_MM, FINE_STEP_MM]
    steps.clear()
    monkeypatch.setattr(learned, "detect", lambda maps, xs, data, step: (
        [{"x": 1.0, "r": 5.0, "c": 5.0, "region": np.eye(6)[4]}] * (1 if step == STEP_MM else 0), [], 0))
    with pytest.raises(learned.AutoLabelError, match="no vertebral column"):  # one body in a 220 mm tall image
        backend.run(ph.volume)
    assert steps == [STEP_MM, FINE_STEP_MM]
    one = ([{"r": 1.0, "score": 0.8}], [], 0, None)
    two = ([{"r": 1.0, "score": 0.6}, {"r": 9.0, "score": 0.6}], [], 0, None)
    assert choose_pass(one, two) is two and choose_pass(two, one) is two and choose_pass(one, None) is one
    assert choose_pass(None, two) is two and choose_pass(two, ([{"r": 1.0, "score": 0.5}] * 2, [], 0, None)) is two
    surer = ([{"r": 1.0, "score": 0.9}, {"r": 9.0, "score": 0.9}], [], 0, None)  # as many bodies, surer ones
    assert choose_pass(two, surer) is surer
