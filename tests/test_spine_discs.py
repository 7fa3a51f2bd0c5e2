"""Discs from endplates along a column profile (core.spine.autolabel.discs), on profiles with known discs."""
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from core.spine.autolabel.ct_discs import band_pairs, ct_discs
from core.spine.autolabel.discs import (
    band_discs,
    disc_contrast,
    endplate_peaks,
    faint_band,
    find_discs,
    find_discs_windowed,
    local_pitch,
)

DS = 1.0


def _profile(pitch, disc, n=5, body=60.0, disc_val=100.0, endplate=400.0, noise=5.0, seed=0):
    """CT-like: osteoporotic bodies (60 HU) darker than the discs (100 HU), 1.5 mm bright endplates."""
    length = int(pitch * n + pitch / 2)
    z = np.arange(length) * DS
    prof = np.full(length, body)
    centres = [pitch / 2 + pitch * i for i in range(n)]
    for c in centres:
        prof[np.abs(z - c) < disc / 2] = disc_val
        for e in (c - disc / 2, c + disc / 2):
            prof[np.abs(z - e) < 0.75] = endplate
    prof += np.random.default_rng(seed).normal(0, noise, length)
    return prof, centres


@pytest.mark.parametrize("pitch,disc", [(37.0, 10.0), (27.0, 6.0), (17.0, 5.0)])
def test_ct_discs_between_endplate_pairs_even_when_bodies_are_darker(pitch, disc):
    prof, centres = _profile(pitch, disc)
    pos, score, p = find_discs(prof, DS, sign=1.0)
    assert p == pytest.approx(pitch, abs=2.0)
    assert len(pos) == len(centres)
    assert np.max(np.abs(np.subtract(pos, centres))) <= 1.5
    assert all(0 < s <= 1 for s in score)


@pytest.mark.parametrize("seed", range(3, 11))
@pytest.mark.parametrize("disc_val", [
    900.0,  # a bright healthy disc on T2
    300.0,  # a dark degenerated disc between dark endplates, darker than the marrow (450)
])
def test_mr_discs_between_dark_endplates(disc_val, seed):
    """Noise inside a dark disc makes dips taken for endplates, splitting the disc into two pairs, and noise in the
    bodies makes tiny gaps beside a disc that once made it look like a body: half of these noise draws failed. Now
    the pair around a weak dip competes too, and the gaps beside a pair are measured to peaks as strong as its own.
    About 1 draw in 10 still gains a disc at the end of the profile (a noise pair 0.7-0.8 pitch beyond the last)."""
    prof, centres = _profile(38.0, 12.0, body=450.0, disc_val=disc_val, endplate=60.0, noise=15.0, seed=seed)
    pos, _, _ = find_discs(prof, DS, sign=-1.0)
    assert len(pos) == len(centres) and np.max(np.abs(np.subtract(pos, centres))) <= 1.5, pos


def test_without_endplates_the_narrower_band_is_the_disc():
    z = np.arange(200.0)
    prof = np.where((z % 35) < 9, 800.0, 420.0)  # 9 mm bright discs every 35 mm, no endplates
    pos, _, p = find_discs(prof, DS, sign=-1.0)
    assert p == pytest.approx(35.0, abs=2.0)
    expected = [4 + 35 * i for i in range(6)]
    assert len(pos) >= 5 and all(min(abs(q - e) for e in expected) <= 2.0 for q in pos)
    assert band_discs(np.full(100, 5.0), DS, 30.0) == ([], [])


def test_too_short_or_flat_profiles_give_nothing():
    assert find_discs(np.ones(10), DS, sign=1.0) == ([], [], None)
    assert find_discs(np.full(200, 7.0), DS, sign=1.0)[0] == []


# CT discs chained along the column (core.spine.autolabel.ct_discs): dense endplates, a pitch changing along the spine

def _ct_column(bodies, discs, marrow=210.0, disc_val=90.0, endplate=480.0, islands=(), seed=0, blur=0.8):
    """CT-like profile along the column (1 mm samples): soft tissue (40 HU) beyond both ends, bodies of ``marrow``
    closed by 2 mm dense endplates, discs between them; ``islands``: 3 mm dense spots inside bodies (bone islands).
    Returns the profile and the disc centres."""
    lead = 15.0
    prof = np.full(int(2 * lead + sum(bodies) + sum(discs)), 40.0)
    s, centres = lead, []
    for n, body in enumerate(bodies):
        a, b = round(s), round(s + body)
        prof[a:b] = marrow
        prof[a: a + 2] = prof[b - 2: b] = endplate
        s += body
        if n < len(discs):
            prof[round(s): round(s + discs[n])] = disc_val
            centres.append(round(s) + discs[n] / 2.0)
            s += discs[n]
    for at in islands:
        prof[at - 1: at + 2] = endplate
    prof = ndimage.gaussian_filter1d(prof, blur) + np.random.default_rng(seed).normal(0.0, 8.0, len(prof))
    return prof, centres


def _assert_discs(found, centres, tol=1.5):
    assert len(found) == len(centres), (np.round(found, 1), centres)
    assert np.max(np.abs(np.subtract(found, centres))) <= tol, (np.round(found, 1), centres)


@pytest.mark.parametrize("marrow,disc_val", [(210.0, 90.0), (60.0, 100.0)])  # healthy; osteoporotic, darker than discs
def test_ct_chain_follows_the_pitch_from_thoracic_to_lumbar(marrow, disc_val):
    """T9..L4-like: 21 mm bodies / 6 mm discs, then 27 / 10 (the phantom's abrupt T12-L1 change, pitch 27 -> 37).
    Every endplate is found next to marrow (measured within its reach: a far-away minimum used to put an endplate's
    half-prominence level below the marrow, making it as wide as the body), and no body (two endplates of one
    vertebra) is taken for a disc."""
    prof, centres = _ct_column([21] * 4 + [27] * 4, [6] * 3 + [8] + [10] * 3, marrow=marrow, disc_val=disc_val)
    assert len(endplate_peaks(prof, DS, 1.0)[0]) == 2 * 8
    pos, score, height = ct_discs(prof, DS, [], [], [])
    _assert_discs(pos, centres)
    assert all(0 < s <= 1 for s in score) and all(h < 15.0 for h in height)


def test_ct_chain_from_neck_to_low_back():
    """C3..L3-like: the pitch grows from 19 to 39 mm level by level; cervical bodies (14 mm between endplates 12 mm
    apart) are not taken for discs (a disc is under ~half the pitch)."""
    bodies = [14] * 5 + [17, 19, 21, 22, 23, 24, 24, 25, 27, 28, 29]
    discs = [5] * 5 + [4, 4, 5, 5, 6, 6, 7, 8, 9, 10]
    prof, centres = _ct_column(bodies, discs)
    _assert_discs(ct_discs(prof, DS, [], [], [])[0], centres)


@pytest.mark.parametrize("marrow,disc_val", [(210.0, 90.0), (60.0, 100.0)])
def test_ct_chain_keeps_both_discs_of_a_compressed_body(marrow, disc_val):
    """A fractured lumbar body squeezed to 13 mm (no taller than a disc): its two endplates are not a disc, its two
    discs are (each is thinner than the normal body on its other side), though the pitch drops to 0.6 and back."""
    prof, centres = _ct_column([27, 27, 13, 27, 27, 27], [10] * 5, marrow=marrow, disc_val=disc_val)
    _assert_discs(ct_discs(prof, DS, [], [], [])[0], centres)


def test_ct_chain_ignores_a_bone_island_and_bridges_a_disc_it_cannot_see():
    prof, centres = _ct_column([27] * 5, [10] * 4, islands=[15 + 27 + 10 + 13])  # a dense spot mid-body
    _assert_discs(ct_discs(prof, DS, [], [], [])[0], centres)
    prof, centres = _ct_column([27] * 6, [10] * 5)
    mid = round(centres[2])
    prof[mid - 8: mid + 8] = 210.0  # one disc invisible on this profile (no endplates, marrow density)
    pos = ct_discs(prof, DS, [], [], [])[0]
    _assert_discs(pos, centres[:2] + centres[3:])  # the others still found; nothing made up in its place
    pos, score, height = ct_discs(prof, DS, [centres[2] + 1.0], [0.8], [9.0])  # a solid-bone dip shows it
    _assert_discs(pos, centres)
    assert score[2] == pytest.approx(0.4) and height[2] == 9.0  # a dip counts half a pair of endplates


@pytest.mark.parametrize("body,disc,marrow,blur", [
    (20, 4, 130.0, 1.5), (20, 4, 200.0, 1.5), (22, 5, 130.0, 1.3), (18, 4, 60.0, 1.3), (18, 4, 100.0, 1.5),
    (16, 4, 160.0, 1.2),
])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ct_chain_finds_thin_thoracic_discs_on_blurred_slices(body, disc, marrow, blur, seed):
    """Thoracic levels on 1.5-3 mm slices: 4-5 mm discs (100 HU) whose two endplates (330 HU) blur together, with
    marrow from osteoporotic (60 HU) to normal. The gap between the endplates keeps only 30-50 HU, and each body's
    own two endplates, with its marrow between, make a pair as strong as a disc's: it must not be taken for one
    (it is the pair between two narrower pairs), nor the middle of the marrow for a gap."""
    prof, centres = _ct_column([body] * 7, [disc] * 6, marrow=marrow, disc_val=100.0, endplate=330.0, blur=blur,
                               seed=seed)
    _assert_discs(ct_discs(prof, DS, [], [], [])[0], centres, tol=2.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ct_chain_finds_discs_whose_endplates_merge_into_one_band(seed):
    """A narrowed 2 mm thoracic disc: with its two endplates it makes one bright band on 3 mm slices, with no gap
    left in it, so there is no endplate pair; the band's middle is the disc. Each body's own two endplates (17 mm
    apart, marrow between) make a pair as strong, which must not be taken for a disc."""
    prof, centres = _ct_column([20] * 7, [2] * 6, marrow=130.0, disc_val=100.0, endplate=330.0, blur=1.5, seed=seed)
    assert not any(abs(p - c) < 3.0 for p, _, _ in band_pairs(prof, DS) for c in centres)
    _assert_discs(ct_discs(prof, DS, [], [], [])[0], centres, tol=2.0)


# Faint disc bands where the pitch puts a disc (core.spine.autolabel.discs.faint_band), for MR's degenerated discs

@pytest.mark.parametrize("width,value,expected", [
    (8.0, 0.25, "disc"),  # a degenerated disc: 8 mm, clearly darker than the marrow (0.35)
    (8.0, 0.32, "doubt"),  # as wide, barely darker: could be a disc, could be nothing
    (2.4, 0.05, "none"),  # a thin dark line, however dark (an S1-S2 remnant, an endplate): not a disc
    (8.0, 0.35, "none"),  # nothing there
])
def test_faint_band_tells_a_disc_from_a_line_and_from_nothing(width, value, expected):
    s = np.arange(160.0)
    prof = np.full_like(s, 0.35)
    for d in (20.0, 57.0):  # two bright healthy discs above: the yardstick
        prof[np.abs(s - d) < 5.0] = 0.66
    prof[np.abs(s - 96.0) < width / 2.0] = value
    prof += np.random.default_rng(0).normal(0, 0.004, s.size)
    reference = disc_contrast(prof, DS, [20.0, 57.0], 37.0)
    assert reference == pytest.approx(0.31, abs=0.03)
    kind, pos, _ = faint_band(prof, DS, 94.0, 37.0, 0.2 * 37.0, reference)
    assert kind == expected
    if expected != "none":
        assert abs(pos - 96.0) <= 2.0


def test_windowed_discs_follow_a_pitch_growing_down_the_spine():
    """A whole-spine T2-like profile: pitch 19 mm in the neck growing to 37 mm low down. One pitch for all of it
    misses the close cervical discs or the lumbar ones; windows with their own pitch find every disc, and the local
    pitch follows the spacing."""
    gaps = [19.0] * 6 + [27.0] * 11 + [37.0] * 5
    centres = list(np.cumsum([40.0] + gaps))
    length = int(centres[-1] + 60)
    s = np.arange(length, dtype=float)
    prof = np.full(length, 0.35)
    for c, g in zip(centres, [19.0] + gaps, strict=True):
        half = 0.13 * g  # discs a quarter of the pitch high
        prof[np.abs(s - c) < half] = 0.66
        prof[np.abs(np.abs(s - c) - half - 1.0) < 1.0] = 0.1  # dark endplates
    prof += np.random.default_rng(0).normal(0, 0.01, length)
    pos, _score, pitch, quality = find_discs_windowed(prof, DS, sign=-1.0)
    assert len(pos) == len(centres) and quality > 0
    assert max(min(abs(p - c) for p in pos) for c in centres) <= 2.0
    pitch_at = local_pitch(pos, pitch)
    assert pitch_at(centres[2]) == pytest.approx(19.0, abs=1.5)
    assert pitch_at(centres[-2]) == pytest.approx(37.0, abs=1.5)
    assert find_discs(prof, DS, sign=-1.0)[0] != pos  # one pitch for the whole column does not do it


def test_thin_discs_of_a_real_chest_ct_profile():
    """The column profile of a real chest CT (tests/data/totalseg_aorta_ct_profile): two 3-4 mm mid-thoracic discs
    whose gaps smoothing had filled were missed, and the body between them taken for a disc instead (naming from
    the last rib then shifts every level above). A thin pair's gap is now also measured on the profile as sampled."""
    data = json.loads((Path(__file__).parent / "data/totalseg_aorta_ct_profile/column_profile.json").read_text())
    prof = np.asarray(data["hu_profile"])
    pos, _, _ = ct_discs(prof, data["ds_mm"], data["solid_dips_mm"], data["solid_dip_depth"],
                         data["solid_dip_width_mm"])
    for seen in (140.0, 164.0, 186.0, 210.0, 234.0, 257.0):
        assert min(abs(p - seen) for p in pos) <= 2.0, (seen, pos)
    assert min(abs(p - 174.0) for p in pos) > 6.0, pos
