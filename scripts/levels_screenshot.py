"""Make docs/screenshots/levels_real_ct.png and levels_real_mr.png: the workstation window (under Xvfb) with the levels
the automatic labeller finds on a real CT and a real MR, both openly licensed:

- CT: TotalSegmentator's example CT (abdomen-pelvis, 3 mm; `tests/data/totalseg_example_ct`, from
  github.com/wasserth/TotalSegmentator, Apache-2.0), labelled automatically;
- MR: the Spinal Cord Toolbox tutorial's sagittal T2 of the thoracolumbar spine (`../shared/data/spine-samples/
  sct_t2_lumbar_T9-L3`, from github.com/spinalcordtoolbox/sct_tutorial_data, MIT, (c) 2018 NeuroPoly). No anchor
  is in view, so the labeller names nothing by itself; as a user would, the script names the vertebra below the
  one level the dataset gives (the T9-T10 disc, placed by the toolbox's tutorial) and the others follow.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/levels_screenshot.py [--backend auto]

``--backend auto`` (the default) is what the workstation's Auto-label uses for the modality; another backend (e.g.
``--backend learned``) writes ``levels_real_ct_learned.png`` and ``levels_real_mr_learned.png``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHOTS = REPO / "docs" / "screenshots"
CT = REPO / "tests" / "data" / "totalseg_example_ct" / "ct.nii.gz"
MR_DIR = REPO.parent / "shared" / "data" / "spine-samples" / "sct_t2_lumbar_T9-L3"
MR = MR_DIR / "t2_lumbar.nii.gz"
MR_KNOWN = MR_DIR / "t2_lumbar_disc_points.nii.gz"  # value 17 = the T9-T10 disc (toolbox disc numbering)


def _known_disc(volume_path: Path):
    """LPS point of the T9-T10 disc the dataset gives."""
    import numpy as np

    from core.library.opener import load_volume

    points, _ = load_volume(volume_path)
    ijk = np.argwhere(np.rint(np.asarray(points.data)) == 17)
    if not len(ijk):
        raise SystemExit(f"{volume_path}: no T9-T10 point (value 17)")
    return np.asarray(points.voxel_to_patient(ijk[0].astype(float)))


def _named_below(labelling, point, name: str):
    """The labelling renamed so that the vertebra just below ``point`` (a disc) is ``name``."""
    import numpy as np

    below = [(i, v) for i, v in enumerate(labelling.vertebrae) if v.centroid[2] < point[2]]
    if not below:
        return labelling
    index = min(below, key=lambda iv: np.linalg.norm(np.asarray(iv[1].centroid) - point))[0]
    renamed = labelling.renamed_from(index, name, user="screenshot (the dataset's T9-T10 disc)")
    renamed.provenance = labelling.provenance
    renamed.message = labelling.message
    return renamed


def capture(image: Path, out: Path, backend: str, focus: str, name_from=None) -> str:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from core.spine.autolabel import auto_label, choose_backend
    from tests.app_support import opened_window, settle, wait_until

    with tempfile.TemporaryDirectory(prefix="spinemed-levels-shot-") as home:
        os.environ["SPINEMED_HOME"] = home
        with opened_window(Path(home), image) as window:
            volume = window.state.volume
            used = choose_backend(volume, None if backend == "auto" else backend)
            labelling = auto_label(volume, used.name)
            text = f"{used.name}: {labelling.message}"
            if name_from is not None and not labelling.names():
                labelling = _named_below(labelling, name_from[0], name_from[1])
                text += f" | named from the dataset's {name_from[2]}: {', '.join(labelling.names())}"
            labelling.series_uid = window.current_series
            box = window.spine.panel.backend_box
            if backend != "auto":  # the panel shows the labeller that drew the levels
                wait_until(lambda: box.findData(used.name) >= 0, 60, "the labellers' list")
                box.setCurrentIndex(box.findData(used.name))
            window.spine.controller.apply(labelling, f"Auto-label ({used.name})")
            if focus not in labelling.names() and labelling.names():
                focus = labelling.names()[len(labelling.names()) // 2]
            window.spine.controller.go_to_level(focus)
            window.state.apply_wl_preset("bone" if (volume.modality or "").upper() == "CT" else "spine_mr_auto")
            cursor = window.state.cursor
            for view in (window.viewer.sagittal, window.viewer.coronal):
                view.zoom_by(1.8, view.voxel_to_widget(cursor))
            settle(1.0)
            out.parent.mkdir(parents=True, exist_ok=True)
            window.save_screenshot(out)
    app.processEvents()
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", help="labeller (auto = the workstation's choice)")
    parser.add_argument("--out-dir", type=Path, default=SHOTS)
    args = parser.parse_args()
    if not CT.is_file():
        print(f"needs {CT}", file=sys.stderr)
        return 2
    suffix = "" if args.backend == "auto" else f"_{args.backend}"  # another labeller's pictures beside the default's
    print(capture(CT, args.out_dir / f"levels_real_ct{suffix}.png", args.backend, "L3"))
    if not MR.is_file():
        print(f"skipped the MR: {MR} absent (../shared)", file=sys.stderr)
        return 0
    print(capture(MR, args.out_dir / f"levels_real_mr{suffix}.png", args.backend, "T12",
                  (_known_disc(MR_KNOWN), "T10", "T9-T10 disc")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
