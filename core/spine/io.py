"""Opening one image for the levels commands: a NIfTI file or a DICOM folder -> one Volume (the largest series)."""
from __future__ import annotations

from pathlib import Path

from core.studies import StudyLoadError, load_series, scan
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn


def load_volume(path: str | Path, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None) -> tuple[Volume, list[str]]:
    """The volume at ``path`` and warnings (other series skipped, import problems). Raises StudyLoadError."""
    result = scan(Path(path), cancel=cancel)
    warnings = [str(p) for p in result.problems]
    if not result.series:
        raise StudyLoadError(Path(path), "; ".join(p.reason if p.path == Path(path) else str(p) for p in result.problems) or "no image found")
    series = sorted(result.series, key=lambda s: s.n_images, reverse=True)
    if len(series) > 1:
        warnings.append(f"{len(series)} series found: using '{series[0].series_description}' "
                        f"({series[0].n_images} images)")
    warnings.extend(series[0].warnings)
    volume = load_series(series[0], progress, cancel)
    return volume, warnings + volume.warnings  # images shown blank, if any
