"""Display geometry of the 2D views (no Qt): orientation conventions, pixel <-> voxel mapping, windowing."""
import numpy as np
import pytest

from app import imaging
from app.imaging import AXIAL, CORONAL, SAGITTAL
from core.studies.volume import Volume


def _marker_volume():
    """LPS-canonical 10x12x14 volume, 0 everywhere except one bright voxel near the Left, Anterior, Superior corner."""
    data = np.zeros((10, 12, 14), np.int16)
    data[8, 1, 12] = 1000  # i=8 -> towards Left, j=1 -> Anterior, k=12 -> Superior
    return data


def test_axial_shows_patient_left_on_screen_right_and_anterior_at_top():
    img = imaging.extract_slice(_marker_volume(), AXIAL, 12)
    rows, cols = np.argwhere(img == 1000)[0]
    assert img.shape == (12, 10)
    assert cols > img.shape[1] / 2  # Left -> right half
    assert rows < img.shape[0] / 2  # Anterior -> top half


def test_coronal_shows_left_on_right_and_superior_at_top():
    img = imaging.extract_slice(_marker_volume(), CORONAL, 1)
    rows, cols = np.argwhere(img == 1000)[0]
    assert img.shape == (14, 10)
    assert cols > img.shape[1] / 2 and rows < img.shape[0] / 2


def test_sagittal_shows_anterior_on_left_and_superior_at_top():
    img = imaging.extract_slice(_marker_volume(), SAGITTAL, 8)
    rows, cols = np.argwhere(img == 1000)[0]
    assert img.shape == (14, 12)
    assert cols < img.shape[1] / 2 and rows < img.shape[0] / 2


@pytest.mark.parametrize("orientation", imaging.ORIENTATIONS)
def test_display_and_voxel_mapping_round_trip(orientation):
    shape = (10, 12, 14)
    data = np.arange(np.prod(shape)).reshape(shape)
    ijk = (3, 7, 9)
    index = ijk[imaging.NORMAL_AXIS[orientation]]
    col, row = imaging.voxel_to_display(shape, orientation, ijk)
    assert imaging.display_to_voxel(shape, orientation, index, col, row) == ijk
    img = imaging.extract_slice(data, orientation, index)
    assert img[int(row), int(col)] == data[ijk]
    assert img.shape == imaging.display_shape(shape, orientation)


def test_display_to_voxel_clamps_outside_points():
    assert imaging.display_to_voxel((10, 12, 14), AXIAL, 5, -3.0, 400.0) == (0, 11, 5)


def test_canonical_volume_from_las_nifti_like_affine_orients_views():
    # A LAS array (as TotalSegmentator writes): i -> Left, j -> Anterior, k -> Superior.
    data = np.zeros((6, 8, 4), np.int16)
    data[5, 7, 3] = 1  # Left, Anterior, Superior corner
    affine_lps = np.diag([1.0, -1.0, 2.0, 1.0])
    vol = Volume(data, affine_lps).as_closest_lps()
    img = imaging.extract_slice(vol.data, AXIAL, 3)
    rows, cols = np.argwhere(img == 1)[0]
    assert cols == img.shape[1] - 1 and rows == 0  # Left on screen right, Anterior at the top


def test_pixel_spacing_and_fit_keep_physical_aspect():
    tf = imaging.fit_transform((400, 400), (20, 100), (1.0, 4.0))  # 100 mm wide, 80 mm tall
    assert tf.scale_y / tf.scale_x == pytest.approx(4.0)
    x0, y0 = tf.to_widget(0, 0)
    x1, y1 = tf.to_widget(100, 20)
    assert (x1 - x0) == pytest.approx(400) and (y1 - y0) == pytest.approx(320)
    assert tf.to_image(*tf.to_widget(12.5, 3.25)) == pytest.approx((12.5, 3.25))
    assert imaging.pixel_spacing((0.5, 0.6, 3.0), SAGITTAL) == (0.6, 3.0)


def test_apply_window_maps_level_to_mid_grey():
    img = np.array([[-500, 500, 1500, 3000]], np.int16)
    out = imaging.apply_window(img, 2000, 500)
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 127, 255, 255]]


def test_percentile_window_ignores_outliers():
    rng = np.random.default_rng(0)
    data = rng.normal(100, 10, 100_000)
    data[:10] = 1e6
    window, level = imaging.percentile_window(data, 1, 99)
    assert 30 < window < 60 and 95 < level < 105


def test_downsample_caps_each_axis_and_scales_spacing():
    data = np.zeros((512, 512, 20), np.int16)
    sub, spacing = imaging.downsample(data, (0.98, 0.98, 2.0), max_dim=256)
    assert sub.shape == (256, 256, 20)
    assert spacing == pytest.approx((1.96, 1.96, 2.0))


def test_spine_cursor_guess_finds_the_posterior_midline_bone_and_ignores_the_table():
    data = np.full((100, 100, 10), -1000, np.int16)
    data[20:80, 10:70, :] = 40  # body
    data[45:55, 50:60, :] = 700  # vertebra, posterior midline
    data[10:90, 90:95, :] = 600  # table below the patient
    assert imaging.spine_cursor_guess(data, "CT")[:2] == (49, 54)
    assert imaging.spine_cursor_guess(data, "MR") == (50, 50, 5)
