"""The built-in MR labeller: T2-like phantoms named from the sacrum and from C2, the two real MR samples (detection
and positions; no anchor is in their fields of view, so they must stay unnamed and say so), bad input."""
import re

import numpy as np
import pytest

from core.spine.autolabel import AutoLabelError, auto_label, choose_backend, mr_anchors
from core.spine.autolabel.ct_column import Column, Detection, segments_from_discs
from core.spine.evaluation import confirm_one, evaluate
from core.spine.numbering import get_numbering
from core.spine.reference import ReferenceSet, reference_from_labelmap
from core.studies import load_series, scan
from core.studies.volume import Volume
from core.synthetic.phantom import spine_phantom

# CT HU -> T2-like signal: fat bright, CSF brightest, discs bright, marrow intermediate, cortex and air dark
_HU = [-1000, -200, -90, 10, 20, 40, 90, 200, 260, 350, 480, 600]
_T2 = [0, 0, 900, 1400, 1400, 350, 800, 420, 420, 300, 80, 60]


def _t2_phantom(first, last, seed=1, shape=(200, 180, 180), endplates=False):
    ph = spine_phantom(first=first, last=last, shape=shape, spacing=(1.5, 1.5, 2.0), ribs=False,
                       seed=seed, noise_hu=0, endplates=endplates)
    data = np.interp(ph.volume.data.astype(np.float32), _HU, _T2).astype(np.float32)
    data += np.random.default_rng(seed).normal(0, 25, data.shape).astype(np.float32)
    return ph, Volume(np.clip(data, 0, None), ph.volume.affine, modality="MR", series_uid="mr-phantom")


def test_t2_phantom_named_from_the_sacrum():
    ph, vol = _t2_phantom("L1", "S1")
    assert choose_backend(vol).name == "classical-mr"
    lab = auto_label(vol)
    assert [v.name for v in lab.vertebrae] == list(ph.centres), lab.message
    assert lab.anchor == "S1" and "sacrum" in lab.message and lab.provenance.method == "classical-mr"
    ev = evaluate(lab, ReferenceSet(ph.centres))
    assert ev.identification_rate == 1.0
    lumbar = [np.linalg.norm(np.subtract(v.centroid, ph.centres[v.name])) for v in lab.vertebrae if v.name != "S1"]
    assert np.median(lumbar) < 5.0, lumbar
    assert [d.name for d in lab.discs] == list(ph.discs)


def test_t2_phantom_without_anchor_is_unnamed():
    _, vol = _t2_phantom("L1", "L4", seed=2)
    lab = auto_label(vol)
    assert lab.vertebrae and not lab.named and lab.needs_confirmation
    assert "no anatomical anchor" in lab.message and "Name one vertebra" in lab.message
    assert not any("S1-S2 remnant" in n for n in lab.notes)  # no sacrum in view: nothing to say about one


# Clinical lumbar MR: 15 sagittal slices of 4 mm (a 60 mm slab across the spine), 0.8 mm in plane, T11 to the sacrum
LUMBAR = {"shape": (15, 340, 400), "spacing": (4.0, 0.8, 0.8)}


# CT HU -> T1-like: fat and marrow bright (also in the laminae and spinous processes), CSF dark, discs intermediate,
# cortex (480 HU: the bodies' shells and endplates) dark
_HU1 = [-1000, -200, -90, 10, 20, 40, 90, 200, 260, 350, 450, 480, 500, 600]
_T1 = [0, 0, 900, 150, 150, 350, 300, 600, 600, 300, 550, 60, 550, 550]


WHOLE = {"shape": (15, 320, 760), "spacing": (4.0, 1.0, 1.0)}  # a whole-spine sagittal MR, skull base to sacrum


def _lumbar_t2(seed=1, dark=(), dark_val=250.0, no_endplates=(), remnant_mm=0.0, remnant_val=700.0, t1=False,
               first="T11", geometry=LUMBAR, sacral_fat=False):
    """A sagittal lumbar T2 (``t1``: T1) phantom, the slab inside a trunk of adult width. ``dark``: degenerated discs (T2 signal ``dark_val``; the marrow is 420, a healthy
    disc 800, the endplates 80); ``no_endplates``: discs whose endplates are as bright as the marrow (nothing dark
    left around a dark disc); ``remnant_mm``: an S1-S2 remnant, a band of that thickness 31 mm below S1's top."""
    ph = spine_phantom(first=first, last="S1", ribs=False, seed=seed, noise_hu=0, endplates=True,
                       trunk_width_mm=320.0, **geometry)
    hu = ph.volume.data.astype(np.float32)
    sz = geometry["spacing"][2]
    t2 = (np.interp(hu, _HU1, _T1) if t1 else np.interp(hu, _HU, _T2)).astype(np.float32)
    z = np.arange(hu.shape[2]) * sz
    for name in dark:
        near = np.abs(z - ph.discs[name][2]) < 8.0
        t2[:, :, near] = np.where((hu[:, :, near] > 60) & (hu[:, :, near] < 120), dark_val, t2[:, :, near])
    for name in no_endplates:
        zc = ph.discs[name][2]
        footprint = (hu[:, :, round(zc / sz)] > 60)[:, :, None]
        near = np.abs(z - zc) < 9.0
        t2[:, :, near] = np.where(footprint & (hu[:, :, near] > 400), 420.0, t2[:, :, near])
    if sacral_fat:  # the dural sac ends at S2: below it the sacral canal holds fat (bright on T1 and T2)
        below = z < ph.centres["S1"][2] + 15.0 - 30.0
        t2[:, :, below] = np.where((hu[:, :, below] > 5) & (hu[:, :, below] < 25), 900.0, t2[:, :, below])
    if remnant_mm:
        near = np.abs(z - (ph.centres["S1"][2] + 15.0 - 31.0)) < remnant_mm / 2.0
        t2[:, :, near] = np.where((hu[:, :, near] > 200) & (hu[:, :, near] < 300), remnant_val, t2[:, :, near])
    t2 += np.random.default_rng(seed).normal(0, 25, t2.shape).astype(np.float32)
    return ph, Volume(np.clip(t2, 0, None), ph.volume.affine, modality="MR", series_uid="lumbar-t2")


@pytest.mark.parametrize("case", [
    {},  # healthy discs
    {"dark": ("L4-L5", "L5-S1")},  # the two lowest discs degenerated, dark between their dark endplates
    {"dark": ("L5-S1",), "dark_val": 300.0, "no_endplates": ("L5-S1",)},  # only a band a little darker than bone
    {"dark": ("L4-L5", "L5-S1"), "dark_val": 300.0, "no_endplates": ("L4-L5", "L5-S1")},
    {"remnant_mm": 2.4},  # a thin S1-S2 remnant line
    {"t1": True},  # T1: the canal is dark, the laminae and the fat behind it bright
    {"t1": True, "dark": ("L4-L5", "L5-S1"), "dark_val": 200.0},
    {"t1": True, "sacral_fat": True, "remnant_mm": 2.4},  # fat in the sacral canal, brighter than bone: no T1 disc
    {"sacral_fat": True, "remnant_mm": 2.4},
])
def test_lumbar_t2_with_degenerated_discs_named_from_the_sacrum(case):
    """The sacrum names a clinical lumbar T2 even when its lowest discs are degenerated (dark, the commonest finding
    of a lumbar MR): before, the column was not followed through them and nothing was named. On T1 the canal was
    once traced along the bright laminae behind it, and the levels named wrongly."""
    ph, vol = _lumbar_t2(**case)
    lab = auto_label(vol)
    assert lab.anchor == "S1", (lab.message, lab.notes)
    assert [v.name for v in lab.vertebrae] == list(ph.centres)
    ev = evaluate(lab, ReferenceSet(ph.centres))
    assert ev.identification_rate == 1.0 and ev.localisation_error_mm < 5.0


@pytest.mark.parametrize("case", [
    {"dark": ("L5-S1",), "dark_val": 350.0, "no_endplates": ("L5-S1",)},  # L5-S1 barely darker than bone
    {"remnant_mm": 5.0, "remnant_val": 100.0},  # a thick, dark, full-depth S1-S2 band: a disc-like remnant
])
@pytest.mark.parametrize("seed", [1, 2])
def test_lumbar_t2_never_misnamed_when_the_lowest_disc_is_in_doubt(case, seed):
    """A missed L5-S1 makes L5 and the sacrum look like one long S1, and a remnant taken for L5-S1 makes S2 look
    like S1: both would shift every name by one. Such images are named right or not at all, and say why."""
    ph, vol = _lumbar_t2(seed=seed, **case)
    lab = auto_label(vol)
    if lab.named:
        assert [v.name for v in lab.vertebrae] == list(ph.centres)
    else:
        assert lab.needs_confirmation and "no anatomical anchor" in lab.message
    if "no_endplates" in case:
        assert not lab.named and any("faint band" in n and "S1-S2 remnant" in n for n in lab.notes), lab.notes


@pytest.mark.parametrize("t1", [False, True])
@pytest.mark.parametrize("seed", [1, 2])
def test_whole_spine_mr_with_a_pitch_growing_down_the_spine(t1, seed):
    """Skull base to sacrum (C2..S1, 24 vertebrae) on one sagittal image, degenerated L4-L5 and L5-S1 on T2: the
    pitch grows from 19 mm in the neck to 37 mm low down, so the discs are searched with a local pitch (one pitch
    for the whole column found half the cervical discs, or missed the lumbar ones, and named nothing or named
    wrongly)."""
    ph, vol = _lumbar_t2(seed=seed, first="C1", geometry=WHOLE, t1=t1, remnant_mm=2.4,
                         dark=() if t1 else ("L4-L5", "L5-S1"))
    lab = auto_label(vol)
    assert lab.named and [v.name for v in lab.vertebrae] == list(ph.centres), (lab.message, lab.notes)
    ev = evaluate(lab, ReferenceSet(ph.centres))
    assert ev.identification_rate == 1.0 and ev.localisation_error_mm < 5.0
    assert any(re.search(r"vertebral pitch (1[89]|20)-3[6-9] mm", n) for n in lab.notes), lab.notes
    assert [d.name for d in lab.discs] == list(ph.discs)


NECK = (160, 150, 140)  # 240 x 225 x 280 mm


def test_cervical_t2_phantom_named_from_c2():
    """Skull base, C1 ring and C2 (body and dens, one ~36 mm bone) above C3..T2: the column runs on into the skull
    (the canal trace does not stop at the skull base), yet C2 is recognised as the tall top vertebra and placed on
    its body, not half-way up the stretch above the C2-C3 disc."""
    ph, vol = _t2_phantom("C1", "T2", shape=NECK, endplates=True)
    assert "C1" not in ph.centres  # a ring, no body
    lab = auto_label(vol)
    assert lab.anchor == "C2" and "C2 with its dens" in lab.message, lab.message
    assert [v.name for v in lab.vertebrae] == list(ph.centres)
    ev = evaluate(lab, ReferenceSet(ph.centres))
    assert ev.identification_rate == 1.0 and ev.localisation_error_mm < 5.0
    assert np.linalg.norm(np.subtract(lab.centroids()["C2"], ph.centres["C2"])) < 5.0
    assert lab.discs and lab.discs[0].name == "C2-C3"


def test_c2_at_the_top_of_the_field_of_view_without_the_skull():
    """The image ends 4 mm above the dens tip (C1 ring in view, skull base not): still C2."""
    ph, vol = _t2_phantom("C1", "T2", seed=2, shape=NECK, endplates=True)
    dens_tip = (NECK[2] - 1) * 2.0 - 40.0  # the phantom's column starts 10 mm + 30 mm (skull room) below the top
    cropped = Volume(vol.data[:, :, : int((dens_tip + 4.0) / 2.0) + 1].copy(), vol.affine, modality="MR")
    lab = auto_label(cropped)
    assert lab.anchor == "C2" and [v.name for v in lab.vertebrae] == list(ph.centres), lab.message
    assert 0.5 <= lab.confidence <= 0.7


@pytest.mark.parametrize("above_disc_mm", [-10.0, 10.0, 22.0, 38.0])
def test_c2_named_only_when_enough_of_it_is_in_view(above_disc_mm):
    """The image's top cuts the neck at various heights above the C2-C3 disc: below it or through the lower part
    of C2 (about a pitch of bone above the highest disc, as an ordinary body cut by the edge would show) the levels
    stay unnamed; with most of C2 in view they are named, and never wrongly."""
    ph, vol = _t2_phantom("C1", "T2", seed=4, shape=NECK, endplates=True)
    keep = int((ph.discs["C2-C3"][2] + above_disc_mm) / 2.0) + 1
    lab = auto_label(Volume(vol.data[:, :, :keep].copy(), vol.affine, modality="MR"))
    if above_disc_mm < 30.0:
        assert not lab.named and "no anatomical anchor" in lab.message, lab.message
    else:
        assert lab.anchor == "C2", lab.message
        for v in lab.vertebrae:
            assert np.linalg.norm(np.subtract(v.centroid, ph.centres[v.name])) < 6.0, v.name


def _synthetic_detection(faint: float) -> Detection:
    """A T2-like profile along a column (1 mm steps): bright discs every 19 mm from 60 mm down, a 60 mm stretch
    without a detected disc above them, and optionally a faint disc one pitch above the highest."""
    s = np.arange(160.0)
    prof = np.full_like(s, 0.4)
    discs = [60.0, 79.0, 98.0, 117.0, 136.0]
    for d in discs:
        prof += 0.4 * np.exp(-0.5 * ((s - d) / 2.0) ** 2)
    prof += faint * 0.4 * np.exp(-0.5 * ((s - 41.0) / 2.0) ** 2)
    pts = np.column_stack([np.zeros_like(s), np.zeros_like(s), 160.0 - s])
    col = Column(pts, np.tile([0.0, 0.0, 1.0], (len(s), 1)), 1.0, prof, (0, 159))
    return Detection(col, discs, segments_from_discs(discs, 159.0), [1.0] * len(discs))


def test_c2_anchor_refused_when_a_faint_disc_lies_a_pitch_above_the_highest():
    """A missed disc would make two vertebrae look like one tall C2 and shift every name by one."""
    facts = {"pitch": 19.0}
    assert mr_anchors.c2(_synthetic_detection(0.0), facts).name == "C2"
    assert mr_anchors.c2(_synthetic_detection(0.6), facts) is None
    assert mr_anchors.c2(_synthetic_detection(0.0), {"pitch": 38.0}) is None  # not a cervical pitch


def _mr_sample(samples, image, reference, numbering):
    vol = load_series(scan(samples / image).series[0])
    ref = reference_from_labelmap(load_series(scan(samples / reference).series[0]), get_numbering(numbering))
    return vol, ref


def test_sct_cervical_t2(samples):
    """C2-C5 on a small cervical FOV (54 mm tall, bodies cut in front): only the lower ~20 mm of C2 is in view
    above the C2-C3 disc (about one pitch: no dens, no C1, no skull base), which an ordinary body cut by the edge of
    the image would also show, so it stays unnamed and says so. References are on the cord: along-axis distances.
    The pitch (~20 mm) is found from a line through the bodies' middle, not along their posterior wall where the
    basivertebral veins mark mid-body like discs (which once gave twice the pitch)."""
    vol, ref = _mr_sample(samples, "sct_cervical_t2_mri_C2-C5/t2.nii.gz",
                          "sct_cervical_t2_mri_C2-C5/t2_cordseg_labeled_by_level.nii.gz", "sct")
    lab = auto_label(vol)
    assert len(lab.vertebrae) >= 3 and not lab.named and "no anatomical anchor" in lab.message
    assert any("pitch 2" in n or "pitch 1" in n for n in lab.notes), lab.notes  # cervical: 15-25 mm
    ev = evaluate(lab, ref)
    assert ev.along_axis and ev.detection_error_mm is not None and ev.detection_error_mm < 5.0
    for name in ("C2", "C3", "C4"):
        assert next(s for s in ev.levels if s.name == name).nearest_detection_mm < 5.0, name
    confirmed = confirm_one(lab, ref)
    assert confirmed is not None and confirmed[1] >= 0.5


def test_tptbox_cervical_t2_crop(samples):
    vol, ref = _mr_sample(samples, "tptbox_mri_cervical_crop_C5-C7/sub-mri_label-6_T2w.nii.gz",
                          "tptbox_mri_cervical_crop_C5-C7/sub-mri_seg-vert_label-6_msk.nii.gz", "verse")
    lab = auto_label(vol)
    assert len(lab.vertebrae) >= 2 and not lab.named
    ev = evaluate(lab, ref)
    c6 = next(s for s in ev.levels if s.name == "C6")  # the one vertebra wholly in view
    assert c6.nearest_detection_mm < 6.0, c6
    # the C5-C6 and C6-C7 discs (VerSe 105, 106) are found within 5 mm along the spine
    labels = load_series(scan(samples / "tptbox_mri_cervical_crop_C5-C7/sub-mri_seg-vert_label-6_msk.nii.gz")
                         .series[0]).as_closest_lps()
    data = np.rint(np.asarray(labels.data)).astype(int)
    for value in (105, 106):
        ref_z = labels.voxel_to_patient(np.argwhere(data == value).mean(axis=0))[2]
        assert min(abs(d.centre[2] - ref_z) for d in lab.discs) < 5.0, value


@pytest.mark.parametrize("case", ["single_slice", "noise", "flat"])
def test_bad_mr_input_gives_a_clear_message(case):
    rng = np.random.default_rng(0)
    if case == "single_slice":
        vol = Volume(np.zeros((64, 64, 1), np.float32), np.eye(4), modality="MR")
    elif case == "noise":
        vol = Volume(rng.normal(100, 10, (60, 60, 60)).astype(np.float32), np.diag([2, 2, 2, 1.0]), modality="MR")
    else:
        vol = Volume(np.full((60, 60, 60), 50.0, np.float32), np.diag([2, 2, 2, 1.0]), modality="MR")
    with pytest.raises(AutoLabelError) as err:
        auto_label(vol, backend="classical-mr")
    assert len(str(err.value)) > 20
