"""``spinemed xray eval`` and ``spinemed xray landmarks`` end to end with the shipped model: the figures printed in
the AASCE layout, bad input (missing CSV, unreadable image, tiny image) answered with a message and an exit code."""
from __future__ import annotations

import json
import re

import numpy as np
from PIL import Image

from app.cli import main
from tests.xray_support import aasce_dir, write_aasce_folder


def _synthetic_dataset(tmp_path, n=3):
    """The AASCE layout (tests.xray_support.write_aasce_folder) under ``tmp_path``; returns its images folder."""
    write_aasce_folder(tmp_path, n)
    return tmp_path / "images"


def _args(tmp_path, images):
    labels = tmp_path / "labels"
    return ["xray", "eval", str(images), "--landmarks", str(labels / "landmarks.csv"), "--angles",
            str(labels / "angles.csv"), "--filenames", str(labels / "filenames.csv"), "-q"]


def test_eval_prints_smape_mae_and_landmark_error(tmp_path, capsys):
    images = _synthetic_dataset(tmp_path)
    assert main(_args(tmp_path, images)) == 0
    out = capsys.readouterr().out
    assert "images: 3, scored: 3" in out
    assert re.search(r"^SMAPE: \d+\.\d%$", out, re.MULTILINE)
    for angle in ("proximal thoracic", "main thoracic", "thoracolumbar/lumbar"):
        assert re.search(rf"^MAE {re.escape(angle)} .*: \d+\.\d deg$", out, re.MULTILINE)
    assert re.search(r"^mean landmark error: \d+\.\d px", out, re.MULTILINE)


def test_eval_names_a_missing_csv_and_an_unreadable_image(tmp_path, capsys):
    images = _synthetic_dataset(tmp_path, n=2)
    (tmp_path / "labels" / "angles.csv").unlink()
    assert main(_args(tmp_path, images)) == 2
    err = capsys.readouterr().err
    assert "angles.csv: file not found" in err and "Traceback" not in err
    images = _synthetic_dataset(tmp_path / "b", n=2)
    (images / "case-1 A AP.jpg").write_text("not an image")
    assert main(_args(tmp_path / "b", images)) == 0
    captured = capsys.readouterr()
    assert "1 unreadable" in captured.out
    assert "case-1 A AP.jpg: not a readable image" in captured.err


def test_landmarks_command_refuses_a_tiny_image(tmp_path, capsys):
    path = tmp_path / "tiny.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 30), dtype=np.uint8)).save(path)
    assert main(["xray", "landmarks", str(path)]) == 1
    out = capsys.readouterr().out
    assert "Not confident: the image is too small (30 x 50 px" in out


def test_landmarks_command_on_a_text_file(tmp_path, capsys):
    path = tmp_path / "notes.jpg"
    path.write_text("hello")
    assert main(["xray", "landmarks", str(path)]) == 2
    err = capsys.readouterr().err
    assert "notes.jpg" in err and "not a PNG/JPEG image" in err and "Traceback" not in err


def test_eval_on_shared_validation_radiographs(tmp_path, capsys):
    root = aasce_dir()
    from core.xray.landmarks import default_model_dir

    val = json.loads((default_model_dir() / "validation_files.json").read_text())["validation_files"][:5]
    labels = root / "labels"
    names = (labels / "filenames.csv").read_text().splitlines()
    keep = [names.index(v) for v in val]
    (tmp_path / "labels").mkdir()
    for fname in ("filenames.csv", "landmarks.csv", "angles.csv"):
        lines = (labels / fname).read_text().splitlines()
        (tmp_path / "labels" / fname).write_text("\n".join(lines[i] for i in keep) + "\n")
    assert main(_args(tmp_path, root / "images")) == 0
    out = capsys.readouterr().out
    smape = float(re.search(r"^SMAPE: (\d+\.\d)%$", out, re.MULTILINE).group(1))
    px = float(re.search(r"^mean landmark error: (\d+\.\d) px", out, re.MULTILINE).group(1))
    assert smape < 60 and px < 150, out
