"""Automatic vertebral labelling backends: the built-in classical CT and MR methods, the learned labeller (ONNX
weights in resources/models), and TotalSegmentator (when installed with local weights). ``auto_label(volume)``
picks the first available backend that suits the image."""
from __future__ import annotations

from core.spine.autolabel.base import AutoLabelError, AutoLabeller, backends, choose_backend, get_backend, register
from core.spine.autolabel.classical_ct import ClassicalCT
from core.spine.autolabel.classical_mr import ClassicalMR
from core.spine.autolabel.learned import LearnedLevels
from core.spine.autolabel.totalseg import TotalSegmentatorBackend
from core.spine.labelling import SpineLabelling
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn

# Order = preference of 'auto': the built-in method first (seconds); TotalSegmentator (minutes on a CPU) on request.
register(ClassicalCT())
register(ClassicalMR())
register(LearnedLevels())
register(TotalSegmentatorBackend())


def auto_label(volume: Volume, backend: str | None = None, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None) -> SpineLabelling:
    """Label ``volume`` with ``backend`` (a registered name, or None / 'auto' to choose)."""
    return choose_backend(volume, backend).run(volume, progress, cancel)


__all__ = ["AutoLabelError", "AutoLabeller", "auto_label", "backends", "choose_backend", "get_backend", "register"]
