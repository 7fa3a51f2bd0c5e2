"""Sagittal alignment graded by the SRS-Schwab adult spinal deformity classification (Schwab F et al., "Scoliosis
Research Society-Schwab adult spinal deformity classification: a validation study", Spine 2012;37:1077-82):

- **PT modifier** (pelvic tilt): 0 below 20°, + 20-30°, ++ above 30°;
- **PI-LL modifier** (pelvic incidence minus lumbar lordosis L1-S1): 0 within 10°, + 10-20°, ++ beyond 20°.

(The third sagittal modifier, SVA, is graded with the SVA itself in :mod:`core.xray.sagittal`.) PI-LL is derived
from two measurements of the same image (the latest pelvic incidence and the latest lordosis), so it is computed
whenever the measurements are given to the consultation or a report, never stored: deleting either removes it.
Decision support, to be checked by a clinician.
"""
from __future__ import annotations

SCHWAB_2012 = "SRS-Schwab classification (Schwab et al., Spine 2012)"


def pt_modifier(pelvic_tilt_deg: float) -> str:
    """'0', '+' or '++' for a pelvic tilt in degrees."""
    return "0" if pelvic_tilt_deg < 20.0 else "+" if pelvic_tilt_deg <= 30.0 else "++"


def pi_ll_modifier(pi_minus_ll_deg: float) -> str:
    """'0', '+' or '++' for PI minus LL in degrees (graded by its size: 'within 10°' is either side)."""
    size = abs(pi_minus_ll_deg)
    return "0" if size < 10.0 else "+" if size <= 20.0 else "++"


def pt_words(pelvic_tilt_deg: float) -> str:
    return f"{SCHWAB_2012} PT modifier {pt_modifier(pelvic_tilt_deg)} (0 < 20°, + 20-30°, ++ > 30°)"


def pi_minus_ll(measurements):
    """(PI - LL in degrees, the words that grade it) from the latest pelvic incidence and the latest lordosis
    measurement among ``measurements`` (SpineMeasurement), or None when either is missing."""
    latest = {}
    for m in measurements:
        if m.kind in ("pelvic_incidence", "lordosis") and (m.kind not in latest or m.created >= latest[m.kind].created):
            latest[m.kind] = m
    if len(latest) < 2:
        return None
    value = latest["pelvic_incidence"].value - latest["lordosis"].value
    side = "lordosis smaller than incidence" if value > 0 else "lordosis larger than incidence" if value < 0 else ""
    words = f"{SCHWAB_2012} PI-LL modifier {pi_ll_modifier(value)} (0 within 10°, + 10-20°, ++ beyond 20°)"
    return value, words + (f"; {side}" if side else "")
