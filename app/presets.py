"""Window/level and volume-rendering presets, loaded and validated from resources/presets/*.json (no Qt, no VTK).

Volume-rendering points use either absolute values (Hounsfield units for CT) or, for MR whose intensities have
no fixed scale, percentiles of the volume's intensities (``value_mode: "percentile"``), turned into absolute
values for one volume by :meth:`VolumeRenderingPreset.resolve`.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.imaging import percentile_window, sample_values

PRESETS_DIR = Path(__file__).resolve().parent.parent / "resources" / "presets"
WINDOW_LEVEL_FILE = PRESETS_DIR / "window_level.json"
VOLUME_RENDERING_FILE = PRESETS_DIR / "volume_rendering.json"

VALUE_MODES = ("absolute", "percentile")


class PresetError(ValueError):
    """A preset file is malformed; the message names the file and the offending entry."""


@dataclass(frozen=True)
class WindowLevelPreset:
    name: str
    label: str
    description: str
    modalities: tuple[str, ...]
    window: float | None = None
    level: float | None = None
    auto_percentiles: tuple[float, float] | None = None

    def resolve(self, data: np.ndarray | None) -> tuple[float, float]:
        """(window, level) for ``data``; percentile presets need the volume's intensities."""
        if self.auto_percentiles is not None:
            if data is None:
                raise ValueError(f"preset {self.name!r} needs the volume data")
            return percentile_window(data, *self.auto_percentiles)
        return float(self.window), float(self.level)  # type: ignore[arg-type]


@dataclass(frozen=True)
class VolumeRenderingPreset:
    name: str
    label: str
    description: str
    modalities: tuple[str, ...]
    value_mode: str
    color: tuple[tuple[float, float, float, float], ...]  # (value, r, g, b)
    opacity: tuple[tuple[float, float], ...]  # (value, alpha)
    shade: bool = True
    ambient: float = 0.2
    diffuse: float = 0.8
    specular: float = 0.1

    def resolve(self, data: np.ndarray) -> VolumeRenderingPreset:
        """The same preset with absolute values for ``data`` (a no-op for absolute presets)."""
        if self.value_mode == "absolute":
            return self
        to_abs = _percentile_mapper(data, [p[0] for p in self.color] + [p[0] for p in self.opacity])
        return VolumeRenderingPreset(
            name=self.name,
            label=self.label,
            description=self.description,
            modalities=self.modalities,
            value_mode="absolute",
            color=tuple((to_abs(v), r, g, b) for v, r, g, b in self.color),
            opacity=tuple((to_abs(v), a) for v, a in self.opacity),
            shade=self.shade,
            ambient=self.ambient,
            diffuse=self.diffuse,
            specular=self.specular,
        )


@dataclass(frozen=True)
class IsosurfacePreset:
    name: str
    label: str
    description: str
    modalities: tuple[str, ...]
    value_mode: str
    value: float
    color: tuple[float, float, float]

    def absolute_value(self, data: np.ndarray) -> float:
        if self.value_mode == "absolute":
            return float(self.value)
        return float(np.percentile(sample_values(data), self.value))


@dataclass(frozen=True)
class WindowLevelPresets:
    presets: tuple[WindowLevelPreset, ...]
    default_by_modality: dict[str, str]

    def get(self, name: str) -> WindowLevelPreset:
        for preset in self.presets:
            if preset.name == name:
                return preset
        raise KeyError(name)

    def default_for(self, modality: str) -> WindowLevelPreset:
        return self.get(self.default_by_modality.get(modality, self.default_by_modality["*"]))


@dataclass(frozen=True)
class VolumeRenderingPresets:
    presets: tuple[VolumeRenderingPreset, ...]
    isosurfaces: tuple[IsosurfacePreset, ...]
    default_by_modality: dict[str, str]

    def get(self, name: str) -> VolumeRenderingPreset | IsosurfacePreset:
        for preset in (*self.presets, *self.isosurfaces):
            if preset.name == name:
                return preset
        raise KeyError(name)

    def default_for(self, modality: str) -> VolumeRenderingPreset:
        preset = self.get(self.default_by_modality.get(modality, self.default_by_modality["*"]))
        assert isinstance(preset, VolumeRenderingPreset)
        return preset

    def isosurface_for(self, modality: str) -> IsosurfacePreset:
        """The isosurface preset meant for ``modality`` (the first listed one when none matches)."""
        for iso in self.isosurfaces:
            if modality in iso.modalities:
                return iso
        return self.isosurfaces[-1]


def _percentile_mapper(data: np.ndarray, percentiles: list[float]):
    """Percentile -> intensity for ``data``, strictly increasing in the percentile.

    Flat histograms (e.g. a zero background covering 40% of an MR) map distinct percentiles onto one value;
    transfer-function points must stay distinct, so equal values are nudged apart.
    """
    samples = sample_values(data)
    unique = sorted(set(percentiles))
    values = np.percentile(samples, unique) if samples.size else np.zeros(len(unique))
    span = float(values[-1] - values[0]) if len(values) > 1 else 0.0
    eps = max(span * 1e-4, 1e-3)
    table: dict[float, float] = {}
    previous = -np.inf
    for p, v in zip(unique, values):
        v = max(float(v), previous + eps)
        table[p] = v
        previous = v
    return table.__getitem__


def _fail(path: Path, where: str, why: str) -> PresetError:
    return PresetError(f"{path.name}: {where}: {why}")


def _require(entry: dict, keys: tuple[str, ...], path: Path, where: str) -> None:
    missing = [k for k in keys if k not in entry]
    if missing:
        raise _fail(path, where, f"missing key(s) {', '.join(missing)}")


def _check_increasing(values: list[float], path: Path, where: str) -> None:
    if len(values) < 2:
        raise _fail(path, where, "needs at least two points")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise _fail(path, where, f"point values must be strictly increasing, got {values}")


def _check_unit(values, path: Path, where: str) -> None:
    for v in values:
        if not 0.0 <= float(v) <= 1.0:
            raise _fail(path, where, f"value {v} outside 0..1")


def _check_value_range(values, mode: str, path: Path, where: str) -> None:
    if mode == "percentile" and any(not 0.0 <= v <= 100.0 for v in values):
        raise _fail(path, where, f"percentile values must be within 0..100, got {values}")
    if mode == "absolute" and any(not -5000.0 <= v <= 100000.0 for v in values):
        raise _fail(path, where, f"values {values} are implausible")


def _check_defaults(defaults: dict, names: set[str], path: Path) -> dict[str, str]:
    if "*" not in defaults:
        raise _fail(path, "default_by_modality", "needs a '*' fallback entry")
    for modality, name in defaults.items():
        if name not in names:
            raise _fail(path, f"default_by_modality[{modality}]", f"unknown preset {name!r}")
    return dict(defaults)


def _read(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PresetError(f"{Path(path).name}: cannot read presets: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("presets"), list) or not doc["presets"]:
        raise PresetError(f"{Path(path).name}: needs a non-empty 'presets' list")
    return doc


def _unique_names(entries: list[dict], path: Path) -> set[str]:
    names = [e["name"] for e in entries]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise _fail(path, "presets", f"duplicate names {sorted(dupes)}")
    return set(names)


def parse_window_level(doc: dict, path: Path = WINDOW_LEVEL_FILE) -> WindowLevelPresets:
    presets = []
    for n, entry in enumerate(doc["presets"]):
        where = f"presets[{n}]"
        _require(entry, ("name", "label", "description", "modalities"), path, where)
        where = f"preset {entry['name']!r}"
        auto = entry.get("auto_percentiles")
        if auto is not None:
            if len(auto) != 2 or not 0 <= auto[0] < auto[1] <= 100:
                raise _fail(path, where, f"auto_percentiles must be [low, high] within 0..100, got {auto}")
            presets.append(
                WindowLevelPreset(
                    entry["name"], entry["label"], entry["description"], tuple(entry["modalities"]),
                    auto_percentiles=(float(auto[0]), float(auto[1])),
                )
            )
            continue
        _require(entry, ("window", "level"), path, where)
        if float(entry["window"]) <= 0:
            raise _fail(path, where, "window must be positive")
        presets.append(
            WindowLevelPreset(
                entry["name"], entry["label"], entry["description"], tuple(entry["modalities"]),
                window=float(entry["window"]), level=float(entry["level"]),
            )
        )
    names = _unique_names(doc["presets"], path)
    defaults = _check_defaults(doc.get("default_by_modality", {}), names, path)
    return WindowLevelPresets(tuple(presets), defaults)


def _parse_vr(entry: dict, path: Path, n: int) -> VolumeRenderingPreset:
    _require(entry, ("name", "label", "description", "modalities", "value_mode", "color", "opacity"), path,
             f"presets[{n}]")
    where = f"preset {entry['name']!r}"
    mode = entry["value_mode"]
    if mode not in VALUE_MODES:
        raise _fail(path, where, f"value_mode must be one of {VALUE_MODES}")
    color, opacity = entry["color"], entry["opacity"]
    if any(len(p) != 4 for p in color):
        raise _fail(path, where + " color", "points must be [value, r, g, b]")
    if any(len(p) != 2 for p in opacity):
        raise _fail(path, where + " opacity", "points must be [value, alpha]")
    _check_increasing([float(p[0]) for p in color], path, where + " color")
    _check_increasing([float(p[0]) for p in opacity], path, where + " opacity")
    _check_value_range([float(p[0]) for p in color + opacity], mode, path, where)
    _check_unit([c for p in color for c in p[1:]], path, where + " color")
    _check_unit([p[1] for p in opacity], path, where + " opacity")
    lighting = {k: float(entry.get(k, d)) for k, d in (("ambient", 0.2), ("diffuse", 0.8), ("specular", 0.1))}
    _check_unit(lighting.values(), path, where + " lighting")
    return VolumeRenderingPreset(
        name=entry["name"],
        label=entry["label"],
        description=entry["description"],
        modalities=tuple(entry["modalities"]),
        value_mode=mode,
        color=tuple(tuple(float(x) for x in p) for p in color),  # type: ignore[misc]
        opacity=tuple((float(v), float(a)) for v, a in opacity),
        shade=bool(entry.get("shade", True)),
        **lighting,
    )


def _parse_iso(entry: dict, path: Path, n: int) -> IsosurfacePreset:
    _require(entry, ("name", "label", "description", "modalities", "value_mode", "value", "color"), path,
             f"isosurfaces[{n}]")
    where = f"isosurface {entry['name']!r}"
    if entry["value_mode"] not in VALUE_MODES:
        raise _fail(path, where, f"value_mode must be one of {VALUE_MODES}")
    _check_value_range([float(entry["value"])], entry["value_mode"], path, where)
    if len(entry["color"]) != 3:
        raise _fail(path, where, "color must be [r, g, b]")
    _check_unit(entry["color"], path, where + " color")
    return IsosurfacePreset(
        name=entry["name"],
        label=entry["label"],
        description=entry["description"],
        modalities=tuple(entry["modalities"]),
        value_mode=entry["value_mode"],
        value=float(entry["value"]),
        color=tuple(float(c) for c in entry["color"]),  # type: ignore[arg-type]
    )


def parse_volume_rendering(doc: dict, path: Path = VOLUME_RENDERING_FILE) -> VolumeRenderingPresets:
    presets = tuple(_parse_vr(e, path, n) for n, e in enumerate(doc["presets"]))
    isos = tuple(_parse_iso(e, path, n) for n, e in enumerate(doc.get("isosurfaces", [])))
    if not isos:
        raise _fail(path, "isosurfaces", "needs at least one isosurface preset")
    _unique_names(list(doc["presets"]) + list(doc["isosurfaces"]), path)
    defaults = _check_defaults(doc.get("default_by_modality", {}), {p.name for p in presets}, path)
    return VolumeRenderingPresets(presets, isos, defaults)


def load_window_level_presets(path: Path = WINDOW_LEVEL_FILE) -> WindowLevelPresets:
    return parse_window_level(_read(path), Path(path))


def load_volume_rendering_presets(path: Path = VOLUME_RENDERING_FILE) -> VolumeRenderingPresets:
    return parse_volume_rendering(_read(path), Path(path))
