"""Radiograph Cobb angles as stored measurements (:class:`~core.spine.measure.measurement.SpineMeasurement`), and back.

One measurement per region with a curve (the largest curve of each: proximal thoracic, main thoracic,
thoracolumbar/lumbar), level ``"<upper end vertebra>-<lower end vertebra>"``, value in degrees, with the method that
made the landmarks (``auto:spinemed-xray-landmarks@1.0`` for the model's, ``user:<name>`` after a correction).
``details`` holds the end plates, apex, convexity, that the angle lies in the image plane, and the 68 landmarks
(image pixels), so a reopened radiograph shows the same landmarks. These measurements carry no patient points: a
projection image has no patient coordinates.
"""
from __future__ import annotations

import numpy as np

from core.spine.measure.measurement import SpineMeasurement
from core.xray.cobb import regional_cobb
from core.xray.levels import endplate_name

SOURCE = "xray-landmarks"


def cobb_measurements(landmarks: np.ndarray, method: str) -> list[SpineMeasurement]:
    lm = np.asarray(landmarks, float).reshape(68, 2)
    out = []
    for region, curve in regional_cobb(lm).items():
        if curve is None:
            continue
        out.append(SpineMeasurement(
            kind="cobb", name=f"Cobb angle, {region} curve", value=round(curve.angle, 2), unit="deg",
            level=f"{curve.upper_end_vertebra}-{curve.lower_end_vertebra}", method=method,
            details={"source": SOURCE, "region": region, "upper_endplate": endplate_name(curve.upper_endplate),
                     "lower_endplate": endplate_name(curve.lower_endplate), "apex": curve.apex_name,
                     "convex_to": curve.convex_to, "plane": "radiograph image plane (Cobb method, SRS)",
                     "landmarks_px": lm.round(2).tolist()}))
    return out


def landmarks_from_measurements(measurements) -> tuple[np.ndarray, str] | None:
    """The landmarks stored with radiograph Cobb measurements, and their method; None when there are none."""
    for m in measurements:
        lm = m.details.get("landmarks_px") if m.details.get("source") == SOURCE else None
        if lm is not None:
            arr = np.asarray(lm, float)
            if arr.shape == (68, 2) and np.all(np.isfinite(arr)):
                return arr, m.method
    return None
