"""The key image of a report: a mid-sagittal view of the volume with the level labels drawn (Pillow + numpy, no Qt).

The sagittal plane is taken at the median left-right position of the labelled levels (the middle of the volume when
there are none), cropped around the labelled column, resampled to square millimetres, windowed (bone window for
CT) and labelled: vertebrae in cyan, discs in yellow, each name beside its position. A plain radiograph is used as
it is, with the labels at their projected positions.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.library.thumbnails import window
from core.report.model import SpineReport
from core.studies.volume import Volume

CROP_MM = 70.0  # half-width of the crop around the labelled column (anterior-posterior)
TARGET_WIDTH = 900
VERTEBRA_RGB, DISC_RGB = (0, 220, 255), (255, 215, 0)


@dataclass
class KeyImage:
    png: bytes
    caption: str
    width: int
    height: int


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType
        return ImageFont.load_default()


def _labels(report: SpineReport) -> list[tuple[str, str, tuple[float, float, float]]]:
    return [(r.level, r.kind, r.position) for r in report.levels if r.position is not None]


def render_key_image(volume: Volume, report: SpineReport) -> KeyImage:
    labels = _labels(report)
    if volume.is_2d:
        plane = volume.data[:, :, 0].T.astype(np.float32)  # rows j, cols i
        spacing_rc = (volume.spacing[1], volume.spacing[0])
        points = [(name, kind, volume.patient_to_voxel(p)) for name, kind, p in labels]
        rc = [(name, kind, (v[1], v[0])) for name, kind, v in points]
        caption = "Radiograph with the level labels"
        col_range = (0, plane.shape[1])
    else:
        vol = volume.as_closest_lps()
        points = [(name, kind, vol.patient_to_voxel(p)) for name, kind, p in labels]
        i = int(np.clip(round(float(np.median([v[0] for _, _, v in points]))) if points else vol.shape[0] // 2,
                        0, vol.shape[0] - 1))
        sag = vol.data[i, :, :].astype(np.float32)  # (j: anterior -> posterior, k: inferior -> superior)
        plane = np.flipud(sag.T)  # rows: superior at top; cols: anterior at left
        nk = vol.shape[2]
        spacing_rc = (vol.spacing[2], vol.spacing[1])
        rc = [(name, kind, (nk - 1 - v[2], v[1])) for name, kind, v in points]
        x_mm = float(vol.voxel_to_patient([i, 0, 0])[0])
        caption = f"Mid-sagittal view at x = {x_mm:.1f} mm (LPS), anterior to the left, with the level labels"
        col_range = (0, plane.shape[1])
        if rc:
            centre = float(np.median([c for _, _, (_, c) in rc]))
            half = CROP_MM / spacing_rc[1]
            col_range = (max(0, int(centre - half)), min(plane.shape[1], int(centre + half) + 1))
    plane = plane[:, col_range[0]:col_range[1]]
    rc = [(name, kind, (r, c - col_range[0])) for name, kind, (r, c) in rc]
    if (volume.modality or "").upper() == "CT":  # bone window W1500/L500: cortex and disc spaces stand out
        gray = (np.clip((plane + 250.0) / 1500.0, 0, 1) * 255).astype(np.uint8)
    else:
        gray = window(plane, volume.modality)
    height_mm, width_mm = plane.shape[0] * spacing_rc[0], plane.shape[1] * spacing_rc[1]
    scale = TARGET_WIDTH / width_mm  # pixels per mm
    size = (TARGET_WIDTH, max(1, round(height_mm * scale)))
    img = Image.fromarray(gray).resize(size, Image.Resampling.BICUBIC).convert("RGB")
    if img.height < 160:  # a thin slab (few slices): pad so the labels fit, keep the image centred
        canvas = Image.new("RGB", (img.width, 160), (0, 0, 0))
        canvas.paste(img, (0, (160 - img.height) // 2))
        offset, img = (160 - img.height) // 2, canvas
    else:
        offset = 0
    draw = ImageDraw.Draw(img)
    font = _font(max(14, img.width // 45))
    sy, sx = size[1] / plane.shape[0], size[0] / plane.shape[1]
    for name, kind, (r, c) in rc:
        y, x = (r + 0.5) * sy + offset, (c + 0.5) * sx
        colour = VERTEBRA_RGB if kind == "vertebra" else DISC_RGB
        rad = 6 if kind == "vertebra" else 4
        draw.ellipse([x - rad, y - rad, x + rad, y + rad], outline=colour, width=2)
        # vertebrae labelled on the anterior side (left), discs on the posterior side, so close rows do not overlap
        tx = x - 14 - draw.textlength(name, font=font) if kind == "vertebra" else x + 12
        ty = y - font.size * 0.6
        draw.text((tx, ty), name, fill=colour, font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    if not rc:
        draw.text((8, 8), "no level labels", fill=(255, 80, 80), font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return KeyImage(buf.getvalue(), caption, img.width, img.height)
