"""Auto-labelling in a child process (core.spine.autolabel.process): the same answer as in-process on a phantom,
progress relayed, cancel and timeout that leave no process behind, the same readable errors, and clear crashes."""
import os
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from core.spine.autolabel import AutoLabelError, auto_label
from core.spine.autolabel import process as autolabel_process
from core.spine.autolabel.exchange import VOLUME_DATA, read_volume, write_volume
from core.spine.autolabel.process import WorkerCrashed, auto_label_in_subprocess
from core.studies.volume import Volume
from core.synthetic.phantom import spine_phantom
from core.tasks import Cancelled, CancelToken

START = "Starting the labelling process"  # the parent's own first message; the others come from the child


def _alive(pid: int) -> bool:
    try:
        import psutil
    except ImportError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _leftover_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("spinemed-autolabel-*")}


@pytest.fixture
def children(monkeypatch):
    """The Popen of every worker started during the test."""
    started = []
    real_init = autolabel_process._Child.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        started.append(self.proc)

    monkeypatch.setattr(autolabel_process._Child, "__init__", init)
    return started


def _small_phantom():
    return spine_phantom(first="L3", last="S1", shape=(120, 120, 80), spacing=(2.0, 2.0, 2.0), ribs=False)


def _without_time(labelling) -> dict:
    d = labelling.to_dict()
    d["provenance"].pop("created_at")
    return d


def test_volume_exchange_keeps_geometry_and_identity_exact(tmp_path):
    affine = np.array([[0.7031249999999999, 0.01, 0.0, -180.123456789],
                       [-0.0123, 0.6999999, 0.1, 33.3333333333],
                       [0.0, -0.05, 2.5000000001, -1001.1],
                       [0.0, 0.0, 0.0, 1.0]])
    data = np.arange(6 * 5 * 4, dtype=">i2").reshape(6, 5, 4)  # big-endian, as some DICOM decoders leave it
    vol = Volume(data, affine, modality="MR", series_description="T2 sag", series_uid="1.2.3", study_uid="1.2",
                 patient_age="054Y", patient_sex="F", source_paths=[Path("/a/b.dcm")], body_part="LSPINE")
    write_volume(vol, tmp_path)
    back = read_volume(tmp_path)
    assert np.array_equal(back.affine, vol.affine) and back.spacing == vol.spacing
    assert back.data.dtype == data.dtype and np.array_equal(back.data, data)
    for field in ("modality", "series_description", "series_uid", "study_uid", "patient_age", "patient_sex",
                  "source_paths", "body_part"):
        assert getattr(back, field) == getattr(vol, field), field


def test_subprocess_gives_the_in_process_answer_on_a_phantom(children):
    ph = spine_phantom(first="T11", last="S1", shape=(200, 180, 180), spacing=(1.5, 1.5, 2.0), seed=1)
    before = _leftover_folders()
    local = auto_label(ph.volume)
    seen = []
    remote = auto_label_in_subprocess(ph.volume, progress=lambda f, m: seen.append((f, m)))
    assert remote.names() == local.names() == list(ph.centres)
    assert remote.centroids() == local.centroids()
    assert _without_time(remote) == _without_time(local)  # discs, anchor, confidence, message, notes too
    assert remote.provenance.method == "classical-ct" and remote.series_uid == ph.volume.series_uid
    # progress: the parent's start, then the child's own messages, ending at 1.0 with the result message
    assert seen[0] == (0.0, START) and len(seen) > 3 and seen[-1] == (1.0, local.message)
    assert all(0.0 <= f <= 1.0 for f, _ in seen)
    assert len(children) == 1 and children[0].returncode == 0 and not _alive(children[0].pid)
    assert _leftover_folders() <= before


def test_cancel_mid_run_stops_the_child(children):
    ph = spine_phantom(first="T11", last="S1", shape=(200, 180, 180), spacing=(1.5, 1.5, 2.0), seed=1)
    before = _leftover_folders()
    token = CancelToken()
    seen = []

    def progress(fraction, message):
        seen.append(message)
        if message != START:  # the child is running the labeller: cancel now
            token.cancel()

    with pytest.raises(Cancelled):
        auto_label_in_subprocess(ph.volume, progress=progress, cancel=token)
    assert len(seen) >= 2 and not any(m.startswith("Found") for m in seen)  # stopped before the end
    assert len(children) == 1 and children[0].returncode is not None and not _alive(children[0].pid)
    assert _leftover_folders() <= before


def test_cancel_before_start_starts_nothing(children):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        auto_label_in_subprocess(_small_phantom().volume, cancel=token)
    assert children == []


@pytest.mark.parametrize("case", ["soft_tissue", "no_bone"])
def test_no_spine_gives_the_in_process_message(case):
    if case == "soft_tissue":
        data = np.full((80, 80, 40), -1000, np.int16)
        data[10:70, 10:70, :] = 40
        data[30:40, 30:40, :] = 400  # a bone rod with no canal: not a spine
    else:
        data = np.full((64, 64, 40), 40, np.int16)
    vol = Volume(data, np.diag([2, 2, 2, 1.0]), modality="CT")
    with pytest.raises(AutoLabelError) as local:
        auto_label(vol, backend="classical-ct")
    with pytest.raises(AutoLabelError) as remote:
        auto_label_in_subprocess(vol, backend="classical-ct")
    assert type(remote.value) is AutoLabelError and str(remote.value) == str(local.value)
    assert ("no spinal column" if case == "soft_tissue" else "no bone density") in str(remote.value)


def test_unknown_or_unavailable_backend_fails_as_in_process_without_a_child(children, monkeypatch, tmp_path):
    vol = _small_phantom().volume
    with pytest.raises(KeyError, match="unknown labelling backend"):
        auto_label_in_subprocess(vol, backend="no-such-backend")
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "no-weights"))
    with pytest.raises(AutoLabelError) as local:
        auto_label(vol, backend="totalsegmentator")
    with pytest.raises(AutoLabelError) as remote:
        auto_label_in_subprocess(vol, backend="totalsegmentator")
    assert str(remote.value) == str(local.value)
    assert children == []


def test_a_corrupt_exchange_file_is_a_clear_crash(children, monkeypatch):
    def write_then_truncate(volume, folder):
        write_volume(volume, folder)
        path = folder / VOLUME_DATA
        path.write_bytes(path.read_bytes()[:1000])

    monkeypatch.setattr(autolabel_process, "write_volume", write_then_truncate)
    before = _leftover_folders()
    with pytest.raises(WorkerCrashed) as err:
        auto_label_in_subprocess(_small_phantom().volume)
    message = str(err.value)
    assert isinstance(err.value, AutoLabelError) and err.value.returncode == 1
    assert message.startswith("the labelling process failed (exit code 1): ValueError: ")
    assert "np.load" in err.value.stderr_tail and "last lines of its error output" in message
    assert not _alive(children[0].pid) and _leftover_folders() <= before


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_child_killed_from_outside_is_a_clear_crash(children):
    def progress(fraction, message):
        if message != START and children[0].poll() is None:
            os.kill(children[0].pid, signal.SIGKILL)  # as the out-of-memory killer would

    with pytest.raises(WorkerCrashed, match=r"killed by signal 9"):
        auto_label_in_subprocess(_small_phantom().volume, progress=progress)
    assert not _alive(children[0].pid)


def test_timeout_stops_the_child(children):
    with pytest.raises(AutoLabelError, match="did not finish within 0.2 s"):
        auto_label_in_subprocess(_small_phantom().volume, timeout=0.2)
    assert len(children) == 1 and not _alive(children[0].pid)
