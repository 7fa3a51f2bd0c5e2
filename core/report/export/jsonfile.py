"""JSON export: the report document itself (``spinemed.report``, schema in core.report.schema), with the disclaimer
and the signature state inside it."""
from __future__ import annotations

from pathlib import Path

from core.report.model import SpineReport


def write_json(report: SpineReport, path: Path, **_: object) -> None:
    path.write_text(report.to_json(indent=1) + "\n", encoding="utf-8")
