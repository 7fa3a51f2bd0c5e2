"""How a measurement's value reads, on the views and in the Measurements list: '56.6 mm', 'Cobb 45.0°',
'42.1° lordosis', '23.5 % (Meyerding I)', 'SVA 52.0 mm (anterior; Schwab +; ...)'."""
from __future__ import annotations

from core.spine.measure.geometry import AUTO_SLIP_PRECISION, slip_class
from core.spine.measure.measurement import SpineMeasurement


def qualifier(m: SpineMeasurement) -> str:
    """The words that make the number readable ('' for kinds that need none). Signs follow core.spine.measure.geometry:
    lordosis < 0 is kyphotic alignment, kyphosis < 0 lordotic; a negative slip is a retrolisthesis."""
    scale = m.details.get("scale_source")
    if m.kind == "calibration":
        return "(known length: the scale)"
    if m.kind == "true_vertical":
        return "(true vertical: the SVA's reference, tilt from the image columns)"
    if m.kind == "pelvic_incidence":
        ss, pt = m.details.get("sacral_slope_deg"), m.details.get("pelvic_tilt_deg")
        if ss is None or pt is None:
            return "PI"
        mod = m.details.get("schwab_pt_modifier")
        return f"PI (SS {ss:.1f}°, PT {pt:.1f}°{f'; Schwab PT {mod}' if mod else ''})"
    if m.kind == "sva":
        return _sva_words(m)
    if m.unit == "px":
        return "(no calibration)"
    if scale == "user calibration" and m.unit == "mm":
        return "(calibrated by user)"
    if scale == "ImagerPixelSpacing" and m.unit == "mm":
        return "(at the detector: magnified)"
    if m.kind in ("lordosis", "kyphosis"):
        words = m.kind if m.value >= 0 else f"{m.kind} ({'kyphotic' if m.kind == 'lordosis' else 'lordotic'})"
        if m.details.get("plane") == "radiograph image plane":
            side = "right" if m.details.get("anterior_sign", 1) > 0 else "left"
            by = "PatientOrientation" if str(m.details.get("anterior_source", "")).startswith("PatientOrientation") \
                else "user"
            words += f" (image plane; anterior = image {side} by {by})"
        return words
    if m.kind == "slip":
        reading = slip_class(m.value, m.automatic)
        words = {"within precision": f"(within ±{AUTO_SLIP_PRECISION:g} %: no slip stated)",
                 "retrolisthesis": "(retrolisthesis)", "none": "(no slip)"}.get(reading, f"(Meyerding {reading})")
        if m.details.get("plane") == "radiograph image plane":    # a ratio: no scale needed, but say the plane
            words = words[:-1] + ", image-plane ratio)"
        return words
    return ""


SCALE_WORDS = {"none": "no calibration", "user calibration": "calibrated by user",
               "ImagerPixelSpacing": "ImagerPixelSpacing: at the detector, magnified",
               "ImagerPixelSpacing/magnification": "ImagerPixelSpacing / estimated magnification",
               "PixelSpacing": "PixelSpacing"}


SHORT_SCALE_WORDS = {"none": "no calibration", "user calibration": "calibrated by user",
                     "ImagerPixelSpacing": "at the detector: magnified",
                     "ImagerPixelSpacing/magnification": "magnification estimated", "PixelSpacing": "PixelSpacing"}


def _sva_words(m: SpineMeasurement, short: bool = False) -> str:
    """'(anterior; Schwab +; ImagerPixelSpacing: at the detector, magnified; anterior = image right by
    PatientOrientation; standing lateral film)'; ``short`` (the list's column): '(anterior; Schwab +; at the
    detector: magnified)', the rest in the row's tooltip."""
    d = m.details
    where = "anterior" if m.value > 0 else "posterior" if m.value < 0 else "on S1"
    mod = d.get("schwab_modifier")
    scale = (SHORT_SCALE_WORDS if short else SCALE_WORDS).get(d.get("scale_source"), str(d.get("scale_source")))
    if short:
        return "(" + "; ".join(p for p in (where, f"Schwab {mod}" if mod else "", scale) if p) + ")"
    side = "right" if d.get("anterior_sign", 1) > 0 else "left"
    by = "PatientOrientation" if str(d.get("anterior_source", "")).startswith("PatientOrientation") else "user"
    parts = [where, f"Schwab {mod}" if mod else "", scale, f"anterior = image {side} by {by}",
             "standing lateral film"]
    if d.get("horizontal", "image rows") != "image rows":
        parts.append("true vertical set")
    return "(" + "; ".join(p for p in parts if p) + ")"


def with_unit(m: SpineMeasurement) -> str:
    """'42.1°', '23.5 %', '56.6 mm'."""
    unit = {"deg": "°"}.get(m.unit, f" {m.unit}" if m.unit else "")
    return f"{m.value:.1f}{unit}"


def format_value(m: SpineMeasurement) -> str:
    """The label drawn beside a measurement on a view."""
    prefix = {"cobb": "Cobb ", "sva": "SVA "}.get(m.kind, "")
    return " ".join(t for t in (prefix + with_unit(m), qualifier(m)) if t)


def list_value(m: SpineMeasurement) -> str:
    """The Value column of the Measurements list: the number ('56.6'), or for kinds with a qualifier the readable
    value ('42.1° lordosis', '23.5 % (Meyerding I)')."""
    words = _sva_words(m, short=True) if m.kind == "sva" else qualifier(m)
    return f"{with_unit(m)} {words}" if words else f"{m.value:.1f}"
