"""The key images that go with a question to a model that sees images (a GGUF with its projector, or a server
declared vision-capable): the selected level's sagittal and axial slices through its centre, windowed, with the level
drawn, as PNG. A plain radiograph is sent as it is, with the level marked. Pillow + numpy, no Qt.

    images = level_key_images(volume, labelling, "L4-L5")   # [LevelImage(png, caption), ...]; [] when not labelled
    consultation.ask(question, "L4-L5", images=[im.png for im in images])

Orientation follows the viewer: sagittal with superior at the top and anterior to the left; axial seen from the
feet (the patient's right on the image's left, anterior at the top). Slices are resampled to square millimetres and
scaled to ``LONG_SIDE`` pixels on their long side, which is what small vision encoders resize to anyway.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LONG_SIDE = 448
LEVEL_RGB, PLANE_RGB = (0, 220, 255), (255, 215, 0)


@dataclass(frozen=True)
class LevelImage:
    png: bytes
    caption: str


def level_position(labelling: Any, level: str) -> tuple[float, float, float] | None:
    """LPS centre of ``level`` in a core.spine.labelling.SpineLabelling: a vertebra's centroid or a disc's centre."""
    if labelling is None or not level:
        return None
    for v in getattr(labelling, "vertebrae", []) or []:
        if v.name == level:
            return tuple(float(c) for c in v.centroid)
    for d in getattr(labelling, "discs", []) or []:
        if d.name == level:
            return tuple(float(c) for c in d.centre)
    return None


def level_key_images(volume: Any, labelling: Any, level: str | None) -> list[LevelImage]:
    """Sagittal and axial slices through ``level`` (one image for a radiograph); [] when the level is not in the
    labelling (nothing is sent rather than a slice that may not show it)."""
    position = level_position(labelling, level or "")
    if volume is None or position is None:
        return []
    if volume.is_2d:
        ijk = volume.patient_to_voxel(position)
        plane = volume.data[:, :, 0].T.astype(np.float32)  # rows j, columns i
        spacing = (volume.spacing[1], volume.spacing[0])
        image = _draw(plane, spacing, volume.modality, (ijk[1], ijk[0]), level, None)
        return [LevelImage(image, f"Radiograph with {level} marked")]
    vol = volume.as_closest_lps()
    i, j, k = (int(np.clip(round(float(c)), 0, n - 1)) for c, n in zip(vol.patient_to_voxel(position), vol.shape))
    nk = vol.shape[2]
    sagittal = np.flipud(vol.data[i, :, :].astype(np.float32).T)  # rows: superior at the top; columns: anterior left
    sag = _draw(sagittal, (vol.spacing[2], vol.spacing[1]), volume.modality, (nk - 1 - k, j), level, nk - 1 - k)
    axial = vol.data[:, :, k].astype(np.float32).T  # rows j (anterior at the top), columns i (patient's right left)
    ax = _draw(axial, (vol.spacing[1], vol.spacing[0]), volume.modality, (j, i), level, None)
    x_mm, z_mm = position[0], position[2]
    return [LevelImage(sag, f"Sagittal slice through {level} (x = {x_mm:.1f} mm), anterior to the left; the line "
                            "marks the axial slice"),
            LevelImage(ax, f"Axial slice through {level} (z = {z_mm:.1f} mm), seen from the feet")]


def _gray(plane: np.ndarray, modality: str) -> np.ndarray:
    if (modality or "").upper() == "CT":  # bone window W1500/L500, as the report's key image
        return (np.clip((plane + 250.0) / 1500.0, 0, 1) * 255).astype(np.uint8)
    lo, hi = np.percentile(plane, [1, 99]) if plane.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1
    return (np.clip((plane - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _draw(plane: np.ndarray, spacing_rc: tuple[float, float], modality: str, at_rc: tuple[float, float],
          level: str, line_row: int | None) -> bytes:
    height_mm, width_mm = plane.shape[0] * spacing_rc[0], plane.shape[1] * spacing_rc[1]
    scale = LONG_SIDE / max(height_mm, width_mm)  # pixels per mm
    size = (max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
    img = Image.fromarray(_gray(plane, modality)).resize(size, Image.Resampling.BICUBIC).convert("RGB")
    draw = ImageDraw.Draw(img)
    sy, sx = size[1] / plane.shape[0], size[0] / plane.shape[1]
    y, x = (at_rc[0] + 0.5) * sy, (at_rc[1] + 0.5) * sx
    if line_row is not None:
        ly = (line_row + 0.5) * sy
        draw.line([(0, ly), (size[0], ly)], fill=PLANE_RGB, width=1)
    r = max(6, round(8 * LONG_SIDE / 448))
    draw.ellipse([x - r, y - r, x + r, y + r], outline=LEVEL_RGB, width=2)
    try:
        font = ImageFont.load_default(size=16)
    except TypeError:  # Pillow without FreeType
        font = ImageFont.load_default()
    tx = x + r + 4 if x + r + 4 + draw.textlength(level, font=font) < size[0] else x - r - 4 - draw.textlength(
        level, font=font)
    draw.text((tx, y - 9), level, fill=LEVEL_RGB, font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
