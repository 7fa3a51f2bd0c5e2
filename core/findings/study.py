"""The fact sheet of one series from what the library holds: its stored labelling and measurements.

    sheet = facts_for_series(series_uid, modality="CT", sees_images=backend.info().multimodal)
    sheet = facts_for_series("", labelling=labelling, measurements=auto.measurements, modality="CT")   # no library
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.findings.build import build_facts
from core.findings.facts import FactSheet


def facts_for_series(series_uid: str = "", db: Any = None, *, labelling: Any = None,
                     measurements: Iterable[Any] | None = None, levels: Iterable[str] | None = None,
                     modality: str = "", sees_images: bool = False) -> FactSheet:
    """Facts from ``labelling``/``measurements`` when given, else from the library's stored ones for the series;
    ``levels`` (names in view) override the labelling's."""
    from core.report.levels import levels_in_view
    from core.report.study import _library_db, stored_labelling

    if labelling is None and series_uid:
        labelling = stored_labelling(series_uid, db)
    if measurements is None:
        measurements = []
        if series_uid:
            try:
                from core.spine.measure.store import MeasurementStore

                lib = _library_db(db)
                measurements = MeasurementStore(lib).list(series_uid) if lib is not None else []
            except Exception:  # noqa: BLE001 - a damaged store gives no facts, never a crash
                measurements = []
    note = ""
    if levels is None:
        found, _ = levels_in_view(labelling)
        levels = [lv.name for lv in found]
        if labelling is not None and found:
            note = "named by " + labelling.provenance.describe()
    return build_facts(measurements, list(levels), modality=modality, sees_images=sees_images, labelling_note=note)
