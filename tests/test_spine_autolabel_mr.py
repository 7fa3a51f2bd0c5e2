"""The built-in MR labeller: a T2-like phantom named from the sacrum, the two real MR samples (detection and
positions; no anchor is in their fields of view, so they must stay unnamed and say so), bad input."""
import numpy as np
import pytest

from core.spine.autolabel import AutoLabelError, auto_label, choose_backend
from core.spine.evaluation import confirm_one, evaluate
from core.spine.numbering import get_numbering
from core.spine.phantom import spine_phantom
from core.spine.reference import ReferenceSet, reference_from_labelmap
from core.studies import load_series, scan
from core.studies.volume import Volume

# CT HU -> T2-like signal: fat bright, CSF brightest, discs bright, marrow intermediate, cortex and air dark
_HU = [-1000, -200, -90, 10, 20, 40, 90, 200, 260, 350, 480, 600]
_T2 = [0, 0, 900, 1400, 1400, 350, 800, 420, 420, 300, 80, 60]


def _t2_phantom(first, last, seed=1):
    ph = spine_phantom(first=first, last=last, shape=(200, 180, 180), spacing=(1.5, 1.5, 2.0), ribs=False,
                       seed=seed, noise_hu=0)
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


def _mr_sample(samples, image, reference, numbering):
    vol = load_series(scan(samples / image).series[0])
    ref = reference_from_labelmap(load_series(scan(samples / reference).series[0]), get_numbering(numbering))
    return vol, ref


def test_sct_cervical_t2(samples):
    """C2-C5 on a small cervical FOV (54 mm tall, bodies cut in front; no dens, no skull base): unnamed and said so.
    References are on the cord: along-axis distances. A weak case (the pitch is hard to tell on 3 discs): only
    the detection near C4 is required to be close."""
    vol, ref = _mr_sample(samples, "sct_cervical_t2_mri_C2-C5/t2.nii.gz",
                          "sct_cervical_t2_mri_C2-C5/t2_cordseg_labeled_by_level.nii.gz", "sct")
    lab = auto_label(vol)
    assert len(lab.vertebrae) >= 2 and not lab.named and "no anatomical anchor" in lab.message
    ev = evaluate(lab, ref)
    assert ev.along_axis and ev.detection_error_mm is not None and ev.detection_error_mm < 12.0
    assert next(s for s in ev.levels if s.name == "C4").nearest_detection_mm < 5.0
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
