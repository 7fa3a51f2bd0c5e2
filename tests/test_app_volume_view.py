"""The 3D view on its own: CPU ray-cast fallback and the MR preset render something on real NIfTI samples."""
from __future__ import annotations

import numpy as np
import pytest

from tests.app_support import artifacts_dir, fraction_not_background, wait_until

BACKGROUND = tuple(round(c * 255) for c in (0.08, 0.09, 0.11))


def _load(path):
    from core.studies.loaders import load_series, scan

    result = scan(path)
    assert result.series, result.problems
    return load_series(result.series[0])


@pytest.fixture
def volume_view(qtbot):
    from app.state import ViewerState
    from app.views.volume_view import VolumeView

    state = ViewerState()
    view = VolumeView(state)
    view.resize(500, 450)
    view.show()
    qtbot.waitExposed(view)
    yield state, view
    view.shutdown()


@pytest.mark.parametrize(
    ("sample", "cpu", "preset"),
    [
        ("tptbox_ct_lumbar_crop_L2-L4/sub-ct_label-22_ct.nii.gz", True, "ct_bone"),
        ("sct_cervical_t2_mri_C2-C5/t2.nii.gz", False, "mr_spine"),
    ],
)
def test_volume_rendering_is_not_blank(volume_view, samples, monkeypatch, sample, cpu, preset):
    if cpu:
        monkeypatch.setenv("SPINEMED_VTK_CPU", "1")
    state, view = volume_view
    state.set_volume(_load(samples / sample))
    wait_until(lambda: view.prepared is not None, what="the 3D view")
    assert view.mapper_kind == ("cpu" if cpu else "gpu")
    assert view.combo.currentData() == preset
    pixels = view.capture_array()
    assert fraction_not_background(pixels, BACKGROUND) > 0.05
    view.capture_png(artifacts_dir() / f"3d_{preset}_{view.mapper_kind}.png")
    # The cursor cross moves with the shared state (it is drawn in LPS millimetres).
    state.set_cursor((0, 0, 0))
    assert np.allclose(view.cursor_source.GetFocalPoint(), state.cursor_patient_mm())
