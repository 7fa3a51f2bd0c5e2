"""Regenerate the documentation screenshot: the main window with the bundled CT sample open (2D and 3D).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m app.screenshot [--out FILE] [PATH ...]
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m app.screenshot --cited-answer   # grounded answer
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m app.screenshot --models-dialog  # Models dialog

Uses a throw-away library (a temporary SPINEMED_HOME), so the user's own library is never touched.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "screenshots" / "main_window.png"
DEFAULT_SAMPLE = REPO / "resources" / "samples" / "ct_dicom_T11-T12"


def _wait(predicate, timeout: float, what: str) -> None:
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        QApplication.processEvents()
        time.sleep(0.02)


def capture_main_window(out: Path, paths: list[Path], size: tuple[int, int] = (1500, 950),
                        question: str = "", level: str = "") -> Path:
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from core.library import Library

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="spinemed-shot-") as home:
        os.environ["SPINEMED_HOME"] = home
        library = Library(Path(home) / "library.db")
        window = MainWindow(library=library)
        window.resize(*size)
        window.show()
        window.import_paths(paths, open_first=True)
        _wait(lambda: window.state.volume is not None, 120, "the series to open")
        volume_view = window.viewer.volume_view
        if not window.viewer.single_image:
            _wait(lambda: volume_view.prepared is not None, 120, "the 3D view")
            # Thin slabs (few slices) are a narrow strip at fit-to-window zoom: zoom on the cursor like a reader would.
            for view in (window.viewer.sagittal, window.viewer.coronal):
                view.zoom_by(2.5, view.voxel_to_widget(window.state.cursor))
        if question:
            done = []
            window.chat.answer_finished.connect(done.append)
            _wait(lambda: window.chat.backend is not None, 60, "the model to load")
            window.chat.set_selected_level(level or None)
            window.chat.ask(question)
            _wait(lambda: bool(done), 180, "the model's answer")
        end = time.monotonic() + 1.0  # let the last paints and the 3D render land
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        path = window.save_screenshot(out)
        window.close()
        library.close()
    return path


def write_wedge_phantom(folder: Path, wedge_level: str = "L2", loss: float = 0.40):
    """A CT phantom (L1-L4) with a known anterior wedge, written as NIfTI; returns (path, phantom)."""
    import nibabel as nib
    import numpy as np

    from core.synthetic.phantom import spine_phantom

    ph = spine_phantom("L1", "L4", shape=(120, 120, 100), spacing=(1.5, 1.5, 1.5), ribs=False,
                       wedges={wedge_level: loss})
    ras = np.array(ph.volume.affine, dtype=float)
    ras[:2, :] *= -1  # Volume is LPS, NIfTI is RAS
    path = folder / f"phantom_{wedge_level}_wedge.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(ph.volume.data), ras), str(path))
    return path, ph


def capture_cited_answer(out: Path, size: tuple[int, int] = (1500, 950), level: str = "L2") -> Path:
    """The main window on a CT phantom with a 40 % wedge at ``level``: levels named, automatic measurements run,
    and a grounded answer to "Is there a compression fracture of L2?" with its citation opened."""
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from core.library import Library
    from core.spine.labelling import Provenance, SpineLabelling, VertebraLabel

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="spinemed-shot-") as home:
        os.environ["SPINEMED_HOME"] = home
        path, ph = write_wedge_phantom(Path(home), level)
        library = Library(Path(home) / "library.db")
        window = MainWindow(library=library)
        window.resize(*size)
        window.show()
        window.import_paths([path], open_first=True)
        _wait(lambda: window.state.volume is not None, 120, "the phantom to open")
        _wait(lambda: window.viewer.volume_view.prepared is not None, 120, "the 3D view")
        tools = window.spine
        tools.controller.apply(SpineLabelling([VertebraLabel(n, c) for n, c in ph.centres.items()],
                                              provenance=Provenance("user", user="screenshot")), "Name the levels")
        worker = tools.measure_panel.run_automatic()
        _wait(lambda: not worker.is_running, 120, "the automatic measurements")
        window.state.select_level(level)
        done = []
        window.chat.answer_finished.connect(done.append)
        _wait(lambda: window.chat.backend is not None, 60, "the model to load")
        window.chat.set_selected_level(level)
        window.chat.ask(f"Is there a compression fracture of {level}?")
        _wait(lambda: bool(done), 300, "the model's answer")
        window.chat.show_citation(f"F-genant-{level}")
        splitter = window.side_splitter  # study info, levels/measurements tabs, chat: room for the answer
        splitter.setSizes([0] * (splitter.count() - 2) + [150, size[1] - 150])
        bar = window.chat.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        shot = window.save_screenshot(out)
        window.close()
        library.close()
    return shot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[DEFAULT_SAMPLE])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--question", default="", help="ask the embedded model this before the screenshot")
    parser.add_argument("--level", default="", help="selected level for the question, e.g. T12")
    parser.add_argument("--cited-answer", action="store_true",
                        help="instead: a CT phantom with a 40%% wedge at L2, measured, and a cited (grounded) answer")
    parser.add_argument("--models-dialog", action="store_true",
                        help="instead: the Models dialog (the embedded model in use) and the refusal of a truncated file")
    args = parser.parse_args(argv)
    if args.models_dialog:
        from app.models_dialog import capture_models_dialog

        out = args.out if args.out != DEFAULT_OUT else DEFAULT_OUT.with_name("models_dialog.png")
        print(capture_models_dialog(out))
        print(capture_models_dialog(out.with_name(out.stem + "_refused.png"), refused=True))
        print(capture_models_dialog(out.with_name(out.stem + "_server.png"), server=True))
        return 0
    if args.cited_answer:
        out = args.out if args.out != DEFAULT_OUT else DEFAULT_OUT.with_name("chat_cited_answer.png")
        print(capture_cited_answer(out))
        return 0
    print(capture_main_window(args.out, args.paths or [DEFAULT_SAMPLE], question=args.question, level=args.level))
    return 0


if __name__ == "__main__":
    sys.exit(main())
