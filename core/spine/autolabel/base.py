"""The automatic-labelling backend protocol and its registry.

A backend turns a :class:`~core.studies.volume.Volume` into a :class:`~core.spine.labelling.SpineLabelling`. It says
whether it can run here (``available``: e.g. TotalSegmentator needs its package and local weights) and whether it
suits an image (``supports``: modality). ``run`` reports progress and honours a cancel token.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from core.spine.labelling import SpineLabelling
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn


class AutoLabelError(Exception):
    """The image cannot be labelled (no spine, a single slice, wrong modality...); the message is for the user."""


@runtime_checkable
class AutoLabeller(Protocol):
    name: str
    version: str
    description: str

    def available(self) -> tuple[bool, str]:
        """(True, '') when it can run on this machine, else (False, why not)."""

    def supports(self, volume: Volume) -> bool:
        """Whether this backend is meant for this image (modality, dimensions)."""

    def run(self, volume: Volume, progress: ProgressFn | None = None,
            cancel: CancelToken | None = None) -> SpineLabelling:
        """Detect and name the levels; raises AutoLabelError with a readable reason, or Cancelled."""


_REGISTRY: dict[str, AutoLabeller] = {}


def register(backend: AutoLabeller) -> AutoLabeller:
    _REGISTRY[backend.name] = backend
    return backend


def backends() -> list[AutoLabeller]:
    return list(_REGISTRY.values())


def get_backend(name: str) -> AutoLabeller:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown labelling backend {name!r}; known: {', '.join(_REGISTRY)}") from None


def choose_backend(volume: Volume, prefer: str | None = None) -> AutoLabeller:
    """The preferred backend if given, else the first registered one that is available and supports the image."""
    if prefer and prefer != "auto":
        backend = get_backend(prefer)
        ok, why = backend.available()
        if not ok:
            raise AutoLabelError(f"{backend.name} cannot run here: {why}")
        return backend
    reasons = []
    for backend in _REGISTRY.values():
        ok, why = backend.available()
        if ok and backend.supports(volume):
            return backend
        reasons.append(f"{backend.name}: {why or 'not for ' + (volume.modality or 'this image')}")
    raise AutoLabelError("no labelling backend can handle this image (" + "; ".join(reasons) + ")")
