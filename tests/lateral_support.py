"""A synthetic standing lateral spine radiograph with known landmarks, written by pydicom as a DX file (ViewPosition
LL), for the sagittal tool tests and the screenshot script: a column of vertebral bodies from C7 to L5 over a sacrum
whose S1 endplate slopes 40 degrees, L5 slipped forward by a known share of the S1 endplate, femoral heads below.
The patient faces the image's right (PatientOrientation A\\F) unless ``facing=-1``. Not a real radiograph."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.xray_support import write_dx


@dataclass(frozen=True)
class LateralSketch:
    """Image size and the landmarks (image pixels, x right, y down) the image was drawn from."""

    width: int
    height: int
    c7_centre: tuple[float, float]
    s1_posterior: tuple[float, float]
    s1_anterior: tuple[float, float]
    l5_posterior_inferior: tuple[float, float]
    hips: tuple[tuple[float, float], tuple[float, float]]
    slip_percent: float
    facing: int


def lateral_sketch(facing: int = 1, slip: float = 25.0, sva_px: float = 110.0, width: int = 1000,
                   height: int = 2400) -> tuple[np.ndarray, LateralSketch]:
    """The image (uint16, bright bone on dark) and its landmarks. ``sva_px``: C7 centre's offset anterior of the
    S1 posterior-superior corner, in pixels."""
    from PIL import Image, ImageDraw

    def x(v: float) -> float:        # mirror for a patient facing left
        return v if facing > 0 else width - v

    s1p = np.array([450.0, 1900.0])
    ss = math.radians(40)
    e = np.array([math.cos(ss), math.sin(ss)])
    s1a = s1p + 200 * e
    up = np.array([math.sin(ss), -math.cos(ss)])          # the endplate's normal, cranial
    l5pi = s1p + slip / 100 * 200 * e + 28 * up
    c7 = np.array([s1p[0] + sva_px, 250.0])
    hip = (s1p + s1a) / 2 + 330 * np.array([math.sin(math.radians(12)), math.cos(math.radians(12))])
    hips = (hip + [-14, -6], hip + [14, 6])

    im = Image.new("L", (width, height), 40)
    d = ImageDraw.Draw(im)
    mx = lambda pts: [(x(p[0]), p[1]) for p in pts]
    d.polygon(mx([s1p, s1a, s1a + 260 * -up - [40, 0], s1p + 300 * -up]), fill=170)     # sacrum
    # L5: its inferior endplate parallel to S1, posterior-inferior corner at l5pi
    d.polygon(mx([l5pi, l5pi + 190 * e, l5pi + 190 * e + 150 * up, l5pi + 150 * up]), fill=175)
    # C7 to L4: boxes on a line from above L5 to C7 (not anatomy: something to click on)
    top, bottom = c7, l5pi + 95 * e + 150 * up + [0, -125]
    for k in range(12):
        t = k / 11
        centre = top * (1 - t) + bottom * t
        half_w, half_h = 60 + 40 * t, 40 + 30 * t
        x0, x1 = sorted((x(centre[0] - half_w), x(centre[0] + half_w)))
        d.rectangle([x0, centre[1] - half_h, x1, centre[1] + half_h], fill=165 if k else 185)
    for h in hips:
        d.ellipse([x(h[0]) - 55, h[1] - 55, x(h[0]) + 55, h[1] + 55], outline=210, width=8)
    img = (np.asarray(im, np.uint16) * 16)
    flip = lambda p: (float(x(p[0])), float(p[1]))
    return img, LateralSketch(width, height, flip(c7), flip(s1p), flip(s1a), flip(l5pi),
                              (flip(hips[0]), flip(hips[1])), slip, facing)


def write_lateral_dx(path: Path, facing: int = 1, slip: float = 25.0, sva_px: float = 110.0,
                     orientation: bool = True, **tags) -> LateralSketch:
    """The sketch as a DX file (ViewPosition LL, MONOCHROME2, 12 bits); ``orientation`` False leaves
    PatientOrientation out; ``tags`` set more attributes (e.g. ImagerPixelSpacing=[0.2, 0.2])."""
    img, sketch = lateral_sketch(facing, slip, sva_px)
    orient = {"PatientOrientation": ["A" if facing > 0 else "P", "F"]} if orientation else {}
    write_dx(path, img, **{"PatientID": "lateral-test", "PatientName": "Test^Lateral", "ViewPosition": "LL",
                           "SeriesDescription": "WHOLE SPINE LAT STANDING", **orient, **tags})
    return sketch
