"""The built-in CT labeller on synthetic phantoms (exact naming) and on the real CT samples; bad input; backends."""
import sys

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from app.cli import main as cli_main
from core.spine.anatomy import STANDARD
from core.spine.autolabel import AutoLabelError, auto_label, get_backend
from core.spine.autolabel.ct_column import _detach, _slice_masks, _symmetric_about
from core.spine.autolabel.totalseg import TotalSegmentatorBackend, run_subprocess
from core.spine.evaluation import evaluate
from core.spine.numbering import get_numbering
from core.spine.reference import ReferenceSet, reference_from_labelmap
from core.studies import load_series, scan
from core.studies.volume import Volume
from core.synthetic.phantom import spine_phantom
from core.tasks import Cancelled, CancelToken

SHAPE, SPACING = (200, 180, 180), (1.5, 1.5, 2.0)


def _check_exact(ph, lab):
    names = [v.name for v in lab.vertebrae]
    assert names == list(ph.centres), (names, lab.message)
    for v in lab.vertebrae:
        limit = 10.0 if v.name == "S1" else 4.0
        assert np.linalg.norm(np.subtract(v.centroid, ph.centres[v.name])) < limit, v.name
    ev = evaluate(lab, ReferenceSet(ph.centres))
    assert ev.identification_rate == 1.0


@pytest.mark.parametrize("endplates", [False, True])
def test_phantom_named_from_the_sacrum(endplates):
    """With dense endplates this once lost T12-L1: a lumbar body's two endplates were taken for one disc."""
    ph = spine_phantom(first="T11", last="S1", shape=SHAPE, spacing=SPACING, seed=1, endplates=endplates)
    seen = []
    lab = auto_label(ph.volume, progress=lambda f, m: seen.append(f))
    _check_exact(ph, lab)
    assert lab.anchor == "S1" and lab.confidence > 0.7 and "sacrum" in lab.message
    assert [d.name for d in lab.discs] == list(ph.discs)
    for d in lab.discs:
        assert np.linalg.norm(np.subtract(d.centre, ph.discs[d.name])) < 4.0
        assert d.normal[2] > 0.9  # pointing cranially
    assert seen and seen[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in seen)
    assert lab.provenance.method == "classical-ct" and lab.series_uid == ph.volume.series_uid


@pytest.mark.parametrize("endplates", [False, True])
def test_phantom_named_from_the_last_rib(endplates):
    ph = spine_phantom(first="T9", last="L3", shape=SHAPE, spacing=SPACING, seed=2, endplates=endplates)
    lab = auto_label(ph.volume)
    _check_exact(ph, lab)
    assert lab.anchor == "T12" and "rib" in lab.message


def test_phantom_named_from_the_skull_base():
    """A neck phantom from C1 (skull base, C1 ring, C2 with its dens) to T2: the skull anchor names C2."""
    ph = spine_phantom(first="C1", last="T2", shape=(160, 150, 140), spacing=SPACING, ribs=False, seed=6,
                       endplates=True)
    lab = auto_label(ph.volume)
    _check_exact(ph, lab)
    assert lab.anchor == "C2" and "skull" in lab.message


ISO, THICK = (0.8, 0.8, 0.8), (0.7, 0.7, 3.0)  # thin-slice isotropic; thick axial slices


def _fov(first: str, last: str, spacing) -> tuple[int, int, int]:
    """A 220 x 200 mm field of view, tall enough for first..last whole (the phantom starts 10 mm below its top)."""
    names = STANDARD.vertebrae[STANDARD.index(first): STANDARD.index(last) + 1]
    pitch = {"C": 19.0, "T": 27.0, "L": 37.0, "S": 90.0}  # the phantom's body + disc heights; the sacrum block
    length = 10.0 + sum(pitch[name[0]] for name in names) + 15.0
    return tuple(round(extent / step) for extent, step in zip((220.0, 200.0, length), spacing))


@pytest.mark.parametrize("first,last,ribs,spacing,endplates", [
    pytest.param(first, last, first[0] == "T", spacing, endplates,  # ribs when thoracic vertebrae are in view
                 id=f"{first}-{last}-{'0.8iso' if spacing == ISO else '0.7x0.7x3'}-{'endplates' if endplates else 'plain'}")
    for first, last, endplates in [("T11", "S1", True), ("T8", "S1", True), ("L1", "S1", True), ("T8", "S1", False)]
    for spacing in (ISO, THICK)
])
def test_phantom_fields_of_view_every_level_found_and_named(first, last, ribs, spacing, endplates):
    """Dense cortical endplates (as on every real CT), a pitch changing from thoracic to lumbar, thin and thick
    slices: every vertebra is found, named from the sacrum and placed within 3 mm of its body centre (S1 within
    4 mm: its centre is put 15 mm below its superior endplate, half an S1 body, not measured)."""
    ph = spine_phantom(first=first, last=last, shape=_fov(first, last, spacing), spacing=spacing, ribs=ribs, seed=1,
                       endplates=endplates)
    lab = auto_label(ph.volume)
    assert [v.name for v in lab.vertebrae] == list(ph.centres), lab.message
    assert lab.anchor == "S1"
    errors = {v.name: float(np.linalg.norm(np.subtract(v.centroid, ph.centres[v.name]))) for v in lab.vertebrae}
    assert all(err < (4.0 if name == "S1" else 3.0) for name, err in errors.items()), errors


@pytest.mark.parametrize("spacing", [ISO, THICK], ids=["0.8iso", "0.7x0.7x3"])
def test_phantom_thoracic_only_with_ribs_found_in_order_unnamed(spacing):
    """T4-T10 with ribs on every vertebra and dense endplates: no anchor in view (ribs on all, no sacrum or skull),
    so the vertebrae stay unnamed, but each is found in order within 3 mm of its centre, and naming one names all."""
    ph = spine_phantom(first="T4", last="T10", shape=_fov("T4", "T10", spacing), spacing=spacing, ribs=True, seed=1,
                       endplates=True)
    lab = auto_label(ph.volume)
    assert len(lab.vertebrae) == len(ph.centres) and not lab.named, lab.message
    for v, (name, centre) in zip(lab.vertebrae, ph.centres.items()):
        assert np.linalg.norm(np.subtract(v.centroid, centre)) < 3.0, name
    assert [v.name for v in lab.renamed_from(3, "T7", user="test").vertebrae] == list(ph.centres)


def test_phantom_without_anchor_is_left_unnamed_and_says_so():
    ph = spine_phantom(first="L1", last="L4", shape=(200, 180, 90), spacing=SPACING, ribs=False, seed=3)
    lab = auto_label(ph.volume)
    assert lab.vertebrae and not lab.named and lab.needs_confirmation
    assert "no anatomical anchor" in lab.message and "Name one vertebra" in lab.message
    for name, centre in ph.centres.items():  # still found where they are
        assert min(np.linalg.norm(np.subtract(v.centroid, centre)) for v in lab.vertebrae) < 6.0, name
    named = lab.renamed_from(1, "L2", user="test")  # the user names one; the rest follow
    assert [v.name for v in named.vertebrae][:3] == ["L1", "L2", "L3"]


def test_phantom_in_an_oblique_ras_nifti_round_trip(tmp_path):
    """Orientation handling: the phantom written as a RAS NIfTI (axes flipped) is labelled the same."""
    ph = spine_phantom(first="L2", last="S1", shape=(200, 180, 150), spacing=SPACING, ribs=False, seed=4)
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ph.volume.affine
    path = tmp_path / "phantom_ct.nii.gz"
    nib.save(nib.Nifti1Image(ph.volume.data[::-1, :, :].copy(), ras @ _flip_x(ph.volume.shape[0])), str(path))
    vol = load_series(scan(path).series[0])
    lab = auto_label(vol)
    _check_exact(ph, lab)


def _flip_x(n):
    m = np.eye(4)
    m[0, 0], m[0, 3] = -1.0, n - 1
    return m


@pytest.mark.parametrize("case", ["single_slice", "no_bone", "anisotropic", "tiny"])
def test_bad_input_gives_a_clear_message(case):
    if case == "single_slice":
        vol = Volume(np.zeros((64, 64, 1), np.int16), np.eye(4), modality="CT")
    elif case == "no_bone":
        vol = Volume(np.full((64, 64, 40), 40, np.int16), np.diag([2, 2, 2, 1.0]), modality="CT")
    elif case == "anisotropic":
        vol = Volume(np.zeros((64, 64, 5), np.int16), np.diag([0.5, 0.5, 10.0, 1.0]), modality="CT")
    else:
        vol = Volume(np.zeros((8, 8, 8), np.int16), np.eye(4), modality="CT")
    with pytest.raises(AutoLabelError) as err:
        auto_label(vol, backend="classical-ct")
    assert len(str(err.value)) > 20


def test_soft_tissue_only_ct_reports_no_spine():
    data = np.full((80, 80, 40), -1000, np.int16)
    data[10:70, 10:70, :] = 40
    data[30:40, 30:40, :] = 400  # a bone rod with no canal: not a spine
    with pytest.raises(AutoLabelError, match="no spinal column"):
        auto_label(Volume(data, np.diag([2, 2, 2, 1.0]), modality="CT"), backend="classical-ct")


def test_cancel_stops_the_labeller():
    ph = spine_phantom(first="L3", last="S1", shape=(120, 120, 80), spacing=(2.0, 2.0, 2.0), ribs=False)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        auto_label(ph.volume, progress=None, cancel=token)


def test_a_soft_focus_in_a_body_is_not_taken_for_the_canal_where_the_ring_is_open():
    """Between two pedicle levels the canal is not enclosed by bone; a soft hole inside the body (fatty marrow, a
    venous channel) then is the only canal-like hole in the slice. The canal a few mm higher or lower lies straight
    behind it, so it is the body's interior, not the canal (density cannot tell: fatty marrow is as low as CSF)."""
    step = 1.5
    g, i, j = _vertebra_slices(step)
    canal, solid = _slice_masks(g.copy(), g.copy(), step, np.full(g.shape[2], np.nan), None)
    focus = np.hypot(i - 45, j - 42) < 6
    for k in range(g.shape[2]):
        assert not (canal[:, :, k] & focus).any(), k
        if k not in range(8, 13):
            assert canal[:, :, k].any(), k  # the real canal where its ring is closed
    assert solid[:, :, 10][focus].all()  # the focus is filled as part of the body


def test_a_contrast_filled_aorta_on_the_body_is_detached():
    """Enhanced blood is as dense as cancellous bone: a body (30 mm wide) with an aorta (22 mm) lying on its front,
    fused through a waist, is split at the waist and the body kept (the piece touching the canal's front wall)."""
    step = 1.0
    i, j = np.meshgrid(np.arange(80.0), np.arange(80.0), indexing="ij")
    body = ((i - 40) / 16) ** 2 + ((j - 45) / 13) ** 2 < 1
    aorta = np.hypot(i - 50, j - 22) < 11
    blob = body | aorta | ((np.abs(i - 46) < 5) & (j > 24) & (j < 40))  # the waist
    assert ndimage.label(blob)[1] == 1
    kept = _detach(blob, step, front=58, ci=40)
    assert kept is not None and kept[40, 45] and not kept[50, 20]
    bi, bj = np.nonzero(kept)
    assert abs(bi.mean() - 40) < 2.5 and abs(bj.mean() - 45) < 2.5
    assert _detach(body, step, front=58, ci=40).sum() == body.sum()  # a body alone is left whole



def _vertebra_slices(step=1.5, nz=20, open_slices=range(8, 13)):
    """Axial CT slices (HU) of a body with a soft focus (50 HU, ~110 mm2) in its back half, and the canal behind it
    enclosed by its ring except in ``open_slices`` (the foramina, between two pedicle levels)."""
    n = 60
    i, j = np.meshgrid(np.arange(n) * step, np.arange(n) * step, indexing="ij")
    base = np.full((n, n), 40.0, np.float32)
    body = ((i - 45) / 22) ** 2 + ((j - 34) / 16) ** 2  # a lumbar body, 44 x 32 mm
    base[body < 1] = 480.0
    base[body < 0.8] = 220.0
    base[np.hypot(i - 45, j - 42) < 6] = 50.0
    r = np.hypot(i - 45, j - 58)
    g = np.repeat(base[:, :, None], nz, axis=2)
    for k in range(nz):
        ring = (r >= 7) & (r < 12)
        if k in open_slices:
            ring &= np.abs(j - 58) >= 4  # the foramina: the ring is open on both sides
        g[:, :, k][ring] = 500.0
        g[:, :, k][r < 7] = 10.0
    return g, i, j


def _real_ct(samples, image, reference, numbering):
    vol = load_series(scan(samples / image).series[0])
    ref = reference_from_labelmap(load_series(scan(samples / reference).series[0]), get_numbering(numbering))
    return vol, ref


@pytest.mark.parametrize("image,reference,numbering,main", [
    ("tptbox_ct_lumbar_crop_L2-L4/sub-ct_label-22_ct.nii.gz",
     "tptbox_ct_lumbar_crop_L2-L4/sub-ct_seg-vert_label-22_msk.nii.gz", "verse", "L3"),
    ("ts_ct_dicom_T11-T12/dicom", "ts_ct_dicom_T11-T12/seg_total_v2.nii.gz", "totalseg", "T12"),
])
def test_real_ct_samples_bodies_found_and_no_anchor_said(samples, image, reference, numbering, main):
    vol, ref = _real_ct(samples, image, reference, numbering)
    lab = auto_label(vol)
    assert lab.vertebrae, lab.message
    # a small field of view with neither sacrum, skull base nor the last rib above a rib-free vertebra
    assert not lab.named and "no anatomical anchor" in lab.message and lab.needs_confirmation
    nearest = min(np.linalg.norm(np.subtract(v.centroid, ref.points[main])) for v in lab.vertebrae)
    assert nearest < 20.0, f"no detection near {main}: {nearest:.1f} mm"


def test_cli_levels_eval_and_auto(tmp_path, capsys):
    ph = spine_phantom(first="L2", last="S1", shape=(200, 180, 150), spacing=SPACING, ribs=False, seed=5)
    img = tmp_path / "phantom_ct.nii.gz"
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ph.volume.affine
    nib.save(nib.Nifti1Image(ph.volume.data, ras), str(img))
    # reference label map: a 10 mm ball at each body centre, VerSe numbering
    labels = np.zeros(ph.volume.shape, np.uint8)
    ii, jj, kk = np.indices(ph.volume.shape)
    for name, c in ph.centres.items():
        v = ph.volume.patient_to_voxel(c)
        ball = ((ii - v[0]) * 1.5) ** 2 + ((jj - v[1]) * 1.5) ** 2 + ((kk - v[2]) * 2.0) ** 2 < 100
        labels[ball] = get_numbering("verse").encode(name)
    ref = tmp_path / "phantom_seg-vert_msk.nii.gz"
    nib.save(nib.Nifti1Image(labels, ras), str(ref))
    assert cli_main(["levels", "eval", str(img), "--reference", str(ref), "--numbering", "verse", "-q"]) == 0
    out = capsys.readouterr().out
    assert "identification rate: 1.00" in out
    err = float(next(line for line in out.splitlines() if line.startswith("localisation error mm:")).split(":")[1])
    assert err < 8.0
    assert "L5" in out and "S1" in out
    json_out = tmp_path / "levels.json"
    assert cli_main(["levels", "auto", str(img), "-o", str(json_out), "-q"]) == 0
    assert '"S1"' in json_out.read_text()
    assert cli_main(["levels", "auto", str(tmp_path / "missing.nii.gz"), "-q"]) == 2


def test_totalsegmentator_backend_is_offline_only(monkeypatch, tmp_path):
    backend = get_backend("totalsegmentator")
    assert isinstance(backend, TotalSegmentatorBackend)
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "no-weights"))
    ok, why = backend.available()
    assert not ok and ("not installed" in why or "never downloaded" in why)
    with pytest.raises(AutoLabelError):
        auto_label(Volume(np.zeros((10, 10, 10)), np.eye(4), modality="CT"), backend="totalsegmentator")


def test_totalsegmentator_label_map_conversion():
    data = np.zeros((40, 40, 60), np.uint8)
    data[10:30, 10:30, 0:18] = 27  # L5, cut by the lower border of the map
    data[10:30, 10:30, 22:38] = 28  # L4
    data[15:25, 32:36, :] = 79  # spinal cord: not a level
    lab = TotalSegmentatorBackend().labelling(Volume(data, np.eye(4), modality="SEG"), "uid")
    assert [v.name for v in lab.vertebrae] == ["L4", "L5"] and lab.confidence > 0.5
    assert lab.provenance.method == "totalsegmentator"
    # the shared conversion (core.spine.labelmap): a disc midway between the bodies, the cut L5 marked partial
    assert [d.name for d in lab.discs] == ["L4-L5"]
    assert [v.name for v in lab.vertebrae if v.partial] == ["L5"]
    with pytest.raises(AutoLabelError, match="no vertebra labels"):
        TotalSegmentatorBackend().labelling(Volume(np.zeros((8, 8, 8), np.uint8), np.eye(4), modality="SEG"))


def test_subprocess_runner_cancels_and_reports_failure():
    token = CancelToken()
    import threading
    threading.Timer(0.3, token.cancel).start()
    with pytest.raises(Cancelled):
        run_subprocess([sys.executable, "-c", "import time; time.sleep(30)"], None, token, poll_s=0.05)
    with pytest.raises(AutoLabelError, match="exit code 3"):
        run_subprocess([sys.executable, "-c", "print('Predicting...'); raise SystemExit(3)"], None, None)


@pytest.mark.parametrize("spacing", [ISO, THICK], ids=["0.8iso", "0.7x0.7x3"])
@pytest.mark.parametrize("below", [15.0, 30.0])
def test_sacrum_cut_short_by_the_field_of_view_is_named_from_its_junction_with_the_iliac_bones(spacing, below):
    """Only 15-30 mm of the sacrum in view (too little for the 'no disc for a long way' rule): the segment below the
    lowest disc joins the iliac bones on both sides and the one above does not, so it is S1."""
    length = 10.0 + 4 * 37.0 + below
    shape = tuple(round(extent / step) for extent, step in zip((220.0, 200.0, length), spacing))
    ph = spine_phantom(first="L2", last="S1", shape=shape, spacing=spacing, ribs=False, seed=1, endplates=True)
    lab = auto_label(ph.volume)
    assert lab.anchor == "S1" and "iliac" in lab.message, lab.message
    assert [v.name for v in lab.vertebrae] == list(ph.centres)


@pytest.mark.parametrize("first,last,ribs", [("L1", "L4", False), ("T6", "T10", True)])
def test_no_sacrum_is_claimed_without_a_pelvis(first, last, ribs):
    """A lumbar column cut above the sacrum, a mid-thoracic one with ribs on both sides of every vertebra: the
    first-sacral rule finds nothing (ribs are smaller than iliac wings, and the vertebra above has them too)."""
    ph = spine_phantom(first=first, last=last, shape=_fov(first, last, THICK), spacing=THICK, ribs=ribs, seed=2,
                       endplates=True)
    lab = auto_label(ph.volume)
    assert lab.anchor is None and all(v.name is None for v in lab.vertebrae), lab.message


def test_a_body_is_cut_to_its_narrower_half_width_about_the_canal():
    """An enhanced aorta fused to the side of a body over a broad contact is cut away: the body is nearly
    symmetric about its canal, so bone reaching much further to one side is not the body."""
    i, j = np.meshgrid(np.arange(100.0), np.arange(80.0), indexing="ij")
    body = ((i - 40) / 15) ** 2 + ((j - 40) / 12) ** 2 < 1
    aorta = np.hypot(i - 68, j - 38) < 16  # overlaps the body's side: one blob
    blob = body | aorta
    assert np.nonzero(blob)[0].mean() - 40 > 10.0  # the centre of the fused blob lies in the aorta's direction
    cut = _symmetric_about(blob, ci=40, step=1.0)
    bi, _ = np.nonzero(cut)
    # the slack (a body may be 15 % wider on one side, plus 2 mm) leaves a sliver of the aorta
    assert abs(bi.mean() - 40) < 4.0 and not cut[70, 38] and cut[30, 40]
    assert _symmetric_about(body, ci=40, step=1.0).sum() == body.sum()  # a body alone is left whole


def test_two_shoulders_above_a_column_are_not_a_skull():
    """A column traced up to the top of a thoracic phantom with 50 mm of soft tissue above it, where two separate bone
    masses lie 35-105 mm to either side (shoulders): together as wide as a skull base, but in two pieces, so no C2
    is named. The same masses joined across the midline above the column are taken for the skull base."""
    ph = spine_phantom(first="T2", last="T8", shape=(160, 150, 120), spacing=(1.5, 1.5, 2.0), ribs=True, seed=3,
                       endplates=True)
    data = np.pad(ph.volume.data, ((0, 0), (0, 0), (0, 25)), constant_values=40)
    nz = ph.volume.data.shape[2]
    ci = data.shape[0] // 2
    blocks = data.copy()
    for side in (-1, 1):
        a, b = sorted((ci + side * round(35 / 1.5), ci + side * round(105 / 1.5)))
        blocks[a:b, 50:100, nz + 5: nz + 23] = 700
    lab = auto_label(Volume(blocks, ph.volume.affine, modality="CT"))
    assert lab.anchor != "C2" and not any((v.name or "").startswith("C") for v in lab.vertebrae), lab.message
    joined = blocks.copy()
    joined[ci - 30: ci + 30, 50:100, nz + 5: nz + 23] = 700
    assert auto_label(Volume(joined, ph.volume.affine, modality="CT")).anchor == "C2"


@pytest.mark.parametrize("first,last", [("C6", "T5"), ("C5", "T4")])
def test_phantom_named_from_the_first_rib(first, last):
    """The cervicothoracic junction: the highest vertebra a rib reaches, with a rib-free C7 above it, is T1."""
    ph = spine_phantom(first=first, last=last, shape=_fov(first, last, ISO), spacing=ISO, ribs=True, seed=4,
                       endplates=True)
    lab = auto_label(ph.volume)
    assert lab.anchor == "T1" and "first rib" in lab.message, lab.message
    assert [v.name for v in lab.vertebrae] == list(ph.centres)


def test_a_flat_transverse_process_is_not_a_rib():
    """A long lumbar transverse process (60 mm out from the body, 10 mm tall, lying flat) at L1 beside the last
    ribs' level: a rib slopes down as it goes out, this does not, so T12 stays the last rib-bearing vertebra."""
    ph = spine_phantom(first="T9", last="L3", shape=SHAPE, spacing=SPACING, seed=2, endplates=True)
    data = ph.volume.data.copy()
    src = np.linalg.solve(ph.volume.affine[:3, :3], np.subtract(ph.centres["L1"], ph.volume.affine[:3, 3]))
    i, j, k = np.round(src).astype(int)
    sx, sy, sz = SPACING
    data[i + round(20 / sx): i + round(80 / sx), j + round(12 / sy): j + round(20 / sy),
         k - round(5 / sz): k + round(5 / sz)] = 500
    lab = auto_label(Volume(data, ph.volume.affine, modality="CT"))
    assert lab.anchor == "T12" and [v.name for v in lab.vertebrae] == list(ph.centres), lab.message
