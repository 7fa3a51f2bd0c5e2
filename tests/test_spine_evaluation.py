"""Evaluation metrics on hand-worked examples, and reference positions taken from label maps."""
import json

import numpy as np
import pytest

from core.spine.evaluation import evaluate, format_report
from core.spine.labelling import SpineLabelling, VertebraLabel
from core.spine.numbering import get_numbering
from core.spine.reference import ReferenceSet, reference_from_labelmap, verse_centroid_json
from core.studies import load_series, scan
from core.studies.volume import Volume

REF = {"L1": (0.0, 0.0, 0.0), "L2": (0.0, 0.0, -35.0), "L3": (0.0, 0.0, -70.0)}


def _pred(**named):
    return SpineLabelling([VertebraLabel(n, p) for n, p in named.items()])


def test_perfect_and_offset_predictions():
    ev = evaluate(_pred(L1=(0, 0, 0), L2=(0, 0, -35), L3=(0, 0, -70)), ReferenceSet(REF))
    assert ev.identification_rate == 1.0 and ev.localisation_error_mm == 0.0
    ev = evaluate(_pred(L1=(3, 4, 0), L2=(0, 0, -35), L3=(0, 0, -70)), ReferenceSet(REF))
    assert ev.identification_rate == 1.0 and ev.localisation_error_mm == pytest.approx(5 / 3)


def test_closest_but_too_far_is_not_identified():
    # L3 predicted 25 mm caudal of its reference: still closest to L3 (L2 is 60 mm away) but beyond 20 mm
    ev = evaluate(_pred(L1=(0, 0, 0), L2=(0, 0, -35), L3=(0, 0, -95)), ReferenceSet(REF))
    by = {s.name: s for s in ev.levels}
    assert by["L3"].closest_reference == "L3" and by["L3"].distance_mm == pytest.approx(25.0)
    assert not by["L3"].identified and ev.identification_rate == pytest.approx(2 / 3)
    assert ev.localisation_error_mm == pytest.approx(25 / 3)


def test_within_20mm_but_closer_to_another_vertebra_is_not_identified():
    # L2 predicted 19 mm from its reference but 16 mm from L3's: wrong vertebra
    ev = evaluate(_pred(L1=(0, 0, 0), L2=(0, 0, -54), L3=(0, 0, -70)), ReferenceSet(REF))
    by = {s.name: s for s in ev.levels}
    assert by["L2"].distance_mm == pytest.approx(19.0) and by["L2"].closest_reference == "L3"
    assert not by["L2"].identified and ev.identification_rate == pytest.approx(2 / 3)


def test_wrong_names_shifted_by_one_level():
    # the detections sit on the right bodies but are named one level too high
    ev = evaluate(_pred(T12=(0, 0, 0), L1=(0, 0, -35), L2=(0, 0, -70)), ReferenceSet(REF))
    assert ev.identification_rate == 0.0
    assert ev.localisation_error_mm == pytest.approx(35.0)  # L1 and L2 each 35 mm off; L3 has no prediction
    assert ev.detection_error_mm == 0.0  # every reference has a detection on it, whatever its name


def test_missing_and_unnamed_predictions():
    ev = evaluate(SpineLabelling([VertebraLabel(None, (0, 0, -1))]), ReferenceSet(REF))
    assert ev.identification_rate == 0.0 and ev.localisation_error_mm is None
    assert ev.levels[0].nearest_detection_mm == pytest.approx(1.0)
    text = format_report(ev)
    assert "identification rate: 0.00" in text and "localisation error mm: " in text and "nearest" in text
    assert evaluate(SpineLabelling([]), ReferenceSet({})).identification_rate == 0.0


def test_cord_references_are_compared_along_the_long_axis():
    cord = {"C3": (0.0, 15.0, 0.0), "C4": (0.0, 15.0, -16.0), "C5": (0.0, 15.0, -32.0)}
    # predictions on the bodies, 15 mm anterior of the cord, 2 mm lower
    ev = evaluate(_pred(C3=(0, 0, -2), C4=(0, 0, -18), C5=(0, 0, -34)), ReferenceSet(cord, on_cord=True))
    assert ev.along_axis and ev.identification_rate == 1.0 and ev.localisation_error_mm == pytest.approx(2.0)
    assert "long axis" in format_report(ev)


def _labelmap(data, spacing=(1.0, 1.0, 1.0)):
    return Volume(data=data, affine=np.diag([*spacing, 1.0]), modality="SEG")


def test_body_centre_from_a_whole_vertebra_mask():
    data = np.zeros((60, 80, 30), dtype=np.uint8)
    data[20:40, 10:30, 5:25] = 22  # body: x 20-40, y 10-30 (anterior)
    ring = np.zeros((60, 80), dtype=bool)
    yy, xx = np.mgrid[0:60, 0:80]
    r = np.hypot(yy - 30, xx - 38)
    ring[(r >= 8) & (r < 12)] = True  # arch around a canal centred at y=38, front edge at y=30
    ring[28:33, 48:70] = True  # spinous process
    data[ring[:, :, None].repeat(30, axis=2) & (data == 0)] = 22
    data[:, :, :5] = 0
    data[:, :, 25:] = 0
    ref = reference_from_labelmap(_labelmap(data), get_numbering("verse"))
    body = np.array(ref.points["L3"])
    assert body == pytest.approx([29.5, 19.5, 14.5], abs=1.5)
    whole = reference_from_labelmap(_labelmap(data), get_numbering("verse"), body_only=False)
    assert whole.points["L3"][1] > body[1] + 5  # the whole-mask centre lies behind the body


def test_body_centres_match_verse_manual_centroids(samples):
    folder = samples / "verse004_labels_only_T9-L5"
    mask = load_series(scan(folder / "sub-verse004_seg-vert_msk.nii.gz").series[0])
    manual = verse_centroid_json(json.loads((folder / "sub-verse004_seg-subreg_ctd.json").read_text()), mask)
    ref = reference_from_labelmap(mask, get_numbering("verse"))
    assert list(ref.points) == ["T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    errors = [np.linalg.norm(np.subtract(ref.points[n], manual[n])) for n in manual]
    assert np.mean(errors) < 4.0 and max(errors) < 10.0
    ev = evaluate(SpineLabelling([VertebraLabel(n, p) for n, p in manual.items()]), ref)
    assert ev.identification_rate == 1.0


@pytest.mark.parametrize("folder,stem,cut", [("tptbox_ct_lumbar_crop_L2-L4", "sub-ct_seg-%s_label-22_msk", "L2"),
                                             ("tptbox_mri_cervical_crop_C5-C7", "sub-mri_seg-%s_label-6_msk", "C5")])
def test_canal_from_neighbours_finds_the_body_of_a_vertebra_cut_by_the_field_of_view(samples, folder, stem, cut):
    """A vertebra cut below its pedicles encloses no canal: by default its reference is the whole-mask centre (with
    its posterior elements, far behind the body); with ``canal_from_neighbours`` the body is taken in front of the
    nearest vertebrae's canal line. Checked against the masks' own vertebral-body subregions (TPTBox 49/50)."""
    vert = load_series(scan(samples / folder / f"{stem % 'vert'}.nii.gz").series[0])
    sub = np.rint(np.asarray(load_series(scan(samples / folder / f"{stem % 'subreg'}.nii.gz").series[0])
                             .as_closest_lps().data)).astype(int)
    lps = vert.as_closest_lps()
    data = np.rint(np.asarray(lps.data)).astype(int)
    verse = get_numbering("verse")
    old = reference_from_labelmap(vert, verse)
    new = reference_from_labelmap(vert, verse, canal_from_neighbours=True)
    assert any(n.startswith(f"{cut}: ") and "whole-mask" in n for n in old.notes)
    assert any(n.startswith(f"{cut}: ") and "nearest vertebrae" in n for n in new.notes)
    for name, point in new.points.items():
        body = lps.voxel_to_patient(np.argwhere((data == verse.encode(name)) & np.isin(sub, [49, 50])).mean(axis=0))
        assert np.linalg.norm(np.subtract(point, body)) < 4.0, name
    body = lps.voxel_to_patient(np.argwhere((data == verse.encode(cut)) & np.isin(sub, [49, 50])).mean(axis=0))
    assert np.linalg.norm(np.subtract(old.points[cut], body)) > 10.0  # what the default gives


def test_robust_canal_line_matches_verse_manual_centroids(samples):
    folder = samples / "verse004_labels_only_T9-L5"
    mask = load_series(scan(folder / "sub-verse004_seg-vert_msk.nii.gz").series[0])
    manual = verse_centroid_json(json.loads((folder / "sub-verse004_seg-subreg_ctd.json").read_text()), mask)
    ref = reference_from_labelmap(mask, get_numbering("verse"), canal_from_neighbours=True)
    errors = [np.linalg.norm(np.subtract(ref.points[n], manual[n])) for n in manual]
    assert np.mean(errors) < 3.0 and max(errors) < 10.0
