"""The built-in CT labeller: classical image analysis, no model weights, a few seconds on a CPU.

Pipeline: isotropic working grid (~2 mm for a large CT) -> spinal column, bodies and discs (:mod:`ct_column`) ->
anchors (:mod:`ct_anchors`: sacrum, skull base, last rib, first rib) -> names (:mod:`naming`). Without an anchor the
vertebrae are returned unnamed, with a message asking the user to name one of them.
"""
from __future__ import annotations

import numpy as np

from core.spine.autolabel import ct_anchors
from core.spine.autolabel.assemble import build_labelling
from core.spine.autolabel.base import AutoLabelError
from core.spine.autolabel.ct_column import Detection, detect
from core.spine.autolabel.grid import IsoGrid, iso_grid, working_step
from core.spine.labelling import SpineLabelling
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn, check, report, sub_progress

VERSION = "0.1"


def check_volume(volume: Volume, modality: str) -> None:
    """Refuse images no labeller can use, with a reason a user understands."""
    if volume.is_2d or min(volume.shape) < 3:
        raise AutoLabelError(f"a single slice or a projection image ({volume.shape}): automatic labelling needs a "
                             "3D series (CT or MR volume)")
    spacing = np.asarray(volume.spacing, dtype=float)
    extent = spacing * np.asarray(volume.shape)
    if spacing.max() / spacing.min() > 8.0 and spacing.max() > 6.0:
        raise AutoLabelError(f"voxels of {spacing.round(2).tolist()} mm are too anisotropic for labelling "
                             "(slices too far apart): use a thinner reconstruction")
    if sorted(extent)[1] < 20.0:
        raise AutoLabelError(f"the field of view ({extent.round(0).tolist()} mm) is too small to contain a vertebra"
                             " (a localiser or a thin slab?)")
    if modality == "CT":
        data = np.asarray(volume.data[::4, ::4, ::2])
        if data.max() < 300.0:
            raise AutoLabelError("no bone density in this CT (nothing above 300 HU): is the spine in view?")


class ClassicalCT:
    name = "classical-ct"
    version = VERSION
    description = "Built-in CT method: column tracing, disc dips along the column, sacrum / skull / last- and first-rib anchors"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def supports(self, volume: Volume) -> bool:
        if (volume.modality or "").upper() == "CT":
            return True
        if (volume.modality or "").upper() in ("MR", "PT", "NM", "US", "SEG"):
            return False
        sample = np.asarray(volume.data[::8, ::8, ::4])
        return sample.size > 0 and float(sample.min()) < -500.0  # air in Hounsfield units

    def run(self, volume: Volume, progress: ProgressFn | None = None,
            cancel: CancelToken | None = None) -> SpineLabelling:
        check_volume(volume, "CT")
        report(progress, 0.0, "Preparing the image")
        step = working_step(volume)
        grid = iso_grid(volume, step, cancel)
        check(cancel)
        report(progress, 0.2, "Looking for the spinal column")
        det, solid = detect(grid.data, grid.peak, step, sub_progress(progress, 0.2, 0.85), cancel)
        if det is None or not det.segments:
            raise AutoLabelError("no spinal column found in this CT (no chain of vertebral bodies with a spinal "
                                 "canal behind them)")
        report(progress, 0.85, "Looking for anatomical anchors (sacrum, skull base, ribs)")
        labelling = self._label(det, grid, solid)
        labelling.series_uid = volume.series_uid
        report(progress, 1.0, labelling.message)
        return labelling

    def _label(self, det: Detection, grid: IsoGrid, solid: np.ndarray) -> SpineLabelling:
        step = grid.step
        bearing = ct_anchors.rib_bearing(det, grid.peak > 200.0, step)
        anchors = [a for a in (ct_anchors.sacrum(det, solid, step), ct_anchors.skull(det, solid, step),
                               ct_anchors.last_rib(det, bearing), ct_anchors.first_rib(det, bearing))
                   if a is not None]
        return build_labelling(det, grid, anchors, self.name, self.version,
                               "sacrum, skull base with C2, the last rib or the first rib", refine="ct")
