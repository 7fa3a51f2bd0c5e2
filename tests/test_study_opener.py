"""One opener for a STUDY argument (core.library.opener), and one label-map conversion (core.spine.labelmap), used by
every command: the same argument gives the same series, and the same label map the same levels, everywhere."""
from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import numpy as np
import pytest

from app.chat.terminal import resolve_study
from app.report.cli import _labelling
from core.library import Library
from core.library.opener import load_volume, open_path, open_study
from core.report.study import ReportStudy
from core.spine.labelmap import labelling_from_labelmap
from core.studies import StudyLoadError
from tests.test_studies_dicom import write_stack


@pytest.fixture
def two_series(tmp_path) -> Path:
    """One study, two series: 3 slices (scanned first: its files sort first) and 5 slices."""
    folder = tmp_path / "study"
    write_stack(folder / "a_small", [0, 2, 4], series_uid="1.2.3.4.1")
    write_stack(folder / "b_large", [0, 2, 4, 6, 8], series_uid="1.2.3.4.2")
    return folder


def test_the_series_with_most_images_is_used_and_the_other_named(two_series):
    opened = open_path(two_series)
    assert opened.series_uid == "1.2.3.4.2"
    assert [s.series_uid for s in opened.sources] == ["1.2.3.4.2", "1.2.3.4.1"]
    assert any("2 series found" in w and "5 images" in w for w in opened.warnings)
    volume, _ = load_volume(two_series)
    assert volume.shape[2] == 5 or 5 in volume.shape


def test_ask_and_report_read_the_same_series(two_series, spinemed_home):
    # spinemed ask imported the folder and used its first series; spinemed report used the largest
    ctx, study_key, series_uid, source = resolve_study(str(two_series))
    report = ReportStudy.open(two_series)
    assert series_uid == report.series_uid == source.series_uid == "1.2.3.4.2"
    assert study_key == report.study_key
    assert len(ctx.series) == 2 and "(5 images)" in ctx.series[0]
    # by study id of the library (ask imported it): the same series again
    lib = Library()
    try:
        study_id = lib.studies()[0]["id"]
    finally:
        lib.close()
    assert open_study(str(study_id)).series_uid == "1.2.3.4.2"
    assert open_study("1.2.3.4.1").series_uid == "1.2.3.4.1"  # a series uid names its own series


def test_a_zip_study_opens_in_every_command(two_series, tmp_path, spinemed_home):
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(two_series.rglob("*.dcm")):
            zf.write(f, f.relative_to(two_series).as_posix())
    opened = open_path(archive)  # scan() without an extract folder used to raise ValueError here
    assert opened.series_uid == "1.2.3.4.2"
    volume = opened.load()
    assert 5 in volume.shape
    assert ReportStudy.open(archive).series_uid == "1.2.3.4.2"
    extracted = Path(opened._extracted.name)
    assert extracted.exists()
    del opened
    assert not extracted.exists()  # the temporary extraction goes with the opened study


def test_what_cannot_be_opened_is_named(tmp_path, spinemed_home):
    from core import paths

    with pytest.raises(StudyLoadError, match="no-such-uid.*no library yet"):
        open_study("no-such-uid")
    assert not paths.library_db_path().exists()  # a mistyped path does not create a library
    Library().close()
    with pytest.raises(StudyLoadError, match="no-such-uid.*neither an existing path, a series uid nor a study id"):
        open_study("no-such-uid")
    junk = tmp_path / "notes.dcm"
    junk.write_bytes(b"not a dicom file")
    with pytest.raises(StudyLoadError) as err:
        open_path(junk)
    assert "notes.dcm" in str(err.value)


def test_report_and_levels_panel_give_the_same_levels_from_one_label_map(samples, tmp_path):
    """spinemed report --labelmap used to give every disc the same normal and mark nothing partial."""
    folder = samples / "tptbox_ct_lumbar_crop_L2-L4"
    image = next(folder.glob("*_ct.nii.gz"))
    labelmap = next(folder.glob("*vert*msk.nii.gz"))
    study = ReportStudy.open(image)
    args = argparse.Namespace(levels=None, labelmap=labelmap, numbering="verse")
    _labelling(args, study)
    panel = labelling_from_labelmap(labelmap, "verse", study.series_uid, study.volume)
    def levels(lab):
        return ([(v.name, tuple(v.centroid), v.partial) for v in lab.vertebrae],
                [(d.name, tuple(d.centre), tuple(d.normal)) for d in lab.discs])

    assert levels(study.labelling) == levels(panel)
    assert any(v.partial for v in study.labelling.vertebrae)  # the crop cuts the end vertebrae
    points = {v.name: np.asarray(v.centroid, float) for v in study.labelling.vertebrae}
    assert len(study.labelling.discs) >= 2
    for disc in study.labelling.discs:  # each normal points from the vertebra below to the one above
        upper, lower = disc.name.split("-")
        axis = points[upper] - points[lower]
        assert np.dot(disc.normal, axis) / np.linalg.norm(axis) > 0.99
