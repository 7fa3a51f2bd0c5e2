"""Import external multiple-choice benchmark files into a SpineBench folder (items.jsonl + images + manifest).

Written for the public X-ray/MRI multiple-choice SpineBench layout (one record per question with an image, the
question, its options and the answer), in the forms such files come in:

- containers: Parquet (``.parquet``, read with pyarrow), JSON (a list of records, ``{"data": [...]}``, or a dict of
  columns) or JSON Lines (``.jsonl``);
- ``image``: Hugging Face image struct ``{"bytes": ..., "path": ...}``, raw bytes, a base64 string, or a file path
  (relative to the file's folder or ``image_root``); ``images`` (a list) is accepted, the first image is used;
- ``options``: a list, a ``{"A": ...}`` dict, a JSON string of either, or separate ``A``/``B``/... columns; a
  leading "A." / "(A)" in an option's text is removed;
- ``answer``: a letter, a 0-based index, or the text of one option;
- optional ``id`` / ``question_id``, and ``task`` / ``task_type`` / ``category`` / ``question_type`` for the axis
  ("locali[sz]ation" -> level_identification, "diagnos" / "disease" -> pathology_assessment, else the task name).

Rows that cannot be read are skipped and counted by reason in the manifest. Images are re-encoded as PNG (at most
768 px). Imported items carry ``review_status: external``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from spinebench.schema import MCQ_SYSTEM, Item, sha256_file, write_items

_PREFIX = re.compile(r"^\s*\(?[A-Ha-h][.):]\s+")
MAX_SIDE = 768


def read_rows(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise RuntimeError("reading Parquet needs pyarrow (pip install pyarrow)") from exc
        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        n = len(next(iter(data.values())))
        data = [{k: v[i] for k, v in data.items()} for i in range(n)]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of records, {{'data': [...]}} or a dict of columns")  # noqa: TRY004
    return data


def _options(row: dict[str, Any]) -> dict[str, str]:
    raw = row.get("options", row.get("choices"))
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = [p for p in re.split(r"\n+", raw) if p.strip()]
    if isinstance(raw, dict):
        return {str(k).strip().upper(): _PREFIX.sub("", str(v)).strip() for k, v in raw.items()}
    if isinstance(raw, list):
        return {chr(65 + i): _PREFIX.sub("", str(v)).strip() for i, v in enumerate(raw)}
    cols = {k: row[k] for k in "ABCDEFGH" if row.get(k) not in (None, "")}
    return {k: str(v).strip() for k, v in cols.items()}


def _answer(value: Any, options: dict[str, str]) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        letter = chr(65 + value)
        return letter if letter in options else None
    text = str(value).strip()
    m = re.fullmatch(r"\(?([A-Ha-h])\)?[.)]?", text)
    if m and m.group(1).upper() in options:
        return m.group(1).upper()
    text = _PREFIX.sub("", text).strip().lower()
    hits = [k for k, v in options.items() if v.strip().lower() == text]
    return hits[0] if len(hits) == 1 else None


def _image_bytes(value: Any, folder: Path) -> bytes | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and value:
        p = Path(value) if Path(value).is_absolute() else folder / value
        if p.is_file():
            return p.read_bytes()
        try:
            return base64.b64decode(value.split(",")[-1], validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def _png(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        img.thumbnail((MAX_SIDE, MAX_SIDE))
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        return buf.getvalue()


def _axis(task: str) -> str:
    if re.search(r"locali[sz]", task, re.IGNORECASE):
        return "level_identification"
    if re.search(r"diagnos|disease|patholog", task, re.IGNORECASE):
        return "pathology_assessment"
    return task or "external"


def import_external(path: Path, out: Path, image_root: Path | None = None, name: str | None = None) -> dict:
    """Convert an external MCQ file into a benchmark folder; returns its manifest."""
    path, out = Path(path), Path(out)
    rows = read_rows(path)
    folder = Path(image_root) if image_root else path.parent
    (out / "images").mkdir(parents=True, exist_ok=True)
    name = name or path.stem
    items: list[Item] = []
    skipped: Counter = Counter()
    seen: set[str] = set()
    for n, row in enumerate(rows):
        question = str(row.get("question") or "").strip()
        options = _options(row)
        answer = _answer(row.get("answer", row.get("label")), options)
        if not question or len(options) < 2 or answer is None:
            skipped["missing question, options or a usable answer"] += 1
            continue
        raw_id = str(row.get("id", row.get("question_id", n)))
        item_id = f"ext-{name}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', raw_id)}"
        if item_id in seen:
            item_id = f"{item_id}-{n}"
        seen.add(item_id)
        images = []
        raw_image = row.get("image", row.get("images"))
        if raw_image not in (None, "", []):
            data = _image_bytes(raw_image, folder)
            try:
                png = _png(data) if data else None
            except (UnidentifiedImageError, OSError):
                png = None
            if png is None:
                skipped["image unreadable"] += 1
                continue
            file = f"images/{hashlib.sha256(png).hexdigest()[:16]}.png"
            (out / file).write_bytes(png)
            images.append(file)
        task = str(row.get("task") or row.get("task_type") or row.get("category") or row.get("question_type") or "")
        items.append(Item(id=item_id, axis=_axis(task), format="mcq", modality="image+text" if images else "text",
                          subtype=task or "external", system=MCQ_SYSTEM, turns=[question], images=images,
                          options=options, answer=answer, review_status="external",
                          source={"kind": "external", "file": path.name, "row": n, "id": raw_id}))
    write_items(out / "items.jsonl", items)
    manifest = {"name": f"external benchmark {name}", "version": f"external-{name}", "imported_from": str(path),
                "source_sha256": sha256_file(path), "items": len(items), "skipped": dict(skipped),
                "by_axis": dict(Counter(i.axis for i in items))}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest
