"""Small PNG views of a study for benchmark items: a sagittal or axial slice with markers (Pillow only).

Volumes must be in closest-LPS order (``Volume.as_closest_lps()``): sagittal = ``data[i, :, :]`` shown with anterior
to the left and superior at the top; axial = ``data[:, :, k]`` shown with anterior at the top and the patient's right
on the viewer's left (radiological convention). Pixels are resampled to square millimetres, so what looks round is
round. A :class:`View` maps patient points (LPS mm) to pixel positions, so markers land where the label map says.

Markers: a red circle on the level asked about, a blue square on the reference vertebra, a yellow line for the
position of an axial slice on a sagittal localiser. Images are saved as palette PNGs (60 greys + the marker colours: small, markers exact,
deterministic for a given Pillow version).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.studies.volume import Volume

RED = (230, 30, 30)
BLUE = (40, 120, 255)
YELLOW = (255, 220, 0)
WHITE = (255, 255, 255)


def to_uint8(data: np.ndarray, modality: str, is_mask: bool = False) -> np.ndarray:
    """Grey levels: CT bone-friendly window (level 300, width 1500), MR 1st-99.5th percentile, masks flat grey."""
    data = np.asarray(data, dtype=np.float32)
    if is_mask:
        return np.where(data > 0, 190, 0).astype(np.uint8)
    if modality.upper() == "CT":
        lo, hi = 300.0 - 750.0, 300.0 + 750.0
    else:
        lo, hi = (float(v) for v in np.percentile(data, [1.0, 99.5]))
        if hi <= lo:
            hi = lo + 1.0
    return (np.clip((data - lo) / (hi - lo), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@dataclass
class View:
    """One rendered plane: the RGB image and the mapping from patient points to pixels."""

    image: Image.Image
    plane: str  # "sagittal" | "axial"
    volume: Volume
    origin: tuple[int, int]  # first (row-axis, column-axis) voxel index of the crop, in display order
    extent: tuple[int, int]  # crop size in voxels (rows, columns)
    scale: tuple[float, float]  # display pixels per voxel (rows, columns)

    def to_pixel(self, point) -> tuple[float, float]:
        """(x, y) pixel position of an LPS point projected on this plane."""
        i, j, k = self.volume.patient_to_voxel(point)
        if self.plane == "sagittal":
            top = self.origin[0] + self.extent[0] - 1  # rows run from the highest k down
            row, col = top - k, j - self.origin[1]
        else:
            row, col = j - self.origin[0], i - self.origin[1]
        return ((col + 0.5) * self.scale[1] - 0.5, (row + 0.5) * self.scale[0] - 0.5)


def _crop(n: int, centre: float, half: int) -> tuple[int, int]:
    c = round(centre)
    lo = max(0, c - half)
    hi = min(n, c + half + 1)
    return lo, hi


def render_plane(volume: Volume, point, plane: str, size: int = 224, fov_mm: float = 150.0,
                 is_mask: bool = False) -> View:
    """Slice of ``volume`` (closest LPS) through ``point`` (LPS mm), cropped to ``fov_mm`` around it."""
    data = np.asarray(volume.data)
    si, sj, sk = volume.spacing
    i, j, k = (float(v) for v in volume.patient_to_voxel(point))
    if plane == "sagittal":
        ii = int(np.clip(round(i), 0, data.shape[0] - 1))
        k0, k1 = _crop(data.shape[2], k, int(fov_mm / 2 / sk))
        j0, j1 = _crop(data.shape[1], j, int(fov_mm / 2 / sj))
        arr = data[ii, j0:j1, k0:k1].T[::-1]  # rows: superior first; columns: anterior first
        rows_mm, cols_mm = sk, sj
        origin = (k0, j0)
    elif plane == "axial":
        kk = int(np.clip(round(k), 0, data.shape[2] - 1))
        j0, j1 = _crop(data.shape[1], j, int(fov_mm / 2 / sj))
        i0, i1 = _crop(data.shape[0], i, int(fov_mm / 2 / si))
        arr = data[i0:i1, j0:j1, kk].T  # rows: anterior first; columns: patient right first
        rows_mm, cols_mm = sj, si
        origin = (j0, i0)
    else:
        raise ValueError(f"unknown plane {plane!r}")
    grey = to_uint8(arr, volume.modality, is_mask)
    height_mm, width_mm = arr.shape[0] * rows_mm, arr.shape[1] * cols_mm
    px_per_mm = size / max(height_mm, width_mm)
    out_h, out_w = max(1, round(height_mm * px_per_mm)), max(1, round(width_mm * px_per_mm))
    img = Image.fromarray(np.ascontiguousarray(grey), mode="L").resize((out_w, out_h), Image.Resampling.BILINEAR)
    view = View(img.convert("RGB"), plane, volume, origin, arr.shape, (out_h / arr.shape[0], out_w / arr.shape[1]))
    _orientation_letters(view)
    return view


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _orientation_letters(view: View) -> None:
    draw = ImageDraw.Draw(view.image)
    w, h = view.image.size
    top, left = ("S", "A") if view.plane == "sagittal" else ("A", "R")
    draw.text((w // 2 - 3, 1), top, fill=WHITE, font=_font())
    draw.text((2, h // 2 - 6), left, fill=WHITE, font=_font())


def circle(view: View, point, radius: float = 9.0, colour=RED) -> None:
    x, y = view.to_pixel(point)
    ImageDraw.Draw(view.image).ellipse((x - radius, y - radius, x + radius, y + radius), outline=colour, width=2)


def square(view: View, point, half: float = 9.0, colour=BLUE) -> None:
    x, y = view.to_pixel(point)
    ImageDraw.Draw(view.image).rectangle((x - half, y - half, x + half, y + half), outline=colour, width=2)


def slice_line(view: View, point, colour=YELLOW) -> None:
    """Horizontal line on a sagittal view at the height of ``point`` (where an axial slice lies)."""
    _, y = view.to_pixel(point)
    w = view.image.size[0]
    ImageDraw.Draw(view.image).line((0, y, w, y), fill=colour, width=1)


def side_by_side(left: Image.Image, right: Image.Image, gap: int = 4) -> Image.Image:
    h = max(left.size[1], right.size[1])
    out = Image.new("RGB", (left.size[0] + gap + right.size[0], h), (0, 0, 0))
    out.paste(left, (0, (h - left.size[1]) // 2))
    out.paste(right, (left.size[0] + gap, (h - right.size[1]) // 2))
    return out


def _palette() -> Image.Image:
    """60 grey levels plus the marker colours, so quantisation never merges a marker into the greys."""
    colours = [(round(v * 255 / 59),) * 3 for v in range(60)] + [RED, BLUE, YELLOW, WHITE]
    pal = Image.new("P", (1, 1))
    pal.putpalette([c for rgb in colours for c in rgb] + [0] * (3 * (256 - len(colours))))
    return pal


def png_bytes(img: Image.Image) -> bytes:
    """A small, deterministic PNG: fixed 64-colour palette (60 greys + marker colours), no metadata."""
    pal = img.convert("RGB").quantize(palette=_palette(), dither=Image.Dither.NONE)
    buf = io.BytesIO()
    pal.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
