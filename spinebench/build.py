"""Rebuild a SpineBench version (default ``resources/spinebench/v2``) deterministically, with its datasheet.

    .venv/bin/spinebench build [--out resources/spinebench/v2] [--samples ../shared/data/spine-samples]
                               [--curated resources/datasets/spinemed-curated-v2]

Inputs: the labelled studies of ``SOURCES`` (read-only, beside the checkout), the knowledge base (landmark quotes)
and, when present, the curation export (``bench.jsonl`` for pathology / surgical-planning items, ``train.jsonl`` and
``val.jsonl`` for the leakage check). The same inputs give byte-identical ``items.jsonl``, images and
``manifest.json`` (no timestamps; seeded choices; PNGs from a fixed Pillow version). ``datasheet.md`` is generated
from the manifest.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

from core import paths
from spinebench import curated as curated_mod
from spinebench import datasheet, dialogue, levelgen, reports
from spinebench.holdout import BENCHMARK_CASES
from spinebench.schema import Item, sha256_file, write_items
from spinebench.studies import StudySpec, load_study

VERSION = "v2"
DEFAULT_OUT = paths.RESOURCES / "spinebench" / VERSION
DEFAULT_SAMPLES = paths.REPO_ROOT.parent / "shared" / "data" / "spine-samples"
DEFAULT_CURATED = paths.RESOURCES / "datasets" / "spinemed-curated-v2"

# case ids are those of curation/build_dataset.py SAMPLE_CASES, so the case-level leakage check sees the same case
SOURCES = [
    StudySpec("tptbox_ct", "tptbox_ct_lumbar_crop_L2-L4", "sub-ct_seg-vert_label-22_msk.nii.gz", "verse",
              "sub-ct_label-22_ct.nii.gz", "CT", "CT of the lumbar spine (cropped field of view)",
              "Apache-2.0 (TPTBox repository); patient source not stated",
              "github.com/Hendrik-code/TPTBox@f43f7fb5 TPTBox/tests/sample_ct", case_id="tptbox:sample_ct_L3"),
    StudySpec("tptbox_mri", "tptbox_mri_cervical_crop_C5-C7", "sub-mri_seg-vert_label-6_msk.nii.gz", "verse",
              "sub-mri_label-6_T2w.nii.gz", "MR", "T2-weighted MRI of the cervical spine (cropped field of view)",
              "Apache-2.0 (TPTBox repository); patient source not stated",
              "github.com/Hendrik-code/TPTBox@f43f7fb5 TPTBox/tests/sample_mri", case_id="tptbox:sample_mri_C6"),
    StudySpec("sct", "sct_cervical_t2_mri_C2-C5", "t2_cordseg_labeled_by_level.nii.gz", "sct", "t2.nii.gz", "MR",
              "T2-weighted MRI of the cervical spine (small field of view)", "MIT (Copyright (c) 2014 NeuroPoly)",
              "github.com/spinalcordtoolbox/sct_testing_data@af4c7e87 t2/", fov_mm=60.0, case_id="sct:errsm_30"),
    # 20 axial slices (38 mm): the T11 and T12 masks overlap in height, so a marker cannot single out one level;
    # this study gives report and consultation contexts but no level-identification images
    StudySpec("ts_ct", "ts_ct_dicom_T11-T12", "seg_total_v2.nii.gz", "totalseg", "dicom", "CT",
              "CT of the lower thorax / upper abdomen (20 axial slices)", "Apache-2.0 (TotalSegmentator repository)",
              "github.com/wasserth/TotalSegmentator@0e65a448 tests/reference_files", level_items=False,
              case_id="totalseg:example_ct_dicom"),
    StudySpec("verse004", "verse004_labels_only_T9-L5", "sub-verse004_seg-vert_msk.nii.gz", "verse", None, "CT",
              "CT of the thoracolumbar spine", "CC BY-SA 4.0 (VerSe; cite Sekuboyina et al. 2021, Loeffler et al. "
              "2020); derived images are shared under the same licence",
              "github.com/anjany/verse@02b292b8 utils/sample (sub-verse004)", fov_mm=220.0,
              case_id="verse:sub-verse004"),
    StudySpec("ts_mr", "ts_mr_abdomen_generic_vertebrae_discs", "seg_total_mr.nii.gz", None, "mr.nii.gz", "MR",
              "MRI of the upper abdomen", "Apache-2.0 (TotalSegmentator repository)",
              "github.com/wasserth/TotalSegmentator@0e65a448 tests/reference_files", centre_label=19,
              case_id="totalseg:example_mr"),
]

REPORT_QUESTIONS = {
    "tptbox_ct": ["Low back pain for three months. Report the lumbar levels in view.",
                  "Fall from a ladder. Assess the lumbar spine for injury."],
    "tptbox_mri": ["Neck pain with right arm pain. Report the cervical levels in view.",
                   "Planning of anterior cervical surgery. Report the levels in view."],
    "sct": ["Neck pain. Report the cervical levels in view.",
            "Follow-up of suspected cervical myelopathy. Report the cord and canal at the levels in view."],
    "ts_ct": ["Staging CT. Report the spine in view.", "Back pain after a fall. Report the spine in view."],
    "verse004": ["Back pain. Report the thoracolumbar levels in view.",
                 "Osteoporosis assessment. Report the vertebral body heights."],
    "ts_mr": ["Abdominal MRI: report any incidental spine findings.", "Back pain. Report the spine in view."],
}


def _sha(path: Path) -> str:
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.name.encode())
            h.update(sha256_file(f).encode())
        return h.hexdigest()
    return sha256_file(path)


def _rel(path: Path) -> str:
    """Repository-relative path when inside the checkout (the manifest must not depend on where it lives)."""
    try:
        return Path(path).resolve().relative_to(paths.REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def counts(items: list[Item]) -> dict:
    by = Counter((i.axis, i.format, i.modality) for i in items)
    return {
        "total": len(items),
        "by_axis": dict(sorted(Counter(i.axis for i in items).items())),
        "by_axis_format_modality": [{"axis": a, "format": f, "modality": m, "n": n} for (a, f, m), n in sorted(by.items())],
        "by_subtype": dict(sorted(Counter(f"{i.axis}/{i.subtype}" for i in items).items())),
        "by_review_status": dict(sorted(Counter(i.review_status for i in items).items())),
        "by_case": dict(sorted(Counter(i.case_id or "-" for i in items).items())),
    }


def build(out: Path = DEFAULT_OUT, samples: Path = DEFAULT_SAMPLES, curated: Path | None = DEFAULT_CURATED,
          knowledge: Path | None = None, log=print) -> dict:
    out = Path(out)
    samples = Path(samples)
    if not samples.is_dir():
        raise FileNotFoundError(f"{samples}: labelled samples not found (they live beside the checkout in ../shared)")
    images = out / "images"
    if images.exists():
        shutil.rmtree(images)
    items: list[Item] = []
    sources = []
    level_img, report_items, dialogue_items = [], [], []
    for spec in SOURCES:
        if spec.case_id not in BENCHMARK_CASES:
            log(f"{spec.key}: case {spec.case_id} feeds training (spinebench.holdout): not used")
            continue
        study = load_study(spec, samples)
        folder = samples / spec.folder
        used = [spec.labels] + ([spec.image] if spec.image else [])
        sources.append({"key": spec.key, "folder": spec.folder, "case_id": study.case_id, "modality": spec.modality,
                        "numbering": spec.numbering, "levels_in_view": study.levels_in_view(),
                        "partial": study.partial, "derived_discs": study.derived_discs,
                        "level_items": spec.level_items and bool(study.vertebrae), "licence": spec.licence,
                        "origin": spec.origin, "files": {f: _sha(folder / f) for f in used}})
        if spec.level_items and study.vertebrae:
            level_img += levelgen.image_items(study, images)
        report_items += reports.report_items(study, REPORT_QUESTIONS[spec.key], images)
        dialogue_items += dialogue.dialogue_items(study)
        log(f"{spec.key}: {len(study.levels_in_view())} levels in view")
    kb = Path(knowledge) if knowledge else paths.RESOURCES / "knowledge"
    level_txt = (levelgen.counting_items() + levelgen.variant_items() + levelgen.numbering_items()
                 + levelgen.landmark_items(kb))
    curated_info: dict = {"present": False, "path": _rel(curated) if curated else None}
    cur_items: list[Item] = []
    if curated and (Path(curated) / "bench.jsonl").is_file():
        res = curated_mod.items_from_export(Path(curated) / "bench.jsonl", images / "curated")
        cur_items = res.items
        curated_info.update(present=True, bench_sha256=sha256_file(Path(curated) / "bench.jsonl"),
                            used=len(cur_items), skipped=dict(sorted(res.skipped.items())))
        log(f"curation export: {len(cur_items)} items used, skipped {dict(res.skipped)}")
    else:
        log(f"curation export not found at {curated}: no pathology / surgical-planning items")
    items = level_img + level_txt + cur_items + report_items + dialogue_items
    leak_info: dict = {"checked": False, "reason": "no training export found"}
    if curated:
        train = []
        for split in ("train", "val"):
            f = Path(curated) / f"{split}.jsonl"
            if f.is_file():
                train += curated_mod.read_export(f)
        if train:
            leak = curated_mod.leakage(items, train)
            dropped = leak.leaking_ids
            items = [i for i in items if i.id not in dropped]
            leak_info = {"checked": True, "dropped": sorted(dropped), **leak.to_dict()}
            log(f"leakage check: {len(train)} train/val records, {len(dropped)} bench items dropped")
    write_items(out / "items.jsonl", items)
    manifest = {
        "name": "SpineBench (SpineMed Workstation local benchmark)", "version": VERSION,
        "generator": "spinebench/build.py", "items_sha256": sha256_file(out / "items.jsonl"),
        "counts": counts(items), "sources": sources, "curation_export": curated_info, "leakage": leak_info,
        "images": {p.relative_to(out).as_posix(): sha256_file(p) for p in sorted(images.rglob("*.png"))},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (out / "datasheet.md").write_text(datasheet.render(manifest), encoding="utf-8")
    log(f"wrote {len(items)} items to {out}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spinebench build", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES)
    parser.add_argument("--curated", type=Path, default=DEFAULT_CURATED,
                        help="folder of the curation export (bench/train/val.jsonl); missing -> no curated items")
    args = parser.parse_args(argv)
    build(args.out, args.samples, args.curated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
