"""A picture of a radiograph with its landmarks, level names and Cobb curves (PNG), e.g. for a report or README.

Drawn with Pillow on a downscaled copy (``max_height``): vertebra outlines from the four corners, the level name
beside each vertebra, and for each regional Cobb curve its two endplate lines extended; the angles, end vertebrae
and apices are written in a column left of the image. Labelled "decision support".
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.xray.cobb import REGIONS, endplate_lines, regional_cobb
from core.xray.levels import LEVELS
from core.xray.preprocess import scale_intensity, to_gray

COLOURS = {REGIONS[0]: (255, 190, 40), REGIONS[1]: (255, 80, 80), REGIONS[2]: (80, 200, 255)}


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow without sized default fonts
        return ImageFont.load_default()


def render_overlay(image: np.ndarray, landmarks: np.ndarray, path: str | Path, max_height: int = 1000,
                   title: str = "") -> Path:
    gray = scale_intensity(to_gray(image))
    h, w = gray.shape
    s = min(1.0, max_height / h)
    im = Image.fromarray((gray * 255).astype(np.uint8)).convert("RGB")
    if s < 1:
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
    font = _font(max(10, int(14 * im.height / 1000)))
    panel = int(font.size * 17)          # a text column left of the image for the angles
    canvas = Image.new("RGB", (im.width + panel, im.height), (20, 20, 20))
    canvas.paste(im, (panel, 0))
    im = canvas
    draw = ImageDraw.Draw(im)
    pts = np.asarray(landmarks, float) * s + np.array([panel, 0.0])
    quads = pts.reshape(17, 4, 2)
    for v, q in enumerate(quads):
        outline = [tuple(q[0]), tuple(q[1]), tuple(q[3]), tuple(q[2])]
        draw.polygon(outline, outline=(60, 255, 120))
        for p in q:
            draw.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=(60, 255, 120))
        left = q[[0, 2], 0].min()
        draw.text((left - 8 * font.size / 4 - 14, q[:, 1].mean() - font.size / 2), LEVELS[v], fill=(255, 255, 0),
                  font=font)
    lines = endplate_lines(landmarks) * s + np.array([panel, 0.0])
    y_text = 10 + font.size * 1.5 * (1 if title else 0)
    if title:
        draw.text((10, 10), title, fill=(255, 255, 255), font=font)
    draw.text((10, y_text), "Cobb angles (image plane)", fill=(255, 255, 255), font=font)
    y_text += font.size * 1.6
    for region, curve in regional_cobb(landmarks).items():
        if curve is None:
            continue
        colour = COLOURS[region]
        for e in (curve.upper_endplate, curve.lower_endplate):
            a, b = lines[e]
            d = (b - a) / max(np.hypot(*(b - a)), 1e-6)
            draw.line([tuple(a - d * 40 * s * 3), tuple(b + d * 40 * s * 3)], fill=colour, width=2)
        draw.text((10, y_text), f"{region}:", fill=colour, font=font)
        draw.text((10, y_text + font.size * 1.2), f"  {curve.angle:.0f}°, {curve.upper_end_vertebra}-"
                  f"{curve.lower_end_vertebra}, apex {curve.apex_name}", fill=colour, font=font)
        y_text += font.size * 2.8
    for k, line in enumerate(("Decision support:", "check every corner.")):
        draw.text((10, im.height - font.size * (3.2 - 1.4 * k)), line, fill=(200, 200, 200), font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path
