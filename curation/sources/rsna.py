"""RSNA 2024 Lumbar Spine Degenerative Classification importer (Kaggle competition data).

Public layout::

    train.csv                        study_id + 25 columns <condition>_<l1_l2 .. l5_s1>, values Normal/Mild, Moderate,
                                     Severe (empty when not graded); conditions: spinal_canal_stenosis,
                                     left/right_neural_foraminal_narrowing, left/right_subarticular_stenosis
    train_label_coordinates.csv      study_id, series_id, instance_number, condition, level, x, y
                                     (condition "Spinal Canal Stenosis" ..., level "L1/L2" .. "L5/S1", x/y in pixels)
    train_series_descriptions.csv    study_id, series_id, series_description ("Sagittal T1", "Sagittal T2/STIR",
                                     "Axial T2")
    train_images/<study_id>/<series_id>/<instance_number>.dcm

One case per study; every graded column becomes a finding at its disc level, and every coordinate row is kept (with
its series description and DICOM path) so image items can mark the annotated point on that instance. The
competition's images are distributed de-identified; the rendered PNGs carry pixels only (no header).
"""
from __future__ import annotations

import csv
from pathlib import Path

from curation.sources.cases import Finding, LabelledCase

LICENCE = "RSNA 2024 Lumbar Spine Degenerative Classification competition data: use under the competition rules"
CONDITIONS = ("spinal_canal_stenosis", "left_neural_foraminal_narrowing", "right_neural_foraminal_narrowing",
              "left_subarticular_stenosis", "right_subarticular_stenosis")
LEVELS = {"l1_l2": "L1-L2", "l2_l3": "L2-L3", "l3_l4": "L3-L4", "l4_l5": "L4-L5", "l5_s1": "L5-S1"}
SEVERITIES = ("Normal/Mild", "Moderate", "Severe")
COORD_COLUMNS = ("study_id", "series_id", "instance_number", "condition", "level", "x", "y")


def condition_key(text: str) -> str:
    """'Left Neural Foraminal Narrowing' -> 'left_neural_foraminal_narrowing'."""
    return text.strip().lower().replace(" ", "_")


def level_name(text: str) -> str:
    """'L4/L5' or 'l4_l5' -> 'L4-L5'."""
    key = text.strip().lower().replace("/", "_")
    if key not in LEVELS:
        raise ValueError(f"not an RSNA level: {text!r}")
    return LEVELS[key]


def _read(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path.name}: missing column(s) {missing}")
        return list(enumerate(reader, start=2))


def import_rsna(root: Path | str, *, limit: int | None = None) -> list[LabelledCase]:
    root = Path(root)
    columns = tuple(f"{c}_{lv}" for c in CONDITIONS for lv in LEVELS)
    train = _read(root / "train.csv", ("study_id",) + columns)
    coords = _read(root / "train_label_coordinates.csv", COORD_COLUMNS) \
        if (root / "train_label_coordinates.csv").is_file() else []
    descriptions: dict[str, str] = {}
    if (root / "train_series_descriptions.csv").is_file():
        for _, r in _read(root / "train_series_descriptions.csv", ("study_id", "series_id", "series_description")):
            descriptions[str(r["series_id"]).strip()] = r["series_description"].strip()
    by_study: dict[str, list[dict]] = {}
    for row_no, r in coords:
        study, series = str(r["study_id"]).strip(), str(r["series_id"]).strip()
        instance = int(float(r["instance_number"]))
        path = root / "train_images" / study / series / f"{instance}.dcm"
        by_study.setdefault(study, []).append({
            "series_id": series, "instance_number": instance, "condition": condition_key(r["condition"]),
            "level": level_name(r["level"]), "x": float(r["x"]), "y": float(r["y"]),
            "series_description": descriptions.get(series, ""), "dicom": str(path),
            "location": f"train_label_coordinates.csv row {row_no}",
        })
    cases = []
    for row_no, r in train[:limit] if limit else train:
        study = str(r["study_id"]).strip()
        findings = []
        for col in columns:
            value = (r.get(col) or "").strip()
            if not value:
                continue
            if value not in SEVERITIES:
                raise ValueError(f"train.csv row {row_no} column {col}: unknown severity {value!r}")
            condition, lv = col[: -len("_l1_l2")], col[-len("l1_l2"):]
            findings.append(Finding(level=LEVELS[lv], name=condition, value=value,
                                    location=f"train.csv row {row_no} ({col})"))
        study_coords = by_study.get(study, [])
        image_dir = root / "train_images" / study
        cases.append(LabelledCase(
            case_id=f"rsna:{study}", dataset="rsna", subject=study, modality="MR",
            image_path=image_dir if image_dir.is_dir() else None, findings=findings, licence=LICENCE,
            origin="RSNA 2024 Lumbar Spine Degenerative Classification (Kaggle)",
            extra={"coordinates": study_coords}, notes=["no vertebra masks: levels are disc-level annotations"],
        ))
    return cases
