"""TotalSegmentator outputs: a multi-label NIfTI (``--ml``) or a folder of one binary NIfTI per structure.

- Multi-label: the values follow one of TotalSegmentator's class maps; ``numbering`` picks it (``totalseg`` = the
  "total" task of v2: 26 S1, 27 L5 .. 31 L1, 32 T12 .. 43 T1, 44 C7 .. 50 C1, 79 spinal cord; ``totalseg_v1``;
  ``totalseg_vertebrae_mr``; see core.spine.numbering).
- Folder: ``vertebrae_L1.nii.gz``, ``vertebrae_S1.nii.gz``, ``sacrum.nii.gz``, ``spinal_cord.nii.gz`` ... (the file
  name is the class name). The vertebra masks are combined into one label map in the ``totalseg`` numbering.

Positions are vertebral-body centres computed from the masks (core.spine.reference). TotalSegmentator labels are
model output: the case notes say so, and items built on them carry that note in their provenance.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from core.spine.labelmap import partial_vertebrae
from core.spine.numbering import get_numbering
from core.studies.volume import Volume
from curation.sources.cases import LabelledCase, levels_from_labelmap, read_image

LICENCE = "TotalSegmentator outputs (model Apache-2.0); image licence as stated by the image's source"
_VERTEBRA_FILE = re.compile(r"^vertebrae_([CTLS]\d{1,2})\.nii(\.gz)?$")


def combine_folder(folder: Path) -> Volume:
    """Binary ``vertebrae_XX.nii.gz`` masks -> one label map in the 'totalseg' (v2 total) numbering."""
    numbering = get_numbering("totalseg")
    files = sorted(p for p in Path(folder).iterdir() if _VERTEBRA_FILE.match(p.name))
    if not files:
        raise ValueError(f"{folder}: no vertebrae_<level>.nii.gz files (TotalSegmentator output folder expected)")
    base = None
    for f in files:
        name = _VERTEBRA_FILE.match(f.name).group(1)
        vol = read_image(f)
        if base is None:
            base = Volume(np.zeros(vol.shape, dtype=np.int16), vol.affine, modality="SEG", source_paths=[folder])
        elif vol.shape != base.shape or not np.allclose(vol.affine, base.affine, atol=1e-3):
            raise ValueError(f"{f.name}: not on the same grid as {files[0].name}")
        base.data[np.asarray(vol.data) > 0] = numbering.encode(name)
    return base


def import_totalseg(path: Path | str, *, image: Path | str | None = None, numbering: str = "totalseg",
                    case_id: str | None = None, modality: str = "CT") -> LabelledCase:
    """A case from a TotalSegmentator output (multi-label file or folder) and optionally the segmented image."""
    path = Path(path)
    num = get_numbering(numbering if path.is_file() else "totalseg")
    labelmap = read_image(path) if path.is_file() else combine_folder(path)
    vertebrae, discs, values, notes = levels_from_labelmap(labelmap, num)
    subject = case_id or path.name.replace(".nii.gz", "").replace(".nii", "")
    case = LabelledCase(
        case_id=f"totalseg:{subject}", dataset="totalseg", subject=subject, modality=modality if image else "",
        image_path=Path(image) if image else None, label_path=path, numbering=num.key, vertebrae=vertebrae,
        discs=discs, label_values=values, licence=LICENCE, origin="TotalSegmentator output",
        notes=notes + ["labels are TotalSegmentator model output, not manual ground truth"],
    )
    case.partial = partial_vertebrae(labelmap, values)
    return case
