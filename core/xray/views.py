"""Which radiographs the AP landmark model may read: refuse, with the reason, what its DICOM header says it is not.

The landmark model was trained on AP (or PA) radiographs of the thoracic and lumbar spine only. A lateral or oblique
radiograph, or a CT localiser (scout, topogram, scanogram: a low-dose planning projection made by the CT scanner),
must get a message naming the file and why, not 17 vertebrae. The header says so in:

- ``ViewPosition`` (0018,5101), DICOM defined terms: ``AP``, ``PA`` accepted; ``LL``/``RL`` (lateral), ``LLO``/``RLO``
  (oblique), ``RLD``/``LLD`` (decubitus) and the others refused;
- ``ViewCodeSequence`` (0054,0220): a code meaning with "lateral" or "oblique";
- ``ImageType`` (0008,0008) with ``LOCALIZER``, or a CT/MR/PET single image (a slice, not a projection radiograph);
- ``SeriesDescription`` / ``ProtocolName`` naming a lateral view or a scout (words such as "lateral", "LAT",
  "scout", "topogram", "localizer") without naming AP or PA.

A PNG or JPEG has no header: nothing is known beyond the image, which the model's own confidence check reads.
"""
from __future__ import annotations

import re
from pathlib import Path

ACCEPTED_VIEWS = {"AP", "PA", ""}
VIEW_NAMES = {"LL": "left lateral", "RL": "right lateral", "LLO": "left oblique", "RLO": "right oblique",
              "RLD": "right lateral decubitus", "LLD": "left lateral decubitus", "LATERAL": "lateral",
              "LAT": "lateral", "OBLIQUE": "oblique"}
_LATERAL_WORDS = re.compile(r"\b(lat|lateral|sagittal|oblique|obl)\b", re.IGNORECASE)
_SCOUT_WORDS = re.compile(r"\b(scout|topogram|topo|localizer|localiser|scanogram|surview|pilot)\b", re.IGNORECASE)
_AP_WORDS = re.compile(r"\b(ap|pa|frontal|coronal|a\.p\.|p\.a\.)\b", re.IGNORECASE)
NOT_READ = "the landmark model reads AP (or PA) radiographs of the thoracic and lumbar spine only"


def header_problems(ds) -> list[str]:
    """Why a radiograph with this DICOM header (pydicom Dataset) is not an AP spine radiograph; [] when nothing
    says so."""
    problems = []
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    modality = str(ds.get("Modality", "") or "").upper()
    if "LOCALIZER" in image_type:
        kind = "/".join(image_type)
        problems.append(f"a {modality + ' ' if modality else ''}localiser (scout) image (ImageType {kind}): a "
                        "low-dose planning projection, not a diagnostic radiograph")
    elif modality in ("CT", "MR", "PT", "NM", "US"):
        problems.append(f"a single {modality} image, not a projection radiograph")
    view = str(ds.get("ViewPosition", "") or "").strip().upper()
    if view not in ACCEPTED_VIEWS:
        problems.append(f"a {VIEW_NAMES.get(view, 'non-AP')} view (ViewPosition {view})")
    for item in ds.get("ViewCodeSequence") or []:
        meaning = str(item.get("CodeMeaning", "") or "")
        if re.search(r"lateral|oblique", meaning, re.IGNORECASE) and not problems:
            problems.append(f"a {meaning.lower()} view (ViewCodeSequence)")
    if not problems:
        for key in ("SeriesDescription", "ProtocolName"):
            text = str(ds.get(key, "") or "")
            if _SCOUT_WORDS.search(text):
                problems.append(f"a localiser (scout) image ({key} '{text}')")
                break
            if _LATERAL_WORDS.search(text) and not _AP_WORDS.search(text):
                problems.append(f"a lateral or oblique view ({key} '{text}')")
                break
    return problems


def refusal(path, problems: list[str]) -> str:
    """One message naming the file, what it is, and what the model reads."""
    return f"{Path(path).name}: {'; '.join(problems)}; {NOT_READ}."


def volume_refusal(volume) -> str:
    """'' when a loaded radiograph may be given to the AP landmark model, else the message why not (from the DICOM
    header of its first file; PNG/JPEG give '')."""
    from core.xray.header import radiograph_header

    ds = radiograph_header(volume)
    problems = header_problems(ds) if ds is not None else []
    return refusal(volume.source_paths[0], problems) if problems else ""
