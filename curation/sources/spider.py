"""SPIDER importer (lumbar spine MRI, van der Graaf et al., Sci Data 2024; Zenodo 10159290; CC BY 4.0).

Public layout::

    images/<patient>_t1.mha, <patient>_t2.mha, <patient>_t2_SPACE.mha     sagittal MRI (MetaImage)
    masks/<same names>.mha                                                  segmentation, same grid
    overview.csv                                                            series list (new_file_name, subset, ...)
    radiological_gradings.csv                                               one row per graded disc

Mask values (SPIDER challenge description): 1-25 vertebrae numbered from the bottom (1 = L5, 2 = L4 ... 5 = L1,
6 = T12 ...), 101-125 the same vertebrae when only partly in the field of view, 100 spinal canal, 201-225
intervertebral discs numbered from the bottom as well (201 = L5-S1, 202 = L4-L5 ...). The gradings' ``IVD label`` N
is the disc with mask value 200 + N. Columns of radiological_gradings.csv::

    Patient, IVD label, Modic, UP endplate, LOW endplate, Spondylolisthesis, Disc herniation, Disc narrowing,
    Disc bulging, Pfirrman grade

(Modic 0-3, Pfirrmann 1-5, the others 0/1.) The "1 = L5" convention assumes no transitional vertebra; SPIDER's
authors count from the lowest lumbar-type vertebra, so a case with an LSTV may be named one level off: items say
"as labelled in SPIDER".
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from core.spine.anatomy import STANDARD
from core.spine.labelmap import partial_vertebrae
from core.spine.numbering import Numbering
from curation.sources.cases import Finding, LabelledCase, levels_from_labelmap, read_image

LICENCE = "CC BY 4.0 (SPIDER, van der Graaf et al., Sci Data 11, 264 (2024), doi:10.1038/s41597-024-03090-w)"
GRADING_COLUMNS = ("Patient", "IVD label", "Modic", "UP endplate", "LOW endplate", "Spondylolisthesis",
                   "Disc herniation", "Disc narrowing", "Disc bulging", "Pfirrman grade")
FINDING_NAMES = {"Modic": "modic", "UP endplate": "upper_endplate_defect", "LOW endplate": "lower_endplate_defect",
                 "Spondylolisthesis": "spondylolisthesis", "Disc herniation": "disc_herniation",
                 "Disc narrowing": "disc_narrowing", "Disc bulging": "disc_bulging", "Pfirrman grade": "pfirrmann"}
BINARY = {"UP endplate", "LOW endplate", "Spondylolisthesis", "Disc herniation", "Disc narrowing", "Disc bulging"}
_FILE = re.compile(r"^(\d+)_(t1|t2|t2_SPACE)\.mha$", re.IGNORECASE)

# vertebrae counted upwards from L5: 1 L5 .. 5 L1, 6 T12 .. 17 T1, 18 C7 .. 24 C1
_UPWARDS = [v for v in reversed(STANDARD.vertebrae) if v != "S1"]
SPIDER = Numbering("spider", "SPIDER", vertebrae={i + 1: name for i, name in enumerate(_UPWARDS)},
                   structures={100: "spinal_canal"}, disc_offset=200)


def disc_for_ivd_label(n: int) -> str:
    """Gradings' ``IVD label`` (1 = lowest disc) -> disc name ('L5-S1' for 1)."""
    name = SPIDER.name_of(200 + int(n))
    if name is None:
        raise ValueError(f"SPIDER IVD label {n} does not name a disc")
    return name


def read_gradings(path: Path) -> dict[str, list[Finding]]:
    """patient -> findings, from radiological_gradings.csv (exact public column names required)."""
    out: dict[str, list[Finding]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in GRADING_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path.name}: missing SPIDER column(s) {missing}")
        for row_no, row in enumerate(reader, start=2):
            ivd = int(float(row["IVD label"]))
            if ivd < 1:
                continue  # the public file has a few rows with IVD label 0: they name no disc
            disc = disc_for_ivd_label(ivd)
            for column, name in FINDING_NAMES.items():
                raw = (row.get(column) or "").strip()
                if raw == "":
                    continue
                value = int(float(raw))
                text = ("present" if value else "absent") if column in BINARY else (
                    ("none" if value == 0 else f"type {value}") if column == "Modic" else str(value))
                out.setdefault(str(int(float(row["Patient"]))), []).append(
                    Finding(level=disc, name=name, value=text, location=f"{path.name} row {row_no} ({column})"))
    return out


def import_spider(root: Path | str, prefer: tuple[str, ...] = ("t2", "t1", "t2_SPACE")) -> list[LabelledCase]:
    root = Path(root)
    gradings_path = root / "radiological_gradings.csv"
    gradings = read_gradings(gradings_path) if gradings_path.is_file() else {}
    series: dict[str, dict[str, Path]] = {}
    for img in sorted((root / "images").glob("*.mha")):
        m = _FILE.match(img.name)
        if m:
            series.setdefault(m.group(1), {})[m.group(2).lower().replace("t2_space", "t2_SPACE")] = img
    cases = []
    for patient, by_kind in sorted(series.items(), key=lambda kv: int(kv[0])):
        kind = next(k for k in prefer if k in by_kind)
        image = by_kind[kind]
        mask_path = root / "masks" / image.name
        case = LabelledCase(case_id=f"spider:{patient}", dataset="spider", subject=patient, modality="MR",
                            image_path=image, licence=LICENCE, origin="SPIDER (Zenodo 10159290)",
                            findings=gradings.get(patient, []), extra={"sequence": kind})
        if mask_path.is_file():
            mask = read_image(mask_path)
            data = np.asarray(mask.data)
            partial_values = {int(v) for v in np.unique(data) if 101 <= v <= 125}
            if partial_values:  # 101-125: partly visible vertebra -> its name, flagged partial
                mask.data = np.where((data >= 101) & (data <= 125), data - 100, data)
            case.label_path = mask_path
            case.numbering = "spider"
            case.vertebrae, case.discs, case.label_values, case.notes = levels_from_labelmap(mask, SPIDER)
            case.partial = sorted({SPIDER.vertebrae[v - 100] for v in partial_values if v - 100 in SPIDER.vertebrae}
                                  | set(partial_vertebrae(mask, case.label_values)))
        cases.append(case)
    return cases
