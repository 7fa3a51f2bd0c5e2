"""Key images of labelled cases as small PNGs (Pillow): a sagittal plane through the labelled vertebrae, with level
labels and markers drawn from the labels, never from a model.

The plane is resampled in patient space (LPS mm, 1 mm pixels by default) at the median left-right position of the
vertebral centres, so an image and a label map on different grids (a DICOM series and a NIfTI mask) render
together. Display convention: anterior to the left, superior at the top. Without an image (a VerSe mask alone) the
label map itself is drawn, one grey shade per vertebra. A 2D instance (RSNA) is drawn as stored with its annotated
points. Output PNGs are palette-quantised to stay small.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from core.studies.volume import Volume
from curation.sources.cases import LabelledCase, read_image

MARKER = (255, 64, 64)
LABEL_BG = (0, 0, 0)
LABEL_FG = (255, 230, 90)
DISC_MARKER = (80, 200, 255)


@dataclass
class SagittalView:
    """A resampled sagittal plane: ``gray`` (H, W) uint8, and the mm -> pixel mapping of its grid."""

    gray: np.ndarray
    y0: float  # LPS y (mm) of column 0
    z_top: float  # LPS z (mm) of row 0
    mm_per_px: float
    x_plane: float
    notes: list[str] = field(default_factory=list)

    def to_px(self, point: tuple[float, float, float]) -> tuple[float, float]:
        return ((point[1] - self.y0) / self.mm_per_px, (self.z_top - point[2]) / self.mm_per_px)


def _sample(vol: Volume, points: np.ndarray, order: int) -> np.ndarray:
    """Values of ``vol`` at LPS points (N, 3); outside the volume: nan (order 1) or 0 (order 0)."""
    ijk = vol.patient_to_voxel(points).T
    data = np.asarray(vol.data)
    if order == 0:
        idx = np.rint(ijk).astype(int)
        inside = np.all((idx >= 0) & (idx < np.array(data.shape)[:, None]), axis=0)
        out = np.zeros(points.shape[0], dtype=np.int32)
        out[inside] = data[idx[0, inside], idx[1, inside], idx[2, inside]]
        return out
    values = ndimage.map_coordinates(data.astype(np.float32), ijk, order=1, mode="constant", cval=np.nan)
    return values


def _bounds(vol: Volume) -> np.ndarray:
    shape = np.array(vol.shape) - 1
    corners = np.array([[i, j, k] for i in (0, shape[0]) for j in (0, shape[1]) for k in (0, shape[2])], float)
    pts = vol.voxel_to_patient(corners)
    return np.array([pts.min(axis=0), pts.max(axis=0)])


def sagittal_view(case: LabelledCase, mm_per_px: float = 1.0, margin_mm: float = 45.0) -> SagittalView:
    """Resample the case's image (or label map) on the sagittal plane through its vertebrae."""
    if not case.vertebrae:
        raise ValueError(f"{case.case_id}: no labelled vertebrae to render")
    image = read_image(case.image_path, case.modality or None) if case.image_path else None
    labels = read_image(case.label_path) if case.label_path else None
    ref = image if image is not None else labels
    if ref is None:
        raise ValueError(f"{case.case_id}: neither image nor label map to render")
    pts = np.array(list(case.vertebrae.values()), dtype=float)
    box = _bounds(ref)
    x_plane = float(np.median(pts[:, 0]))
    y_lo = max(box[0, 1], pts[:, 1].min() - margin_mm)
    y_hi = min(box[1, 1], pts[:, 1].max() + margin_mm)
    z_lo = max(box[0, 2], pts[:, 2].min() - margin_mm)
    z_hi = min(box[1, 2], pts[:, 2].max() + margin_mm)
    if y_hi - y_lo < 10 or z_hi - z_lo < 4:
        raise ValueError(f"{case.case_id}: the field of view is too small for a sagittal key image")
    ys = np.arange(y_lo, y_hi, mm_per_px)
    zs = np.arange(z_hi, z_lo, -mm_per_px)
    grid_z, grid_y = np.meshgrid(zs, ys, indexing="ij")
    points = np.stack([np.full(grid_y.size, x_plane), grid_y.ravel(), grid_z.ravel()], axis=1)
    notes = []
    if image is not None:
        values = _sample(image, points, order=1).reshape(grid_y.shape)
        finite = values[np.isfinite(values)]
        lo, hi = (np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0))
        if image.modality == "CT":
            lo, hi = max(lo, -300.0), min(max(hi, 400.0), 1500.0)
        gray = np.clip((np.nan_to_num(values, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1)
        gray = (gray * 255).astype(np.uint8)
    else:
        lab = _sample(labels, points, order=0).reshape(grid_y.shape)
        gray = np.zeros(lab.shape, dtype=np.uint8)
        for n, value in enumerate(sorted(set(case.label_values.values()))):
            gray[lab == value] = 150 if n % 2 == 0 else 220
        gray[(lab != 0) & (gray == 0)] = 90
        notes.append("no image available: the label map is drawn (one grey shade per labelled structure)")
    return SagittalView(gray=gray, y0=float(ys[0]), z_top=float(zs[0]), mm_per_px=mm_per_px, x_plane=x_plane,
                        notes=notes)


def _palette_image() -> Image.Image:
    """48 grey levels plus the marker and label colours, so quantising keeps the markers' colours exact."""
    colours = [(round(v), round(v), round(v)) for v in np.linspace(0, 255, 48)]
    colours += [MARKER, LABEL_FG, LABEL_BG, DISC_MARKER]
    flat = [c for rgb in colours for c in rgb]
    pal = Image.new("P", (1, 1))
    pal.putpalette(flat + flat[-3:] * (256 - len(colours)))
    return pal


def _save(img: Image.Image, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    img.quantize(palette=_palette_image(), dither=Image.Dither.NONE).save(out, optimize=True)
    return out


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font) -> None:
    x, y = xy
    box = draw.textbbox((0, 0), text, font=font)
    w, h = box[2] - box[0], box[3] - box[1]
    x = max(2, x - w - 4)
    y = y - h / 2 - box[1]
    draw.rectangle([x - 2, y + box[1] - 2, x + w + 2, y + box[3] + 2], fill=LABEL_BG)
    draw.text((x, y), text, fill=LABEL_FG, font=font)


def draw_key_image(view: SagittalView, out: Path, *, labels: dict[str, tuple[float, float, float]] | None = None,
                   markers: list[tuple[float, float, float]] | None = None,
                   disc_markers: list[tuple[float, float, float]] | None = None, height: int = 256) -> Path:
    """Write a PNG: the plane, text labels at the given (LPS) points, red ring markers, blue disc markers."""
    h, w = view.gray.shape
    scale = height / h
    size = (max(16, round(w * scale)), height)
    img = Image.fromarray(view.gray, mode="L").resize(size, Image.Resampling.BILINEAR).convert("RGB")
    draw = ImageDraw.Draw(img)
    font = _font(max(11, height // 24))
    radius = max(5, height // 40)
    for point in markers or []:
        px, py = view.to_px(point)
        cx, cy = px * scale, py * scale
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=MARKER, width=3)
        draw.line([cx - 3 * radius, cy, cx - radius - 1, cy], fill=MARKER, width=3)
    for point in disc_markers or []:
        px, py = view.to_px(point)
        cx, cy = px * scale, py * scale
        draw.rectangle([cx - radius, cy - radius / 2, cx + radius, cy + radius / 2], outline=DISC_MARKER, width=2)
    for name, point in (labels or {}).items():
        px, py = view.to_px(point)
        _label(draw, (px * scale - 3 * radius, py * scale), name, font)
    return _save(img, out)


def render_instance(dicom_path: Path, out: Path, points: list[tuple[float, float]] | None = None,
                    height: int = 256) -> Path:
    """A 2D DICOM instance (e.g. RSNA) with ring markers at pixel coordinates (x = column, y = row)."""
    import pydicom

    ds = pydicom.dcmread(dicom_path)
    arr = ds.pixel_array.astype(np.float32)
    lo, hi = np.percentile(arr, [1, 99.5])
    gray = (np.clip((arr - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)
    scale = height / gray.shape[0]
    img = Image.fromarray(gray, mode="L").resize((max(16, round(gray.shape[1] * scale)), height)).convert("RGB")
    draw = ImageDraw.Draw(img)
    radius = max(5, height // 40)
    for x, y in points or []:
        cx, cy = x * scale, y * scale
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=MARKER, width=3)
    return _save(img, out)
