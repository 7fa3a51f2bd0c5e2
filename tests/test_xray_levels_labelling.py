"""The radiograph's levels as a labelling: T1-L5 at the vertebra centres with discs between them, provenance from
the landmarks; in the workstation (real MainWindow under Xvfb) they reach the consultation's levels and the library,
follow a corner drag, go back with undo, and come back when the series is reopened."""
from __future__ import annotations

import numpy as np
import pytest

from core.studies.volume import Volume
from core.xray.labelling import NAMING_CONFIDENCE, from_radiograph, labelling_from_landmarks
from core.xray.levels import LEVELS
from tests.xray_support import column


def _landmarks():
    return column(np.repeat(np.linspace(14, -12, 17), 2), pitch=55, half_width=30, height=38, top=(300, 60))


def test_levels_from_landmarks():
    lm = _landmarks()
    vol = Volume(np.zeros((600, 1100, 1), np.int16), np.diag([0.2, 0.2, 1.0, 1.0]), modality="DX", series_uid="s1")
    lab = labelling_from_landmarks(lm, vol, "auto:spinemed-xray-landmarks@1.1")
    assert lab.names() == list(LEVELS) and lab.series_uid == "s1"
    centre_px = lm.reshape(17, 4, 2).mean(axis=1)
    assert lab.vertebra("T7").centroid == pytest.approx(((centre_px[6, 0] - 0.5) * 0.2, (centre_px[6, 1] - 0.5) * 0.2,
                                                          0.0))
    assert [d.name for d in lab.discs][:2] == ["T1-T2", "T2-T3"] and len(lab.discs) == 16
    d = lab.disc("L4-L5")
    assert lab.vertebra("L4").centroid[1] < d.centre[1] < lab.vertebra("L5").centroid[1]
    assert d.normal[1] < 0                                   # towards the upper vertebra (up the image)
    assert (lab.provenance.method, lab.provenance.version) == ("spinemed-xray-landmarks", "1.1")
    assert lab.confidence == NAMING_CONFIDENCE and not lab.needs_confirmation and "count" in lab.message
    user = labelling_from_landmarks(lm, vol, "user:dr_a")
    assert (user.provenance.user, user.provenance.based_on) == ("dr_a", "spinemed-xray-landmarks")
    assert from_radiograph(user) and not from_radiograph(None)


def test_main_window_levels_reach_the_consultation_and_follow_edits(qapp, tmp_path):
    from PIL import Image

    from tests.app_support import opened_window, settle, wait_until

    path = tmp_path / "spine_ap.png"
    Image.fromarray(np.random.default_rng(3).integers(60, 200, (1100, 600), dtype=np.uint8)).save(path)
    with opened_window(tmp_path, path, wait_3d=False, size=(1400, 900)) as window:
        assert window.state.labelling is None
        lm = _landmarks()
        window.xray.model.set_landmarks(lm, "auto:spinemed-xray-landmarks@1.0")
        lab = window.state.labelling
        assert lab is not None and lab.names() == list(LEVELS)
        levels = window.chat.context.levels_in_view
        assert levels[:3] == ["T1", "T1-T2", "T2"] and levels[-1] == "L5", levels
        before = lab.vertebra("T1").centroid
        window.xray.model.move_corner(0, lm[0] + [0, 20])      # T1's upper-left corner 20 px down
        moved = window.state.labelling
        assert moved.vertebra("T1").centroid[1] > before[1] and moved.provenance.user
        window.spine.undo_stack.undo()
        assert window.state.labelling.vertebra("T1").centroid == pytest.approx(before)
        series = window.current_series
        opened = []
        window.volume_opened.connect(opened.append)
        window.open_series(series)
        wait_until(lambda: opened, what="the radiograph to reopen")
        settle(0.2)
        again = window.state.labelling
        assert again is not None and again.names() == list(LEVELS)
        assert again.vertebra("T1").centroid == pytest.approx(before, abs=1e-3)
        window.spine.undo_stack.clear()
