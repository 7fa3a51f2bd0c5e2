"""The built-in MR labeller: classical image analysis for sagittal (or 3D) spine MR, no model weights.

Pipeline: isotropic working grid -> canal and body/disc column (:mod:`mr_column`) -> anchors (:mod:`mr_anchors`:
C2, the tall top vertebra with its dens; the sacrum) -> names (:mod:`naming`). Without an anchor the vertebrae are returned unnamed,
with a message asking the user to name one of them. Works on T2 (bright canal) and, less tested, T1 (dark canal).
"""
from __future__ import annotations

from core.spine.autolabel import mr_anchors
from core.spine.autolabel.assemble import build_labelling
from core.spine.autolabel.base import AutoLabelError
from core.spine.autolabel.classical_ct import check_volume
from core.spine.autolabel.grid import iso_grid, working_step
from core.spine.autolabel.mr_column import detect
from core.spine.labelling import SpineLabelling
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn, check, report, sub_progress

VERSION = "0.1"


class ClassicalMR:
    name = "classical-mr"
    version = VERSION
    description = ("Built-in MR method: spinal canal and the alternation of bodies and discs along it, C2 / sacrum "
                   "anchors")

    def available(self) -> tuple[bool, str]:
        return True, ""

    def supports(self, volume: Volume) -> bool:
        return (volume.modality or "").upper() == "MR" and not volume.is_2d

    def run(self, volume: Volume, progress: ProgressFn | None = None,
            cancel: CancelToken | None = None) -> SpineLabelling:
        check_volume(volume, "MR")
        report(progress, 0.0, "Preparing the image")
        step = working_step(volume, target_voxels=3e6, lo=1.0, hi=2.0)
        grid = iso_grid(volume, step, cancel)
        if min(grid.data.shape) < 8:
            raise AutoLabelError(f"the image is too thin for labelling ({grid.data.shape} voxels of {step:.1f} mm)")
        check(cancel)
        det, facts = detect(grid.data, step, sub_progress(progress, 0.1, 0.9), cancel)
        if det is None or not det.segments:
            raise AutoLabelError("no spinal column found in this MR (no spinal canal with alternating vertebral "
                                 "bodies and discs in front of it)")
        report(progress, 0.9, "Looking for anatomical anchors (C2 with its dens, sacrum)")
        anchors = [a for a in (mr_anchors.sacrum(det, facts), mr_anchors.c2(det, facts)) if a is not None]
        labelling = build_labelling(det, grid, anchors, self.name, self.version,
                                    "C2 with its dens, or the sacrum", refine="mr")
        labelling.series_uid = volume.series_uid
        report(progress, 1.0, labelling.message)
        return labelling



