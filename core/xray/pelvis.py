"""Pelvic parameters on a lateral radiograph, in the image plane, from four points the user clicks: the posterior and
anterior corners of the S1 superior endplate, and the centres of the two femoral heads (the same point twice when
they are superimposed). Definitions (Duval-Beaupere et al., Ann Biomed Eng 1992; Legaye et al., Eur Spine J 1998):

- **pelvic incidence (PI)**: the angle between the line perpendicular to the S1 superior endplate at its midpoint
  and the line from that midpoint to the hip axis (the midpoint of the two femoral head centres);
- **sacral slope (SS)**: the angle between the S1 superior endplate and the horizontal;
- **pelvic tilt (PT)**: the angle between the vertical and the line from the endplate's midpoint to the hip axis,
  positive when the hip axis lies anterior to the midpoint (the usual case; negative: anteverted pelvis).

PI = PT + SS by geometry. Horizontal and vertical are the image's rows and columns: the values hold for a true
lateral radiograph of a standing patient on an upright (not rotated) film. PI does not depend on posture or film
rotation; SS and PT do. PT is graded by the SRS-Schwab PT modifier (:mod:`core.spine.measure.alignment`).
Decision support, to be checked by a clinician.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PelvicParameters:
    incidence: float      # PI, degrees
    sacral_slope: float   # SS, degrees
    pelvic_tilt: float    # PT, degrees (signed)

    def describe(self) -> str:
        return (f"pelvic incidence {self.incidence:.1f}°, sacral slope {self.sacral_slope:.1f}°, pelvic tilt "
                f"{self.pelvic_tilt:.1f}° (image plane)")


def pelvic_parameters(s1_posterior, s1_anterior, hip_a, hip_b=None) -> PelvicParameters:
    """Points are image pixels (x right, y down); ``hip_b`` None or equal to ``hip_a`` for superimposed heads."""
    p, a, h1 = (np.asarray(q, float).reshape(2) for q in (s1_posterior, s1_anterior, hip_a))
    h2 = h1 if hip_b is None else np.asarray(hip_b, float).reshape(2)
    pts = np.stack([p, a, h1, h2])
    if not np.all(np.isfinite(pts)):
        raise ValueError("a point is not finite")
    e = a - p
    if np.hypot(*e) < 1.0:
        raise ValueError("the two S1 endplate corners are the same point")
    m = (p + a) / 2
    hip = (h1 + h2) / 2
    u = hip - m
    if np.hypot(*u) < 1.0:
        raise ValueError("the hip axis lies on the S1 endplate's midpoint")
    if u[1] <= 0:
        raise ValueError("the femoral heads must lie below the S1 endplate (an upright lateral radiograph)")
    anterior = 1.0 if e[0] > 0 else -1.0            # which way the patient faces on the image
    sacral_slope = math.degrees(math.atan2(abs(e[1]), abs(e[0])))
    pelvic_tilt = math.degrees(math.atan2(anterior * u[0], u[1]))
    n = np.array([-e[1], e[0]])
    if n[1] < 0:                                      # the perpendicular pointing caudally, into the sacrum
        n = -n
    cos = float(n @ u) / (np.hypot(*n) * np.hypot(*u))
    incidence = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
    return PelvicParameters(incidence, sacral_slope, pelvic_tilt)


def pelvic_measurement(points_px, display_points=(), method: str = "user:user"):
    """The stored form: kind ``pelvic_incidence`` at S1, value PI in degrees, SS and PT in ``details``."""
    from core.spine.measure.alignment import pt_modifier, pt_words
    from core.spine.measure.measurement import SpineMeasurement

    pp = pelvic_parameters(*points_px)
    grade = (f"SS {pp.sacral_slope:.1f}°, PT {pp.pelvic_tilt:.1f}°; {pt_words(pp.pelvic_tilt)}; image plane, "
             "standing lateral film")
    return SpineMeasurement(
        kind="pelvic_incidence", name="pelvic incidence", level="S1", value=round(pp.incidence, 2), unit="deg",
        points=list(display_points), method=method,
        details={"sacral_slope_deg": round(pp.sacral_slope, 2), "pelvic_tilt_deg": round(pp.pelvic_tilt, 2),
                 "schwab_pt_modifier": pt_modifier(pp.pelvic_tilt), "grade_label": grade,
                 "image_points_px": [list(map(float, q)) for q in points_px], "plane": "radiograph image plane",
                 "definition": "PI, SS, PT as Duval-Beaupere 1992 / Legaye 1998; horizontal = the image rows",
                 "view": "radiograph"})
