"""Make docs/screenshots/xray_landmarks.png: a real AP radiograph of ../shared (one of the landmark model's
validation images, never a training one) downscaled, with the model's landmarks, level names and Cobb curves.
With ``--viewer``: docs/screenshots/xray_viewer.png, the workstation window (under Xvfb) after "Find vertebrae".
With ``--pelvis``: docs/screenshots/xray_pelvis.png, the pelvic incidence tool clicked on a synthetic lateral sketch
(an S1 endplate tilted 40 degrees, femoral heads below and in front: PI 52, SS 40, PT 12 by construction).
With ``--sagittal``: docs/screenshots/xray_sagittal.png, the slip, SVA and pelvic incidence tools clicked on a
synthetic lateral DX written by pydicom into a temporary folder (ViewPosition LL, PatientOrientation A\\F,
ImagerPixelSpacing 0.2 mm; L5 slipped 25 %, C7 110 px = 22 mm anterior of S1 by construction).
With ``--calibration``: docs/screenshots/xray_calibration.png, the scale calibration tool used with real clicks on a
synthetic radiograph with a ruler (a 100 mm span clicked, then a distance measured: it reads "calibrated by user").

    .venv/bin/python scripts/xray_screenshot.py [--name FILE] [--height 900]
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/xray_screenshot.py --viewer
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/xray_screenshot.py --calibration

Only the downscaled picture goes into docs/ (the AASCE images themselves are research-use and never copied).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.cli import main as spinemed
from core.xray.landmarks import default_model_dir

SHARED = REPO.parent / "shared" / "data" / "xray-aasce-train" / "images"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="file name of a validation radiograph (default: the first listed)")
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("-o", "--output", help="PNG to write (default: docs/screenshots/xray_landmarks.png, or "
                                               "xray_viewer.png with --viewer)")
    parser.add_argument("--viewer", action="store_true", help="screenshot of the workstation window instead")
    parser.add_argument("--pelvis", action="store_true",
                        help="screenshot of the pelvic incidence tool on a synthetic lateral sketch")
    parser.add_argument("--sagittal", action="store_true",
                        help="screenshot of the slip, SVA and pelvic incidence tools on a synthetic lateral DX")
    parser.add_argument("--calibration", action="store_true",
                        help="screenshot of the scale calibration tool on a synthetic radiograph with a ruler")
    args = parser.parse_args()
    if args.pelvis:
        return _pelvis(Path(args.output or REPO / "docs" / "screenshots" / "xray_pelvis.png"))
    if args.sagittal:
        return _sagittal(Path(args.output or REPO / "docs" / "screenshots" / "xray_sagittal.png"))
    if args.calibration:
        return _calibration(Path(args.output or REPO / "docs" / "screenshots" / "xray_calibration.png"))
    model_dir = default_model_dir()
    if model_dir is None or not SHARED.is_dir():
        print(f"needs the shipped model and {SHARED}", file=sys.stderr)
        return 2
    names = json.loads((model_dir / "validation_files.json").read_text())["validation_files"]
    name = args.name or names[0]
    if name not in names:
        print(f"{name} is not a validation image of the model", file=sys.stderr)
        return 2
    if args.viewer:
        return _viewer(SHARED / name, Path(args.output or REPO / "docs" / "screenshots" / "xray_viewer.png"))
    output = args.output or str(REPO / "docs" / "screenshots" / "xray_landmarks.png")
    return spinemed(["xray", "landmarks", str(SHARED / name), "--overlay", output,
                     "--overlay-height", str(args.height)])


def _viewer(image: Path, output: Path) -> int:
    """Import the radiograph into a throw-away library, open it, run the model from the Radiograph tab, grab."""
    import tempfile

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from tests.app_support import opened_window, settle, wait_until

    with tempfile.TemporaryDirectory(prefix="spinemed-xray-shot-") as tmp, \
            opened_window(Path(tmp), image, wait_3d=False) as window:
        tabs = window.spine.tabs
        tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index("Radiograph"))
        worker = window.xray.panel.find()
        wait_until(lambda: not worker.is_running, 120, "the landmark model")
        settle(0.5)
        output.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(output))
        print(f"{window.xray.panel.status.text()}\nscreenshot: {output}")
    app.processEvents()
    return 0


def _ruler_image(path: Path) -> None:
    """A synthetic 'radiograph': soft background, a bright column of blocks, and a ruler with a mark every 10 mm
    (4 px per mm), so the clicks have something real to land on."""
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:1400, 0:700]
    img = 60 + 40 * np.exp(-((xx - 350) / 220.0) ** 2) + 10 * yy / 1400
    for v in range(12):
        img[150 + v * 95: 150 + v * 95 + 70, 300:400] = 190
    img[1250:1262, 100:600] = 235
    for mm in range(0, 101, 10):
        x = 150 + 4 * mm
        img[1225:1250, x - 1:x + 2] = 235
    Image.fromarray(img.astype(np.uint8)).save(path)


def _pelvis(output: Path) -> int:
    """A synthetic lateral sketch: a sacrum whose S1 endplate slopes 40 degrees, two femoral heads 12 degrees in
    front of the vertical through its midpoint; the tool clicked on them."""
    import math
    import tempfile

    import numpy as np
    from PIL import Image, ImageDraw
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from tests.app_support import click_pixel, opened_window, settle

    p = np.array([420.0, 600.0])
    ss, pt = math.radians(40), math.radians(12)
    a = p + 160 * np.array([math.cos(ss), math.sin(ss)])
    m = (p + a) / 2
    hip = m + 330 * np.array([math.sin(pt), math.cos(pt)])
    heads = [hip + [-14, -6], hip + [14, 6]]
    im = Image.new("L", (900, 1300), 50)
    d = ImageDraw.Draw(im)
    n = np.array([-math.sin(ss), math.cos(ss)])
    d.polygon([tuple(p), tuple(a), tuple(a + 220 * n - [60, 0]), tuple(p + 260 * n)], fill=170)
    for v in range(4):   # lumbar bodies above
        top = p - [20 + 10 * v, 40 + 130 * (v + 1)]
        d.rectangle([tuple(top), tuple(top + [160, 100])], fill=165)
    for h in heads:
        d.ellipse([h[0] - 55, h[1] - 55, h[0] + 55, h[1] + 55], outline=210, width=8)

    with tempfile.TemporaryDirectory(prefix="spinemed-xray-shot-") as tmp:
        image = Path(tmp) / "lateral_sketch.png"
        im.save(image)
        with opened_window(Path(tmp), image, wait_3d=False) as window:
            tabs = window.spine.tabs
            tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index("Measurements"))
            window.spine.measure_panel.tool_buttons["pelvis"].click()
            for q in (p, a, *heads):
                click_pixel(window.viewer.axial, *q)
            settle(0.5)
            output.parent.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(output))
            m = window.spine.measurements.measurements[-1]
            print(f"{m.name} {m.value:.1f} deg, SS {m.details['sacral_slope_deg']}, "
                  f"PT {m.details['pelvic_tilt_deg']}\nscreenshot: {output}")
            window.spine.undo_stack.clear()
    app.processEvents()
    return 0


def _sagittal(output: Path) -> int:
    """Write the synthetic lateral DX (tests/lateral_support.py), open it, click slip, SVA and pelvic incidence."""
    import tempfile

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from tests.app_support import click_pixel, opened_window, settle
    from tests.lateral_support import write_lateral_dx

    with tempfile.TemporaryDirectory(prefix="spinemed-xray-shot-") as tmp:
        image = Path(tmp) / "lateral_sketch.dcm"
        sk = write_lateral_dx(image, facing=1, slip=25.0, sva_px=110.0, ImagerPixelSpacing=[0.2, 0.2])
        with opened_window(Path(tmp), image, wait_3d=False, size=(1500, 1000)) as window:
            tabs = window.spine.tabs
            tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index("Measurements"))
            panel, view = window.spine.measure_panel, window.viewer.axial
            panel.slip_level.setCurrentIndex(panel.slip_level.findData("L5-S1"))
            for tool, points in (("slip", (sk.l5_posterior_inferior, sk.s1_posterior, sk.s1_anterior)),
                                 ("sva", (sk.c7_centre, sk.s1_posterior)),
                                 ("pelvis", (sk.s1_posterior, sk.s1_anterior, *sk.hips))):
                panel.set_tool(tool)
                for q in points:
                    click_pixel(view, *q)
            panel.set_tool(None)
            settle(0.5)
            output.parent.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(output))
            for row in panel.rows():
                print(" | ".join(row))
            print(f"screenshot: {output}")
            window.spine.undo_stack.clear()
    app.processEvents()
    return 0


def _calibration(output: Path) -> int:
    """Import the ruler image, calibrate with two real clicks on the 0 and 100 mm marks, measure a distance."""
    import tempfile

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from tests.app_support import click_pixel, opened_window, settle

    with tempfile.TemporaryDirectory(prefix="spinemed-xray-shot-") as tmp:
        image = Path(tmp) / "ruler_ap.png"
        _ruler_image(image)
        with opened_window(Path(tmp), image, wait_3d=False) as window:
            tabs = window.spine.tabs
            tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index("Radiograph"))
            view = window.viewer.axial
            panel = window.xray.panel
            panel.length_spin.setValue(100.0)
            panel.calibrate_button.click()
            click_pixel(view, 150.5, 1237.5)
            click_pixel(view, 550.5, 1237.5)
            window.spine.measure_layer.set_tool("distance")
            click_pixel(view, 350.5, 150.5)
            click_pixel(view, 350.5, 1195.5)
            window.spine.measure_layer.set_tool(None)
            settle(0.5)
            output.parent.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(output))
            print(f"{panel.calibration_prompt.text()}\n{panel.scale_label.text()}\nscreenshot: {output}")
            window.spine.undo_stack.clear()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
