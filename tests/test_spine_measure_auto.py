"""Automatic measurements on volumes and label maps written here with known body heights, disc heights and slip.

Geometry (LPS, 1 mm voxels, column along +z): L1..L4 bodies 30 mm deep (y), 40 mm wide (x), 10 mm discs.
L1, L3, L4: 25 mm tall. L2: a wedge, its superior endplate sloping from 25 mm at the posterior wall to 17 mm at the
anterior wall (inferior endplate flat). L3 is displaced 6 mm anteriorly: L3 on L4 slips 6/30 = 20 % (Meyerding I),
L2 on L3 is a 20 % retrolisthesis. Intensities are written with partial-volume fractions along z.
Expected values at the measuring columns (10 %, 50 %, 90 % of the depth from the anterior wall):
L2 heights 17.8 / 21.0 / 24.2 mm; L1-L2 disc 17.2 / 14.0 / 10.8 -> mean 14.0 mm; other discs 10 mm; slips in
_check.
"""
import itertools

import numpy as np
import pytest

from core.spine.labelling import SpineLabelling, VertebraLabel
from core.spine.measure.auto import auto_measurements
from core.spine.numbering import get_numbering
from core.studies.volume import Volume

DEPTH, WIDTH, DISC = 30.0, 40.0, 10.0
Y_ANT = 20.0  # anterior wall (mm); posterior wall at Y_ANT + DEPTH
NAMES = ["L1", "L2", "L3", "L4"]
SHIFT = {"L3": -6.0}  # anterior displacement (mm, -y)


def _layout():
    out, z = {}, 150.5  # endplates on voxel boundaries
    for name in NAMES:
        out[name] = (z - 25.0, z)  # bottom, top (posterior top for the wedge)
        z -= 25.0 + DISC
    return out


def _top(name, y):
    _, top = _layout()[name]
    if name != "L2":
        return np.full_like(y, top)
    frac = np.clip((y - Y_ANT) / DEPTH, 0, 1)  # 0 at the anterior wall
    return top - 8.0 * (1 - frac)


def _volume(mode="ct", noise=8.0, body=260.0, disc=80.0, soft=40.0, canal=10.0, post=450.0, seed=0):
    nx, ny, nz = 60, 90, 165
    x = np.arange(nx)[:, None, None] + 0.0
    y = np.arange(ny)[None, :, None] + 0.0
    z = np.arange(nz)[None, None, :] + 0.0
    data = np.full((nx, ny, nz), soft, dtype=np.float32)
    labels = np.zeros((nx, ny, nz), dtype=np.int16)
    verse = get_numbering("verse")
    inx = np.abs(x - nx / 2) < WIDTH / 2
    lay = _layout()
    walls = {n: (Y_ANT + SHIFT.get(n, 0.0), Y_ANT + SHIFT.get(n, 0.0) + DEPTH) for n in NAMES}
    for upper, lower in itertools.pairwise(NAMES):  # disc tissue first, bodies are blended over it
        y0, y1 = min(walls[upper][0], walls[lower][0]), max(walls[upper][1], walls[lower][1])
        zone = (z > lay[lower][1] - 8.0) & (z < lay[upper][0] + 1.0) & inx & (y + 0.5 > y0) & (y - 0.5 < y1)
        data[np.broadcast_to(zone, data.shape)] = disc
    for name in NAMES:
        bottom, top = lay[name]
        y0, y1 = walls[name]
        zone = (z >= bottom - DISC) & (z <= top) & inx
        data = np.where(zone & (y >= y1) & (y < y1 + 15), canal, data)  # spinal canal behind the body
        arch = inx & (y >= y1 + 15) & (y < y1 + 25) & (z >= bottom) & (z <= top)  # posterior arch
        data = np.where(arch, post, data)
        labels[np.broadcast_to(arch, labels.shape)] = verse.encode(name)
    for name in NAMES:
        bottom, _ = lay[name]
        y0, y1 = walls[name]
        top = _top(name, y - (y0 - Y_ANT))
        frac = np.clip(np.minimum(z + 0.5, top) - np.maximum(z - 0.5, bottom), 0, 1)
        f = frac * (inx & (y + 0.5 > y0) & (y - 0.5 < y1))
        data = data * (1 - f) + body * f
        labels[f >= 0.5] = verse.encode(name)
    if mode == "ct":
        data += np.random.default_rng(seed).normal(0, noise, data.shape).astype(np.float32)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    vol = Volume(data.astype(np.float32), affine, modality="CT" if mode == "ct" else "MR")
    return vol, Volume(labels, affine, modality="SEG")


def _labelling(offset=(0.0, 0.0, 0.0)):
    verts = []
    for name in NAMES:
        bottom, top = _layout()[name]
        c = (30.0, Y_ANT + DEPTH / 2 + SHIFT.get(name, 0.0), (bottom + top) / 2)
        verts.append(VertebraLabel(name, np.add(c, offset)))
    return SpineLabelling(vertebrae=verts)


def _by(result, kind):
    return {m.level: m for m in result.measurements if m.kind == kind}


def _check(result, tol_h=0.7, tol_slip=2.5):
    bodies = _by(result, "body_heights")
    assert set(bodies) == set(NAMES), result.skipped
    for name in ("L1", "L3", "L4"):
        d = bodies[name].details
        for k in ("anterior_mm", "middle_mm", "posterior_mm"):
            assert d[k] == pytest.approx(25.0, abs=tol_h), (name, k, d)
        assert d["grade"] == 0
    l2 = bodies["L2"].details
    assert l2["anterior_mm"] == pytest.approx(17.8, abs=tol_h)
    assert l2["middle_mm"] == pytest.approx(21.0, abs=tol_h)
    assert l2["posterior_mm"] == pytest.approx(24.2, abs=tol_h)
    assert l2["type"] == "wedge" and l2["grade"] == 2  # 1 - 17.8/25 = 28.8 % against the neighbours' 25 mm
    assert l2["reference_source"] == "given" and l2["reference_mm"] == pytest.approx(25.0, abs=tol_h)
    discs = _by(result, "disc_height")
    assert discs["L1-L2"].value == pytest.approx(14.0, abs=tol_h)
    assert discs["L2-L3"].value == pytest.approx(10.0, abs=tol_h)
    assert discs["L3-L4"].value == pytest.approx(10.0, abs=tol_h)
    slips = _by(result, "slip")
    assert slips["L3-L4"].value == pytest.approx(20.0, abs=tol_slip) and slips["L3-L4"].details["grade"] == 1
    assert slips["L2-L3"].value == pytest.approx(-20.0, abs=tol_slip)
    # L1 on the wedged L2: L1's posterior-inferior corner is 10 mm straight above L2's posterior-superior corner;
    # projected on L2's sloping endplate (30 mm deep, 8 mm lower anteriorly): -10 * 8 / (30^2 + 8^2) = -8.3 %
    assert slips["L1-L2"].value == pytest.approx(-8.3, abs=tol_slip)
    for m in result.measurements:
        assert m.method.startswith("auto:") and m.details["approximate"] and m.level and m.unit
        assert all(np.all(np.isfinite(p)) for p in m.points)


def test_from_the_ct_image():
    vol, _ = _volume()
    result = auto_measurements(vol, _labelling())
    _check(result)
    assert all(m.method == "auto:ct-sagittal-outline@1" for m in result.measurements)
    assert result.skipped == []


def test_from_the_ct_image_with_centres_off_by_a_few_mm():
    vol, _ = _volume(seed=1)
    _check(auto_measurements(vol, _labelling(offset=(4.0, -3.0, 3.0))))


def test_from_vertebra_masks():
    vol, labels = _volume()
    result = auto_measurements(vol, _labelling(), labelmap=labels, numbering="verse")
    _check(result, tol_h=0.8)
    assert all(m.method == "auto:mask-outline@1" for m in result.measurements)


def test_mr_polarity_discs_bright():
    vol, _ = _volume(mode="mr", body=400.0, disc=900.0, soft=1200.0, canal=1500.0, post=400.0)
    vol.data += np.random.default_rng(2).normal(0, 20, vol.data.shape).astype(np.float32)
    _check(auto_measurements(vol, _labelling()), tol_slip=4.0)  # MR outlines are smoothed more: walls move ~1 mm


def test_skipped_with_reasons():
    vol, _ = _volume(body=62.0, disc=55.0, soft=40.0, post=70.0)  # osteoporotic bone: no body/disc contrast
    result = auto_measurements(vol, _labelling())
    assert not _by(result, "body_heights") and any("contrast" in s for s in result.skipped), result.skipped
    vol, _ = _volume()
    single = SpineLabelling(vertebrae=[_labelling().vertebrae[0]])
    assert "no adjacent vertebra" in auto_measurements(vol, single).skipped[0]
    unnamed = _labelling()
    unnamed.vertebrae[1].name = None
    r = auto_measurements(vol, unnamed)
    assert "L2" not in _by(r, "body_heights") and any("not named" in s for s in r.skipped)
    assert "L1-L2" not in _by(r, "disc_height")
    flat = Volume(vol.data[:, :, 70:71], vol.affine, modality="CT")
    assert "single slice" in auto_measurements(flat, _labelling()).skipped[0]
    # L1 cut by the top of the field of view: its heights are skipped, the L2-L4 ones are still measured
    cut = Volume(vol.data[:, :, :140], vol.affine, modality="CT")
    r = auto_measurements(cut, _labelling())
    assert "L1" not in _by(r, "body_heights") and any(s.startswith("L1 body heights") for s in r.skipped)
    assert {"L3", "L4"} <= set(_by(r, "body_heights"))
