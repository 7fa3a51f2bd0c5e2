"""Export of the learned labeller: ONNX (dynamic batch and size), checked against torch with onnxruntime, plus the
``labeller.json`` the run-time backend reads (name, version, outputs, slab geometry, sha256 of the weights)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from core.spine.autolabel.slabs import LATERAL_MM, SLAB_MM
from training.levels import spine_model as sm
from training.levels.config import LevelsTrainConfig


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_onnx(model, path: Path, cfg: LevelsTrainConfig) -> Path:
    import torch

    dummy = torch.zeros(2, 3, cfg.rows, cfg.cols)
    torch.onnx.export(model, (dummy,), str(path), input_names=["stack"], output_names=["maps"],
                      dynamic_axes={"stack": {0: "n", 2: "rows", 3: "cols"}, "maps": {0: "n", 2: "rows", 3: "cols"}},
                      opset_version=18, dynamo=False)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 64, 48), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = sess.run(None, {"stack": x})[0]
    if not np.allclose(ref, got, atol=1e-3):
        raise RuntimeError(f"ONNX export differs from torch by {np.abs(ref - got).max():.2g}")
    meta = {"name": cfg.name, "version": cfg.version, "file": path.name, "sha256": sha256(path),
            "step_mm": sm.STEP, "slab_mm": SLAB_MM, "lateral_mm": LATERAL_MM, "regions": list(sm.REGIONS),
            "outputs": "maps: sigmoid -> [body centres, disc centres]; softmax over the next 6 -> regions"}
    (path.parent / "labeller.json").write_text(json.dumps(meta, indent=1))
    return path


def ship(run_dir: Path, models_dir: Path, card_text: str | None = None) -> Path:
    """Copy a run's model.onnx, labeller.json and curves into ``models_dir/<name>/`` (+ the card when given)."""
    meta = json.loads((run_dir / "labeller.json").read_text())
    dest = models_dir / meta["name"]
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("model.onnx", "labeller.json", "curves.png"):
        if (run_dir / f).exists():
            shutil.copy2(run_dir / f, dest / f)
    if card_text:
        (dest / "MODEL_CARD.md").write_text(card_text)
    return dest
