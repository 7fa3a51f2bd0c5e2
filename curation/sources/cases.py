"""Imaging cases: one common model for every importer, and the importer of a local case folder.

A :class:`LabelledCase` is what generation needs from a study: the image (optional: a VerSe sample may be labels
only), the label map and the numbering its values follow, the named vertebrae and discs with positions (LPS mm),
per-level findings (gradings from SPIDER/RSNA or a local findings sheet), licence and origin. ``store_case`` writes it
as a source (kind ``case``) with one chunk per level fact, so every label-grounded item points at the label value
or sheet row it came from.

Local case folder (``import_case_folder``)::

    case.json        optional: {"case_id", "modality", "numbering", "image", "labels", "licence", "origin"}
    <image>          DICOM files (any depth; de-identified first, see deid.py), or one NIfTI / MHA file
    <labels>         optional label map (NIfTI/MHA whose name has seg / msk / mask / label); its numbering comes from
                     case.json "numbering" or a sidecar ``labels_<key>.json`` (verse, totalseg, sct ...)
    findings.csv     optional sheet, columns ``level,finding,value[,note]`` (or findings.json: a list of objects)

A case id is never taken from a DICOM header; without case.json it is a salted hash of the folder name.
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.hashing import sha256_file
from core.library.opener import load_volume
from core.spine.anatomy import STANDARD, normalise_level
from core.spine.labelmap import partial_vertebrae
from core.spine.numbering import Numbering, get_numbering
from core.studies.errors import StudyLoadError
from core.studies.loaders import detect_kind
from core.studies.volume import Volume
from curation.sources.mha import read_mha
from curation.store import Chunk, CurationStore, Source

LABEL_WORDS = ("seg", "msk", "mask", "label", "labels", "labeled", "labelled")
_NUMBERING_SIDECARS = {"labels_verse.json": "verse", "labels_totalseg.json": "totalseg", "labels_sct.json": "sct"}


@dataclass
class Finding:
    level: str  # "L4-L5", "L3"
    name: str  # "pfirrmann", "spinal_canal_stenosis", "disc_narrowing"...
    value: str  # "3", "Moderate", "present"
    location: str  # where it came from: "radiological_gradings.csv row 12"
    note: str = ""


@dataclass
class LabelledCase:
    case_id: str  # "verse:sub-verse004"
    dataset: str  # verse | totalseg | spider | rsna | local
    subject: str
    modality: str = ""  # CT | MR | XR | "" (labels only)
    image_path: Path | None = None
    label_path: Path | None = None
    numbering: str = ""  # label numbering (core.spine.numbering key, or "spider")
    vertebrae: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # name -> LPS mm, cranial first
    discs: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    partial: list[str] = field(default_factory=list)  # vertebrae cut by the field of view
    label_values: dict[str, int] = field(default_factory=dict)  # name -> label value in the map
    findings: list[Finding] = field(default_factory=list)
    licence: str = ""
    origin: str = ""
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # importer specifics (e.g. RSNA coordinates)

    @property
    def levels(self) -> list[str]:
        return list(self.vertebrae)

    @property
    def region(self) -> str:
        regions = {STANDARD.region(v) for v in self.vertebrae if v[0] in "CTLS"}
        if not regions:
            return "unknown"
        return next(iter(regions)) if len(regions) == 1 else "-".join(
            r for r in ("cervical", "thoracic", "lumbar", "sacral") if r in regions)


def read_image(path: Path, modality: str | None = None) -> Volume:
    """A NIfTI / MHA file or a DICOM folder (its largest series, core.library.opener) as a Volume in LPS."""
    path = Path(path)
    if path.suffix.lower() in (".mha", ".mhd"):
        return read_mha(path, modality=modality or "MR")
    try:
        vol, _warnings = load_volume(path)
    except StudyLoadError as exc:
        raise ValueError(f"{path}: no image found ({exc.reason})") from exc
    if modality:
        vol.modality = modality
    return vol


def levels_from_labelmap(labelmap: Volume, numbering: Numbering) -> tuple[dict, dict, dict[str, int], list[str]]:
    """(vertebrae, discs, label values, notes) from a label map: body centres (core.spine.reference) in LPS mm."""
    from core.spine.reference import reference_from_labelmap

    ref = reference_from_labelmap(labelmap, numbering)
    data = np.asarray(labelmap.data)
    values = [int(v) for v in np.unique(np.rint(data) if data.dtype.kind == "f" else data) if v != 0]
    label_values: dict[str, int] = {}
    for v in values:
        name = numbering.name_of(v, ref.configuration)
        if name and name not in label_values:
            label_values[name] = v
    return dict(ref.points), dict(ref.discs), label_values, list(ref.notes)


# --- store ----------------------------------------------------------------------------------------------------
def store_case(store: CurationStore, case: LabelledCase) -> str:
    """Write the case as a source plus one chunk per vertebra, disc and finding; returns the source id."""
    source_id = f"case:{case.case_id}"
    files = [p for p in (case.image_path, case.label_path) if p is not None]
    sha = hashlib.sha256()
    for p in files:
        if p.is_file():
            sha.update(sha256_file(p).encode())
    meta = {
        "subject": case.subject, "numbering": case.numbering, "levels": case.levels, "discs": list(case.discs),
        "partial": case.partial,
        # ordered lists (cranial first): the order of the levels is information
        "vertebrae_lps": [[k, *map(float, v)] for k, v in case.vertebrae.items()],
        "discs_lps": [[k, *map(float, v)] for k, v in case.discs.items()], "label_values": case.label_values,
        "image_path": str(case.image_path) if case.image_path else "",
        "label_path": str(case.label_path) if case.label_path else "", "notes": case.notes,
        "findings": [asdict(f) for f in case.findings], "extra": case.extra,
    }
    store.upsert_source(Source(
        id=source_id, kind="case", title=f"{case.dataset} case {case.subject}", path=str(case.label_path or
                                                                                          case.image_path or ""),
        sha256=sha.hexdigest(), licence=case.licence, origin=case.origin, dataset=case.dataset,
        modality=case.modality, region=case.region, meta=meta,
    ))
    label_file = case.label_path.name if case.label_path else "labels"
    for name, pos in case.vertebrae.items():
        value = case.label_values.get(name)
        store.upsert_chunk(Chunk(
            id=f"{source_id}#vertebra-{name}", source_id=source_id,
            location=f"{label_file} label value {value}" if value is not None else f"{label_file} {name}",
            title=f"{case.subject}: vertebra {name}",
            text=f"Vertebra {name} is labelled in the {case.dataset} label map"
                 + (f" with value {value}" if value is not None else "")
                 + f"; body centre at LPS ({pos[0]:.1f}, {pos[1]:.1f}, {pos[2]:.1f}) mm"
                 + ("; cut by the field of view" if name in case.partial else "") + ".",
            levels=[name], meta={"kind": "vertebra", "value": value},
        ))
    for name, pos in case.discs.items():
        value = case.label_values.get(name)
        store.upsert_chunk(Chunk(
            id=f"{source_id}#disc-{name}", source_id=source_id,
            location=f"{label_file} label value {value}" if value is not None else f"{label_file} {name}",
            title=f"{case.subject}: disc {name}",
            text=f"Intervertebral disc {name} is labelled in the {case.dataset} label map"
                 + (f" with value {value}" if value is not None else "")
                 + f"; centre at LPS ({pos[0]:.1f}, {pos[1]:.1f}, {pos[2]:.1f}) mm.",
            levels=[name], meta={"kind": "disc", "value": value},
        ))
    for n, f in enumerate(case.findings):
        store.upsert_chunk(Chunk(
            id=f"{source_id}#finding-{n}-{f.level}-{f.name}", source_id=source_id, location=f.location,
            title=f"{case.subject}: {f.name} at {f.level}",
            text=f"{f.name.replace('_', ' ')} at {f.level}: {f.value}" + (f" ({f.note})" if f.note else ""),
            levels=[f.level], meta={"kind": "finding", "name": f.name, "value": f.value},
        ))
    seen_points: set[str] = set()
    for c in case.extra.get("coordinates", []):
        key = f"point-{c['condition']}-{c['level']}"
        if key in seen_points:
            continue
        seen_points.add(key)
        store.upsert_chunk(Chunk(
            id=f"{source_id}#{key}", source_id=source_id, location=c.get("location", ""),
            title=f"{case.subject}: {c['condition']} annotation at {c['level']}",
            text=(f"{c['condition'].replace('_', ' ')} annotated at {c['level']} on series {c['series_id']} "
                  f"instance {c['instance_number']} at pixel ({c['x']:.0f}, {c['y']:.0f})"),
            levels=[c["level"]], meta={"kind": "point", **{k: c[k] for k in ("series_id", "instance_number")}},
        ))
    return source_id


def case_from_store(row: dict[str, Any]) -> LabelledCase:
    """Rebuild a LabelledCase from its source row (generation works from the store, not the original folder)."""
    meta = row["meta"]
    return LabelledCase(
        case_id=row["id"].removeprefix("case:"), dataset=row["dataset"], subject=meta.get("subject", ""),
        modality=row["modality"], image_path=Path(meta["image_path"]) if meta.get("image_path") else None,
        label_path=Path(meta["label_path"]) if meta.get("label_path") else None, numbering=meta.get("numbering", ""),
        vertebrae={v[0]: tuple(v[1:4]) for v in meta.get("vertebrae_lps", [])},
        discs={v[0]: tuple(v[1:4]) for v in meta.get("discs_lps", [])}, partial=meta.get("partial", []),
        label_values=meta.get("label_values", {}), findings=[Finding(**f) for f in meta.get("findings", [])],
        licence=row["licence"], origin=row["origin"], notes=meta.get("notes", []), extra=meta.get("extra", {}),
    )


# --- local case folders -----------------------------------------------------------------------------------------
def _is_label_name(path: Path) -> bool:
    """BIDS-style names are judged by their suffix (``sub-ct_label-22_ct`` is an image, ``..._msk`` a mask)."""
    stem = path.name.lower().replace(".nii.gz", "").replace(".nii", "").replace(".mha", "")
    parts = stem.split("_")
    if any("-" in p for p in parts[:-1]):
        return parts[-1] in LABEL_WORDS or parts[-1] in ("dseg", "ctd")
    return bool(set(stem.replace("-", "_").split("_")) & set(LABEL_WORDS))


def _looks_like_labelmap(path: Path, max_values: int = 1000) -> bool:
    """A label-like name and integral content with few distinct values (an image named 'label-22' is not one)."""
    if not _is_label_name(path):
        return False
    try:
        data = np.asarray(read_image(path).data)
    except (ValueError, OSError):
        return False
    if data.dtype.kind == "f" and not np.array_equal(data, np.rint(data)):
        return False
    return len(np.unique(data)) <= max_values


def read_findings(folder: Path) -> list[Finding]:
    """findings.csv (level,finding,value[,note]) or findings.json; levels are normalised (``l4/5`` -> L4-L5)."""
    out: list[Finding] = []
    csv_path, json_path = folder / "findings.csv", folder / "findings.json"
    rows: list[tuple[str, dict[str, Any]]] = []
    if csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"level", "finding", "value"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{csv_path}: missing column(s) {sorted(missing)} (need level,finding,value[,note])")
            rows += [(f"findings.csv row {n}", r) for n, r in enumerate(reader, start=2)]
    if json_path.is_file():
        data = json.loads(json_path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ValueError(f"{json_path}: expected a list of {{level, finding, value}} objects")
        rows += [(f"findings.json item {n}", r) for n, r in enumerate(data)]
    for where, r in rows:
        level = normalise_level(str(r.get("level", "")))
        if not level or level == "all":
            raise ValueError(f"{folder.name}/{where}: invalid level {r.get('level')!r}")
        out.append(Finding(level=level, name=str(r["finding"]).strip(), value=str(r["value"]).strip(),
                           location=where, note=str(r.get("note") or "").strip()))
    return out


def import_case_folder(folder: Path | str, *, case_id: str | None = None, workdir: Path | None = None,
                       salt: bytes | None = None, dataset: str = "local") -> tuple[LabelledCase, list[str]]:
    """Read a case folder (see module docstring). DICOM files are de-identified into ``workdir`` first (salt
    required) and the case then refers to the de-identified copies. Returns (case, messages for the user)."""
    from curation.sources.deid import deidentify_folder

    folder = Path(folder)
    messages: list[str] = []
    cfg: dict[str, Any] = {}
    if (folder / "case.json").is_file():
        cfg = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    if case_id is None:
        case_id = cfg.get("case_id")
    if case_id is None:
        if salt is None:
            raise ValueError(f"{folder}: give a case id (case.json or --case-id) or a salt to derive one")
        case_id = "local-" + hashlib.sha256(salt + folder.name.encode()).hexdigest()[:10]
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    kinds = {p: detect_kind(p) for p in files}
    volumes = [p for p in files if kinds[p] == "nifti" or p.suffix.lower() == ".mha"]
    dicoms = [p for p in files if kinds[p] == "dicom"]
    label_path = folder / cfg["labels"] if cfg.get("labels") else None
    label_maps = [p for p in volumes if _looks_like_labelmap(p)]
    if label_path is None:
        label_path = _best_label(label_maps, folder, cfg)
    image_path: Path | None = folder / cfg["image"] if cfg.get("image") else None
    pixel_files: list[Path] = []
    if image_path is None and dicoms:
        if salt is None or workdir is None:
            raise ValueError(f"{folder}: DICOM files must be de-identified: give workdir and salt")
        out = Path(workdir) / "deidentified" / case_id
        reports, refused = deidentify_folder(folder, out, salt)
        messages += [f"refused: {r}" for r in refused]
        for rep in reports:
            messages += [f"{rep.output.name if rep.output else rep.source.name}: {flag}" for flag in rep.flags]
        if reports:
            image_path = out
            pixel_files = [r.output for r in reports if r.output]
        cfg.setdefault("_name_hashes", {}).update({h: o for r in reports for h, o in r.name_hashes.items()})
    elif image_path is None:
        images = [p for p in volumes if p not in label_maps and p != label_path]
        image_path = max(images, key=lambda p: p.stat().st_size) if images else None
    readme_licence, readme_origin = readme_provenance(folder)
    case = LabelledCase(case_id=case_id, dataset=dataset, subject=cfg.get("subject", case_id),
                        modality=cfg.get("modality", ""), image_path=image_path, label_path=label_path,
                        licence=cfg.get("licence") or readme_licence, origin=cfg.get("origin") or readme_origin)
    if image_path is not None and not case.modality:
        try:
            case.modality = read_image(image_path).modality
        except (ValueError, OSError) as exc:
            messages.append(f"image could not be read: {exc}")
    if label_path is not None:
        key = cfg.get("numbering") or _sidecar_numbering(folder)
        if not key:
            messages.append(f"{label_path.name}: no numbering known (case.json 'numbering' or labels_<key>.json): "
                            "levels not named")
        else:
            try:
                numbering = get_numbering(key)
            except KeyError as exc:
                messages.append(f"{label_path.name}: {exc.args[0]}; levels not named")
            else:
                labelmap = read_image(label_path)
                case.numbering = key
                (case.vertebrae, case.discs, case.label_values, notes) = levels_from_labelmap(labelmap, numbering)
                case.partial = partial_vertebrae(labelmap, case.label_values)
                case.notes += notes
    case.findings = read_findings(folder)
    case.extra["name_hashes"] = cfg.get("_name_hashes", {})
    if pixel_files:
        case.extra["dicom_files"] = len(pixel_files)
    if not case.vertebrae:
        messages.append(f"{case_id}: no named vertebrae: no level-grounded items can be made from this case")
    return case, messages


def readme_provenance(folder: Path) -> tuple[str, str]:
    """(licence, origin) lines from a README.txt beside the data (as in the shared samples), or ('', '')."""
    readme = folder / "README.txt"
    if not readme.is_file():
        return "", ""
    lines = [ln.strip() for ln in readme.read_text(encoding="utf-8", errors="replace").splitlines()]
    licence = origin = ""
    for i, line in enumerate(lines):
        low = line.lower()
        if not licence and (low.startswith(("licence", "license"))):
            rest = line.split(":", 1)[1].strip() if ":" in line else ""
            licence = rest or (lines[i + 1] if i + 1 < len(lines) else "")
        if not origin and (low.startswith(("repo:", "origin"))):
            rest = line.split(":", 1)[1].strip() if ":" in line else ""
            origin = rest or (lines[i + 1] if i + 1 < len(lines) else "")
    return licence[:300], origin[:300]


def _sidecar_numbering(folder: Path) -> str | None:
    for name, key in _NUMBERING_SIDECARS.items():
        if (folder / name).is_file():
            return key
    return None


def _best_label(candidates: list[Path], folder: Path, cfg: dict[str, Any]) -> Path | None:
    """Among label-like files, the one whose values name the most levels (vertebra masks beat sub-region masks)."""
    if not candidates:
        return None
    key = cfg.get("numbering") or _sidecar_numbering(folder)
    if not key or len(candidates) == 1:
        return candidates[0]
    try:
        numbering = get_numbering(key)
    except KeyError:
        return candidates[0]

    def named(p: Path) -> int:
        try:
            data = np.asarray(read_image(p).data)
        except (ValueError, OSError):
            return -1
        values = np.unique(np.rint(data).astype(np.int64)) if data.dtype.kind == "f" else np.unique(data)
        return sum(1 for v in values if v and numbering.name_of(int(v)))

    return max(candidates, key=named)
