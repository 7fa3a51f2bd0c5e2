"""Scanning DICOM files into series: headers read, files grouped by SeriesInstanceUID (or a derived id), and mixed
series split by image size / orientation, by echo, time point or acquisition when positions repeat.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.studies.dicom_file import DicomFileProblem, read_header
from core.studies.dicom_geometry import in_plane, multiframe_geometry, projection_affine, stack_geometry
from core.studies.dicom_header import DicomHeader
from core.studies.dicom_verify import verify_first_frames
from core.studies.errors import unexpected_reason
from core.studies.sources import ImportProblem, ScanResult, SeriesSource
from core.tasks import CancelToken, ProgressFn, check, report, sub_progress


def scan_files(paths: Sequence[Path], progress: ProgressFn | None = None,
               cancel: CancelToken | None = None, verify: bool = True) -> ScanResult:
    """Read the headers of DICOM files and group them into series (split when sizes/orientations are mixed).

    ``verify`` decodes the first frame of each compressed file once (remembered while the file is unchanged), so
    an image that cannot be shown is reported now, and its slice becomes a gap in its series.
    """
    result = ScanResult()
    headers: list[DicomHeader] = []
    total = max(1, len(paths))
    step = max(1, total // 100)
    header_share = 0.3 if verify else 1.0
    for n, path in enumerate(paths):
        if n % step == 0:
            check(cancel)
            report(progress, header_share * n / total, f"Reading DICOM headers {n}/{total}")
        try:
            headers.append(read_header(path))
        except DicomFileProblem as exc:
            result.problems.append(ImportProblem(Path(path), exc.reason))
        except Exception as exc:  # noqa: BLE001 - one unforeseen file must not stop the others: it is reported
            result.problems.append(ImportProblem(Path(path), unexpected_reason(exc), internal=type(exc).__name__))
    if verify:
        failures = verify_first_frames(headers, sub_progress(progress, header_share, 1.0), cancel)
        for n, (reason, internal) in sorted(failures.items()):
            result.problems.append(ImportProblem(headers[n].path, reason, internal=internal))
        headers = [h for n, h in enumerate(headers) if n not in failures]
    groups: dict[str, list[DicomHeader]] = {}
    for h in headers:
        groups.setdefault(h.series_uid or _derived_uid(h), []).append(h)
    for uid, members in groups.items():
        try:
            result.series.extend(_series_sources(uid, members))
        except Exception as exc:  # noqa: BLE001 - an unforeseen geometry: this series is reported, others go on
            reason = f"the images of this series could not be arranged: {unexpected_reason(exc)}"
            result.problems.extend(ImportProblem(h.path, reason, internal=type(exc).__name__) for h in members)
    report(progress, 1.0, f"Read {len(headers)} DICOM headers")
    return result


def _derived_uid(h: DicomHeader) -> str:
    """Stable id for files without a SeriesInstanceUID (anonymised exports): same folder + series descriptors."""
    parts = (h.path.parent.name, h.study_uid, h.frame_of_reference, h.modality, h.series_number,
             h.series_description, h.series_time, h.study_date)
    key = "|".join(parts)
    return "dicom-derived:" + hashlib.sha1(key.encode()).hexdigest()[:32]


def _plane_name(iop: Sequence[float] | None) -> str:
    if iop is None:
        return "projection"
    normal = np.abs(in_plane(iop)[2])
    if normal.max() < 0.8:
        return "oblique"
    return ("sagittal", "coronal", "axial")[int(np.argmax(normal))]


def layout_key(h: DicomHeader) -> tuple:
    """Images with the same key can share one volume: size, samples per pixel, orientation (or "projection")."""
    iop = None if h.iop is None else tuple(round(v, 3) for v in h.iop)
    return (h.rows, h.cols, h.samples, iop if h.has_geometry else "projection")


def _series_sources(uid: str, members: list[DicomHeader]) -> list[SeriesSource]:
    parts: list[tuple[list[DicomHeader], list[str]]] = []
    multi = [h for h in members if h.frames > 1]
    single = [h for h in members if h.frames == 1]
    layouts: dict[tuple, list[DicomHeader]] = {}
    for h in single:
        layouts.setdefault(layout_key(h), []).append(h)
    n_groups = len(layouts) + len(multi)
    mixed_note = []
    if n_groups > 1:
        desc = ", ".join(f"{len(g)} x {k[1]}x{k[0]} {_plane_name(g[0].iop if g[0].has_geometry else None)}"
                         for k, g in layouts.items())
        desc += "".join(f", 1 multi-frame file ({h.frames} frames)" for h in multi)
        mixed_note = [f"mixed series ({desc}): split into {n_groups} series"]
    for h in multi:
        parts.append(([h], list(mixed_note)))
    for key, group in layouts.items():
        if key[3] == "projection":
            parts.extend(([h], list(mixed_note)) for h in group)
        else:
            for sub, notes in _split_repeated_positions(group):
                parts.append((sub, mixed_note + notes))
    parts.sort(key=lambda p: -sum(h.frames for h in p[0]))
    sources = []
    for n, (group, notes) in enumerate(parts):
        sources.append(_make_source(uid if n == 0 else f"{uid}#{n + 1}", group, notes))
    return sources


def _split_repeated_positions(group: list[DicomHeader]) -> list[tuple[list[DicomHeader], list[str]]]:
    """Several images at one position (echoes, time points, repeats): split on what differs, else keep the first."""
    if len(group) < 2 or not _has_repeats(group):
        return [(group, [])]
    for attr, label in (("echo", "echo"), ("temporal", "time point"), ("acquisition", "acquisition")):
        values: dict[str, list[DicomHeader]] = {}
        for h in group:
            values.setdefault(getattr(h, attr), []).append(h)
        if len(values) > 1 and not any(_has_repeats(g) for g in values.values()):
            note = f"images at repeated positions split by {label} into {len(values)} series"
            return [(g, [f"{note} ({label} {v or '?'})"]) for v, g in sorted(values.items())]
    kept, seen = [], set()
    for h in group:
        pos = _position_key(h)
        if pos not in seen:
            seen.add(pos)
            kept.append(h)
    return [(kept, [f"{len(group) - len(kept)} image(s) at already-used slice positions were left out"])]


def _position_key(h: DicomHeader) -> float:
    return round(float(np.dot(h.ipp, in_plane(h.iop)[2])), 2)  # type: ignore[arg-type]


def _has_repeats(group: list[DicomHeader]) -> bool:
    keys = [_position_key(h) for h in group]
    return len(set(keys)) != len(keys)


def _make_source(uid: str, group: list[DicomHeader], notes: list[str]) -> SeriesSource:
    warnings = list(notes)
    files = [h.path for h in group]
    first = group[0]
    if first.frames == 1 and first.has_geometry:
        geom = stack_geometry([h.ipp for h in group], first.iop, first.pixel_spacing)  # type: ignore[misc]
        files = [group[i].path for i in geom.order]
        first = group[geom.order[0]]
        warnings.extend(geom.warnings)
        if first.pixel_spacing is None:
            warnings.append("pixel spacing unknown: in-plane measurements in pixels")
    elif first.frames > 1:
        warnings.extend(multiframe_geometry(first)[1])
    else:
        warnings.extend(projection_affine(first)[1])
    return SeriesSource(
        kind="dicom", series_uid=uid, files=files, modality=first.modality,
        series_description=first.series_description, study_uid=first.study_uid,
        study_description=first.study_description, study_date=first.study_date,
        patient_age=first.patient_age, patient_sex=first.patient_sex,
        n_images=sum(h.frames for h in group), warnings=warnings,
    )
