"""VerSe importer: vertebra masks (NIfTI) + centroid JSON in the subject-based layout of VerSe'19/'20.

Files per subject (``rawdata`` and ``derivatives`` folders or all in one folder)::

    sub-verse004_ct.nii.gz                 CT (optional: the shared sample has no image)
    sub-verse004_seg-vert_msk.nii.gz       vertebra mask, VerSe ids: 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 26 S1, 28 T13
    sub-verse004_seg-subreg_ctd.json       [{"direction": ["P","I","R"]}, {"label": 16, "X": .., "Y": .., "Z": ..}, ...]

The centroid file gives vertebral-body centres in voxel indices of the mask's own axis order (the "direction"
entry names the axes); they are converted to LPS mm with the mask's affine. They are the manual reference
positions; when a centroid file is missing, body centres are computed from the mask (core.spine.reference).
Licence of the VerSe data: CC BY-SA 4.0 (cite Sekuboyina et al. 2021, Löffler et al. 2020).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from core.spine.labelmap import partial_vertebrae
from core.spine.numbering import configuration_from_values, get_numbering
from core.spine.reference import verse_centroid_json
from curation.sources.cases import LabelledCase, levels_from_labelmap, read_image

LICENCE = "CC BY-SA 4.0 (VerSe; cite Sekuboyina et al., Med Image Anal 2021; Loeffler et al., Radiol AI 2020)"
_SUBJECT = re.compile(r"^(sub-[A-Za-z0-9]+)")


def find_subjects(root: Path) -> dict[str, dict[str, Path]]:
    """subject -> {"mask", "ctd", "image"} for every ``*_seg-vert_msk.nii.gz`` under ``root``."""
    root = Path(root)
    found: dict[str, dict[str, Path]] = {}
    for mask in sorted(root.rglob("*_seg-vert_msk.nii.gz")):
        m = _SUBJECT.match(mask.name)
        if not m:
            continue
        subject = m.group(1)
        entry = found.setdefault(subject, {})
        entry["mask"] = mask
        prefix = mask.name[: -len("_seg-vert_msk.nii.gz")]
        for ctd in root.rglob(f"{prefix}_seg-subreg_ctd.json"):
            entry["ctd"] = ctd
        for img in root.rglob(f"{prefix}_ct.nii.gz"):
            entry["image"] = img
    return found


def read_centroids(ctd_path: Path, mask) -> dict[str, tuple[float, float, float]]:
    doc = json.loads(Path(ctd_path).read_text(encoding="utf-8"))
    if not isinstance(doc, list) or not any(isinstance(e, dict) and "label" in e for e in doc):
        raise ValueError(f"{ctd_path}: not a VerSe centroid file (expected a list with 'label', 'X', 'Y', 'Z')")
    return verse_centroid_json(doc, mask)


def import_verse(root: Path | str) -> list[LabelledCase]:
    cases = []
    numbering = get_numbering("verse")
    for subject, files in find_subjects(Path(root)).items():
        mask = read_image(files["mask"])
        vertebrae, discs, values, notes = levels_from_labelmap(mask, numbering)
        if "ctd" in files:
            manual = read_centroids(files["ctd"], mask)
            config = configuration_from_values(numbering, values.values())
            order = {n: i for i, n in enumerate(config.vertebrae)}
            vertebrae = dict(sorted(manual.items(), key=lambda kv: order.get(kv[0], 99)))
            notes = [f"vertebral-body centroids from {files['ctd'].name} (manual VerSe annotation)"]
        case = LabelledCase(
            case_id=f"verse:{subject}", dataset="verse", subject=subject, modality="CT" if "image" in files else "",
            image_path=files.get("image"), label_path=files["mask"], numbering="verse", vertebrae=vertebrae,
            discs=discs, label_values=values, licence=LICENCE,
            origin="VerSe (github.com/anjany/verse, OSF)", notes=notes,
        )
        case.partial = partial_vertebrae(mask, {k: v for k, v in values.items() if k in vertebrae})
        if "ctd" in files:
            case.extra["centroid_file"] = files["ctd"].name
        cases.append(case)
    return cases
