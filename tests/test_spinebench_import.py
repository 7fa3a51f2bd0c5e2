"""Import of external multiple-choice benchmark files in the public SpineBench layout (image, question, options,
answer), written here as Parquet (Hugging Face image structs) and as JSON (image paths, option dicts)."""
from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from spinebench.cli import main as cli_main
from spinebench.importers import import_external
from spinebench.schema import load_benchmark, mcq_text


def _png(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (40, 30), shade).save(buf, format="PNG")
    return buf.getvalue()


ROWS = [
    {"id": "q1", "image": {"bytes": _png(50), "path": "a.png"}, "question": "What disease is shown?",
     "options": ["Spondylolisthesis", "Scoliosis", "Fracture", "Normal"], "answer": "A", "task": "diagnosis"},
    {"id": "q2", "image": {"bytes": _png(120), "path": "b.png"}, "question": "Where is the lesion?",
     "options": ["A. L3", "B. L4", "C. L5", "D. S1"], "answer": "L5", "task": "localization"},
    {"id": "q3", "image": {"bytes": _png(200), "path": "c.png"}, "question": "No usable answer here",
     "options": ["x", "y"], "answer": "Z", "task": "diagnosis"},
]


def test_parquet_with_image_structs(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "spinebench_test.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    manifest = import_external(path, tmp_path / "bench")
    assert (manifest["items"], manifest["skipped"]) == (2, {"missing question, options or a usable answer": 1})
    bench = load_benchmark(tmp_path / "bench")
    q1, q2 = bench.items
    assert (q1.id, q1.answer, q1.axis, q1.modality, q1.review_status) == (
        "ext-spinebench_test-q1", "A", "pathology_assessment", "image+text", "external")
    assert (q2.answer, q2.options["C"], q2.axis) == ("C", "L5", "level_identification")  # "A. L3" prefix removed
    img = Image.open(io.BytesIO(bench.image_bytes(q1)[0]))
    assert img.size == (40, 30) and img.getpixel((0, 0))[0] == 50
    assert "A. Spondylolisthesis" in mcq_text(q1)


def test_json_with_paths_dict_options_and_index_answers(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "x.png").write_bytes(_png(90))
    data = {"data": [
        {"question_id": 7, "image": "imgs/x.png", "question": "Which grade?",
         "options": json.dumps({"A": "Grade I", "B": "Grade II"}), "answer": 1, "category": "Spondylolisthesis"},
        {"question_id": 8, "question": "Text-only question?", "A": "yes", "B": "no", "answer": "(a)"},
        {"question_id": 9, "image": "imgs/missing.png", "question": "Broken image?", "options": ["a", "b"],
         "answer": "A"},
    ]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "out"
    assert cli_main(["import", str(path), "-o", str(out), "--name", "ext"]) == 0
    items = {i.id: i for i in load_benchmark(out).items}
    assert set(items) == {"ext-ext-7", "ext-ext-8"}
    assert items["ext-ext-7"].answer == "B" and items["ext-ext-7"].modality == "image+text"
    assert items["ext-ext-8"].answer == "A" and items["ext-ext-8"].modality == "text"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped"] == {"image unreadable": 1}
