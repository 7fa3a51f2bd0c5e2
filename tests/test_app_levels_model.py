"""The levels model without the main window: label-map import (real label maps in ../shared when present), the
levels sent to the chat, editing with undo and the store, and bad input (no spine, a single image) in the panel."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.levels.chat_link import levels_in_view
from app.state import ViewerState
from core.spine.labelling import DiscLabel, Provenance, SpineLabelling, VertebraLabel
from core.spine.labelmap import LabelMapError, guess_numbering, labelling_from_labelmap
from core.spine.store import LevelStore
from core.studies.volume import Volume
from tests.app_support import wait_until


def _labelling(series_uid: str = "1.2.3") -> SpineLabelling:
    return SpineLabelling(
        vertebrae=[VertebraLabel("L3", (0, 0, 40)), VertebraLabel("L4", (0, 2, 5)), VertebraLabel("L5", (0, 5, -30))],
        discs=[DiscLabel("L3-L4", (0, 1, 22), (0, 0, 1)), DiscLabel("L4-L5", (0, 3, -12), (0, 0, 1))],
        provenance=Provenance("classical-ct", "1"), series_uid=series_uid, confidence=0.9, anchor="L5",
    )


def test_levels_in_view_interleave_discs_in_spine_order():
    assert levels_in_view(_labelling()) == ["L3", "L3-L4", "L4", "L4-L5", "L5"]
    assert levels_in_view(None) == []
    unnamed = SpineLabelling([VertebraLabel(None, (0, 0, 0)), VertebraLabel("T12", (0, 0, 30))])
    assert levels_in_view(unnamed) == ["T12"]


def test_guess_numbering_from_file_names():
    assert guess_numbering("seg_total_v2.nii.gz") == "totalseg"
    assert guess_numbering("sub-ct_seg-vert_label-22_msk.nii.gz") == "verse"
    assert guess_numbering("t2_seg_labeled_sct.nii.gz") == "sct"


@pytest.mark.parametrize(("sample", "numbering", "names", "partial"), [
    ("tptbox_ct_lumbar_crop_L2-L4/sub-ct_seg-vert_label-22_msk.nii.gz", "verse", ["L2", "L3", "L4"],
     [True, False, True]),
    ("sct_cervical_t2_mri_C2-C5/t2_cordseg_labeled_by_level.nii.gz", "sct", ["C2", "C3", "C4", "C5"],
     [False, False, False, False]),
])
def test_label_maps_in_shared_give_named_levels_with_partial_flags_and_discs(samples, sample, numbering, names,
                                                                              partial):
    labelling = labelling_from_labelmap(samples / sample, numbering, series_uid="x")
    assert labelling.names() == names and [v.partial for v in labelling.vertebrae] == partial
    assert [d.name for d in labelling.discs] == [f"{a}-{b}" for a, b in itertools.pairwise(names)]
    assert labelling.provenance.method == "reference" and numbering in labelling.provenance.version
    assert labelling.series_uid == "x" and not labelling.needs_confirmation
    if numbering == "sct":
        assert any("spinal cord" in n for n in labelling.notes)


def test_a_label_map_that_is_not_on_the_image_or_not_a_label_map_is_refused(tmp_path, samples):
    path = samples / "tptbox_ct_lumbar_crop_L2-L4/sub-ct_seg-vert_label-22_msk.nii.gz"
    affine = np.eye(4)
    affine[0, 3] = 5000.0  # 5 m to the patient's left of the label map
    far = Volume(np.zeros((10, 10, 10), np.int16), affine)
    with pytest.raises(LabelMapError, match="does not lie on this image"):
        labelling_from_labelmap(path, "verse", volume=far)
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not a nifti file")
    with pytest.raises(LabelMapError, match="cannot read junk.nii.gz"):
        labelling_from_labelmap(junk, "verse")


def test_controller_edits_are_undoable_and_stored(qapp, tmp_path):
    from app.levels.controller import LevelsController

    state = ViewerState()
    store = LevelStore.open(tmp_path / "library.db")
    store.save(_labelling("1.2.3"))
    controller = LevelsController(state, store, user="dr_test")
    controller.open_series("1.2.3")
    assert state.labelling.names() == ["L3", "L4", "L5"]
    controller.remove_vertebra(1)
    assert store.load("1.2.3").names() == ["L3", "L5"]
    assert store.load("1.2.3").provenance.user == "dr_test"
    index = controller.add_vertebra((0.0, 2.0, 6.0))
    assert index == 1 and state.labelling.vertebrae[1].name is None  # unnamed, in spine order
    controller.rename(1, "l4")  # what the user typed, canonicalised
    assert state.labelling.names() == ["L3", "L4", "L5"] and store.load("1.2.3").names() == ["L3", "L4", "L5"]
    with pytest.raises(ValueError, match="not a level"):
        controller.rename(0, "L9")
    for _ in range(3):
        controller.undo_stack.undo()
    assert store.load("1.2.3").names() == ["L3", "L4", "L5"]
    assert np.allclose(state.labelling.vertebrae[1].centroid, (0, 2, 5))  # the original L4 is back
    controller.clear()
    assert store.load("1.2.3") is None and state.labelling is None
    controller.undo_stack.undo()
    assert store.load("1.2.3").names() == ["L3", "L4", "L5"]
    assert len(store.history("1.2.3")) >= 6  # every version is kept


def _panel(qtbot, volume):
    from app.levels.controller import LevelsController
    from app.levels.panel import LevelsPanel

    state = ViewerState()
    panel = LevelsPanel(LevelsController(state))
    qtbot.addWidget(panel)
    panel.show()
    state.set_volume(volume)
    return state, panel


def test_auto_label_on_a_study_without_a_spine_says_so_and_does_not_crash(qtbot):
    volume = Volume(np.full((64, 64, 40), -1000, np.int16), np.diag([1.0, 1.0, 2.0, 1.0]), modality="CT")
    state, panel = _panel(qtbot, volume)
    worker = panel.auto_label()
    wait_until(lambda: not worker.is_running, 60, "auto-labelling")
    assert worker.state == "failed" and panel.banner_kind == "error" and panel.banner.text()
    assert state.labelling is None and panel.auto_button.isEnabled()


def test_a_single_image_has_no_auto_label(qtbot):
    volume = Volume(np.zeros((64, 64), np.int16), np.eye(4), modality="DX")
    _state, panel = _panel(qtbot, volume)
    assert not panel.auto_button.isEnabled() and not panel.labelmap_button.isEnabled()


def test_the_labeller_chosen_in_the_panel_is_the_one_that_runs(qtbot):
    """The Levels panel lists 'Automatic' and every registered labeller (one that cannot run here greyed, saying why);
    Auto-label runs the one chosen: here the learned labeller (real ONNX weights) on a CT phantom, whose
    labelling records the labeller, not the classical CT method 'Automatic' would pick."""
    from core.spine.autolabel import backends
    from core.synthetic.phantom import spine_phantom

    ph = spine_phantom("L1", "S1", shape=(96, 96, 110), spacing=(2.0, 2.0, 2.0), ribs=False)
    state, panel = _panel(qtbot, ph.volume)
    box = panel.backend_box
    assert box.itemData(0) is None       # 'Automatic' at once; the labellers are listed by a worker
    wait_until(lambda: box.count() == 1 + len(backends()), 60, "the labellers' list")
    names = [box.itemData(i) for i in range(box.count())]
    assert names == [None] + [b.name for b in backends()] and panel.chosen_backend() is None
    for i, backend in enumerate(backends(), start=1):
        ok, why = backend.available()
        assert box.model().item(i).isEnabled() == ok
        assert (f"cannot run here: {why}" in box.itemData(i, Qt.ToolTipRole)) == (not ok)
    box.setCurrentIndex(names.index("learned"))
    assert panel.chosen_backend() == "learned" and "Learned" in box.currentText()
    worker = panel.auto_label()
    wait_until(lambda: not worker.is_running, 120, "the learned labeller")
    assert worker.state == "finished", worker.error
    assert state.labelling is not None and state.labelling.provenance.method == "spinemed-levels-synth"
    assert state.labelling.provenance.weights_sha256
