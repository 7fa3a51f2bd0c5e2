"""TotalSegmentator backend: used only when the package is importable AND its weights are already on this machine.

We never download anything: availability requires the weight folders to exist (``TOTALSEG_WEIGHTS_PATH``, else
``$TOTALSEG_HOME_DIR/nnunet/results``, else ``~/.totalsegmentator/nnunet/results``), and the subprocess runs with
its HTTP(S) proxy pointed at a closed local port so that TotalSegmentator's usage statistics cannot leave the machine
either. It runs out of process (``python -m totalsegmentator.bin.TotalSegmentator``) with progress parsed from its
output and cancel by terminating it; its "total" label map is converted with :mod:`core.spine.numbering`.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from core.spine.autolabel.base import AutoLabelError
from core.spine.labelling import Provenance, SpineLabelling
from core.spine.labelmap import LabelMapError, labelling_from_volume
from core.studies.volume import Volume
from core.tasks import Cancelled, CancelToken, ProgressFn, report

FULL = "Dataset292_TotalSegmentator_part2_vertebrae"  # vertebrae part of the 1.5 mm "total" model
FAST = "Dataset297_TotalSegmentator_total_3mm"  # the 3 mm "--fast" model
ROI = ["sacrum"] + [f"vertebrae_{n}" for n in
                    ["S1"] + [f"L{i}" for i in range(1, 6)] + [f"T{i}" for i in range(1, 13)] + [f"C{i}" for i in range(1, 8)]]
_DEAD_PROXY = "http://127.0.0.1:9"
_STAGES = (("Resampling", 0.15, "Resampling"), ("Predicting", 0.3, "Segmenting (TotalSegmentator)"),
           ("Saving", 0.85, "Saving the label map"))


def weights_dir() -> Path:
    if os.environ.get("TOTALSEG_WEIGHTS_PATH"):
        return Path(os.environ["TOTALSEG_WEIGHTS_PATH"])
    home = Path(os.environ["TOTALSEG_HOME_DIR"]) if os.environ.get("TOTALSEG_HOME_DIR") else \
        Path.home() / ".totalsegmentator"
    return home / "nnunet" / "results"


def _has(prefix: str) -> bool:
    folder = weights_dir()
    return folder.is_dir() and any(p.name.startswith(prefix) for p in folder.iterdir())


class TotalSegmentatorBackend:
    name = "totalsegmentator"
    description = "TotalSegmentator (if installed with local weights): deep-learning segmentation of each vertebra"

    @property
    def version(self) -> str:
        try:
            return importlib.metadata.version("totalsegmentator")
        except importlib.metadata.PackageNotFoundError:
            return ""

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("totalsegmentator") is None:
            return False, "the totalsegmentator package is not installed"
        if not (_has(FULL) or _has(FAST)):
            return False, (f"no TotalSegmentator weights in {weights_dir()} (they are never downloaded by SpineMed; "
                           "install them with TotalSegmentator's own tools)")
        return True, ""

    def supports(self, volume: Volume) -> bool:
        return (volume.modality or "").upper() == "CT" and not volume.is_2d

    def command(self, image: Path, out: Path) -> list[str]:
        cmd = [sys.executable, "-m", "totalsegmentator.bin.TotalSegmentator", "-i", str(image), "-o", str(out),
               "--ml", "-ta", "total", "-d", "cpu", "--roi_subset", *ROI]
        if not _has(FULL):
            cmd.append("--fast")
        return cmd

    def run(self, volume: Volume, progress: ProgressFn | None = None,
            cancel: CancelToken | None = None) -> SpineLabelling:
        ok, why = self.available()
        if not ok:
            raise AutoLabelError(why)
        with tempfile.TemporaryDirectory(prefix="spinemed-ts-") as tmp:
            image, out = Path(tmp) / "image.nii.gz", Path(tmp) / "seg.nii.gz"
            report(progress, 0.02, "Writing the image for TotalSegmentator")
            ras = np.array(volume.affine, dtype=float)
            ras[:2, :] *= -1  # Volume is LPS, NIfTI is RAS
            nib.save(nib.Nifti1Image(np.asarray(volume.data), ras), str(image))
            run_subprocess(self.command(image, out), progress, cancel)
            if not out.exists():
                raise AutoLabelError("TotalSegmentator finished without writing a label map")
            seg = nib.load(str(out))
            lps = np.array(seg.affine, dtype=float)
            lps[:2, :] *= -1
            labelmap = Volume(np.asarray(seg.dataobj), lps, modality="SEG")
            return self.labelling(labelmap, volume.series_uid)

    def labelling(self, labelmap: Volume, series_uid: str = "") -> SpineLabelling:
        """TotalSegmentator's "total" label map as a labelling (the one conversion of core.spine.labelmap)."""
        try:
            return labelling_from_volume(labelmap, "totalseg", series_uid, source="totalseg",
                                         provenance=Provenance(self.name, self.version), confidence=0.9)
        except LabelMapError as exc:
            raise AutoLabelError(f"TotalSegmentator: {exc}") from exc


def run_subprocess(cmd: list[str], progress: ProgressFn | None, cancel: CancelToken | None,
                   poll_s: float = 0.2) -> None:
    """Run ``cmd`` offline, mapping known output lines to progress; terminate it when cancelled."""
    env = dict(os.environ, HTTP_PROXY=_DEAD_PROXY, HTTPS_PROXY=_DEAD_PROXY, http_proxy=_DEAD_PROXY,
               https_proxy=_DEAD_PROXY, NO_PROXY="", no_proxy="")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines: list[str] = []

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            for key, fraction, message in _STAGES:
                if line.strip().startswith(key):
                    report(progress, fraction, message)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        while proc.poll() is None:
            if cancel is not None and cancel.cancelled:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                raise Cancelled()
            time.sleep(poll_s)
    finally:
        thread.join(timeout=2)
    if proc.returncode != 0:
        tail = "\n".join(lines[-8:])
        raise AutoLabelError(f"TotalSegmentator failed (exit code {proc.returncode}):\n{tail}")
    report(progress, 0.95, "Reading TotalSegmentator's label map")
