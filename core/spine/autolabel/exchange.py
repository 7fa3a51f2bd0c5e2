"""What the GUI process and an out-of-process labelling worker exchange, in one temporary folder.

    volume.npy     the voxels, exactly as in memory (dtype and byte order kept; ``np.save``, no pickle)
    volume.json    the geometry and identity: the 4x4 affine (spacing, origin and direction, LPS), modality, uids...
    outcome.json   written by the worker: ``{"labelling": {...}}`` or ``{"error": "...", "kind": "AutoLabelError"}``
    stderr.txt     the worker's error output, kept for the message when it crashes

Progress travels on the worker's stdout, one JSON object per line: ``{"progress": 0.42, "message": "..."}``.
JSON keeps Python floats exactly (shortest round-trip repr), so the child sees the same affine bit for bit.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from core.studies.volume import Volume

VOLUME_DATA = "volume.npy"
VOLUME_META = "volume.json"
OUTCOME = "outcome.json"
STDERR = "stderr.txt"
FORMAT = "spinemed.autolabel-volume"
FORMAT_VERSION = 1
EXIT_OK, EXIT_LABEL_ERROR, EXIT_CANCELLED = 0, 3, 4  # worker exit codes; anything else is a crash


def write_volume(volume: Volume, folder: Path) -> None:
    """Save ``volume`` in ``folder`` so that :func:`read_volume` gives back an equal Volume."""
    data = np.asarray(volume.data)
    np.save(folder / VOLUME_DATA, data, allow_pickle=False)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "shape": list(data.shape), "dtype": data.dtype.str,
        "affine": np.asarray(volume.affine, dtype=float).tolist(),
        "modality": volume.modality, "series_description": volume.series_description,
        "series_uid": volume.series_uid, "study_uid": volume.study_uid,
        "patient_age": volume.patient_age, "patient_sex": volume.patient_sex,
        "source_paths": [str(p) for p in volume.source_paths], "body_part": volume.body_part,
    }
    (folder / VOLUME_META).write_text(json.dumps(meta), encoding="utf-8")


def read_volume(folder: Path) -> Volume:
    """The Volume written by :func:`write_volume`; ValueError when the files do not match each other."""
    meta = json.loads((folder / VOLUME_META).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT or int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{folder / VOLUME_META} is not a volume description this program can read")
    data = np.load(folder / VOLUME_DATA, allow_pickle=False)
    if list(data.shape) != meta["shape"] or data.dtype.str != meta["dtype"]:
        raise ValueError(f"{folder / VOLUME_DATA} holds {data.dtype.str} {list(data.shape)}, "
                         f"expected {meta['dtype']} {meta['shape']}: the exchange files are damaged")
    return Volume(
        data=data, affine=np.array(meta["affine"], dtype=float), modality=meta["modality"],
        series_description=meta["series_description"], series_uid=meta["series_uid"], study_uid=meta["study_uid"],
        patient_age=meta["patient_age"], patient_sex=meta["patient_sex"],
        source_paths=[Path(p) for p in meta["source_paths"]], body_part=meta["body_part"],
    )


def write_outcome(folder: Path, outcome: dict) -> None:
    """Write outcome.json atomically: a worker killed half-way never leaves half a result."""
    tmp = folder / (OUTCOME + ".part")
    tmp.write_text(json.dumps(outcome), encoding="utf-8")
    os.replace(tmp, folder / OUTCOME)


def read_outcome(folder: Path) -> dict | None:
    path = folder / OUTCOME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def progress_line(fraction: float, message: str) -> str:
    return json.dumps({"progress": float(fraction), "message": str(message)})


def parse_progress(line: str) -> tuple[float, str] | None:
    """(fraction, message) from a progress line, None for anything else."""
    try:
        item = json.loads(line)
        return float(item["progress"]), str(item.get("message", ""))
    except (ValueError, TypeError, KeyError):
        return None
