"""Shared fixtures of the report tests (tests/test_report*.py)."""
from __future__ import annotations

import contextlib
import os
import subprocess

import pytest

from core.report.study import ReportStudy
from core.spine.labelmap import labelling_from_labelmap
from tests.conftest import BUNDLED_CT, SAMPLES

LABELMAP = SAMPLES / "ts_ct_dicom_T11-T12" / "seg_total_v2.nii.gz"


@contextlib.contextmanager
def labelled_bundled_ct(home, measurements=()):
    """The bundled CT opened in a library under ``home``, labelled from its TotalSegmentator label map."""
    if not LABELMAP.is_file():
        pytest.skip(f"label map of the sample not found at {LABELMAP}")
    mp = pytest.MonkeyPatch()
    mp.setenv("SPINEMED_HOME", str(home))
    try:
        st = ReportStudy.open(BUNDLED_CT)
        st.labelling = labelling_from_labelmap(LABELMAP, "totalseg", st.series_uid)
        st.context.measurements = list(measurements)
        yield st
    finally:
        mp.undo()


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder that cannot be written: permission bits for a normal user, a read-only tmpfs for root."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
