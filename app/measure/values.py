"""How a measurement's value reads, on the views and in the Measurements list: '56.6 mm', 'Cobb 45.0°',
'42.1° lordosis', '23.5 % (Meyerding I)'."""
from __future__ import annotations

from core.spine.measure.geometry import AUTO_SLIP_PRECISION, slip_class
from core.spine.measure.measurement import SpineMeasurement


def qualifier(m: SpineMeasurement) -> str:
    """The words that make the number readable ('' for kinds that need none). Signs follow core.spine.measure.geometry:
    lordosis < 0 is kyphotic alignment, kyphosis < 0 lordotic; a negative slip is a retrolisthesis."""
    scale = m.details.get("scale_source")
    if m.kind == "calibration":
        return "(known length: the scale)"
    if m.kind == "pelvic_incidence":
        ss, pt = m.details.get("sacral_slope_deg"), m.details.get("pelvic_tilt_deg")
        return f"PI (SS {ss:.1f}°, PT {pt:.1f}°)" if ss is not None and pt is not None else "PI"
    if m.unit == "px":
        return "(no calibration)"
    if scale == "user calibration" and m.unit == "mm":
        return "(calibrated by user)"
    if scale == "ImagerPixelSpacing" and m.unit == "mm":
        return "(at the detector: magnified)"
    if m.kind == "lordosis":
        return "lordosis" if m.value >= 0 else "lordosis (kyphotic)"
    if m.kind == "kyphosis":
        return "kyphosis" if m.value >= 0 else "kyphosis (lordotic)"
    if m.kind == "slip":
        reading = slip_class(m.value, m.automatic)
        return {"within precision": f"(within ±{AUTO_SLIP_PRECISION:g} %: no slip stated)",
                "retrolisthesis": "(retrolisthesis)", "none": "(no slip)"}.get(reading, f"(Meyerding {reading})")
    return ""


def with_unit(m: SpineMeasurement) -> str:
    """'42.1°', '23.5 %', '56.6 mm'."""
    unit = {"deg": "°"}.get(m.unit, f" {m.unit}" if m.unit else "")
    return f"{m.value:.1f}{unit}"


def format_value(m: SpineMeasurement) -> str:
    """The label drawn beside a measurement on a view."""
    prefix = "Cobb " if m.kind == "cobb" else ""
    return " ".join(t for t in (prefix + with_unit(m), qualifier(m)) if t)


def list_value(m: SpineMeasurement) -> str:
    """The Value column of the Measurements list: the number ('56.6'), or for kinds with a qualifier the readable
    value ('42.1° lordosis', '23.5 % (Meyerding I)')."""
    words = qualifier(m)
    return f"{with_unit(m)} {words}" if words else f"{m.value:.1f}"
