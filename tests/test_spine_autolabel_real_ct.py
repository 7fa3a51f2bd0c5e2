"""The built-in CT labeller on a real abdominal/pelvic CT with 3 mm voxels (T11 to the sacrum, iliac bones in view),
a field of view none of the ../shared samples has. The vertebra labels come from TotalSegmentator (see the data's
README): a reference, not hand-drawn ground truth."""
from pathlib import Path

import numpy as np

from core.hashing import sha256_file
from core.library.opener import load_volume
from core.spine.autolabel import auto_label
from core.spine.autolabel.ct_column import _canal_candidates
from core.spine.evaluation import evaluate, format_report
from core.spine.numbering import get_numbering
from core.spine.reference import reference_from_labelmap

DATA = Path(__file__).parent / "data" / "totalseg_example_ct"
SHA256 = {"ct.nii.gz": "dbd3ae6d614d1d7ef3a46925c30c70038ed52da6b37fdd6afdc7b9b71387e3e1",
          "seg_vertebrae_totalseg.nii.gz": "1dee90b23f201480e42211527b1e3acefd99c22e21291ef319a95d0b460d7376"}


def test_the_data_is_the_published_files():
    for name, digest in SHA256.items():
        assert sha256_file(DATA / name) == digest, name


def test_lumbar_ct_with_pelvis_is_named():
    """Before the canal was looked for in a slab and holes in paired bones were set aside, the column ran down an
    iliac bone, only two vertebrae were found and they were named C2 and C3 from a 'skull base' (the pelvis). Then
    T12, half in view at the top of the image, was lost because the canal was sought in too few of the top slices
    (the ends of the field of view were padded with the last slice); now it is found, and its ribs name the levels.
    The low-contrast sacrum of this 3 mm CT is not traced beyond S1; S1's junction with the iliac bones shows on
    few slices, so the S1 anchor may or may not hold: either anchor names the same levels."""
    volume, _ = load_volume(DATA / "ct.nii.gz")
    lab = auto_label(volume, backend="classical-ct")
    assert len(lab.vertebrae) >= 7, lab.message  # of 8: T11, whose centre is nearly out of view, is missed
    assert lab.anchor in ("S1", "T12") and ("iliac" in lab.message or "rib" in lab.message), lab.message
    mask, _ = load_volume(DATA / "seg_vertebrae_totalseg.nii.gz")
    reference = reference_from_labelmap(mask, get_numbering("totalseg"), canal_from_neighbours=True)
    assert list(reference.points) == ["T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    ev = evaluate(lab, reference)
    assert ev.identification_rate >= 0.85, format_report(ev)
    assert ev.localisation_error_mm is not None and ev.localisation_error_mm < 8.0, format_report(ev)


def test_a_hole_in_a_paired_bone_is_not_the_canal():
    """Off the trunk's midline, a hole with bone at its mirror image (the other hip bone) is set aside; the same hole
    with soft tissue at its mirror image (a canal displaced by scoliosis) is kept, and so is a hole on the midline."""
    cand = np.array([1, 2])
    centres = np.array([[20.0, 40.0], [50.0, 40.0]])  # 75 mm left of the midline (i = 50), and on it
    slab = np.zeros((100, 80, 1), dtype=bool)
    mids = np.array([50.0])
    kept, _ = _canal_candidates(0, {0: (cand, centres)}, slab, mids, step=2.5)
    assert kept.tolist() == [1, 2]
    slab[78:83, 38:43, 0] = True  # bone at the mirror image of the first hole
    kept, _ = _canal_candidates(0, {0: (cand, centres)}, slab, mids, step=2.5)
    assert kept.tolist() == [2]
    kept, _ = _canal_candidates(0, {0: (cand, centres)}, slab, np.array([np.nan]), step=2.5)
    assert kept.tolist() == [1, 2]  # no midline known (a cropped trunk): nothing is set aside
