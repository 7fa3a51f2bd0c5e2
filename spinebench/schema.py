"""The benchmark item and the benchmark folder (``items.jsonl`` + ``images/`` + ``manifest.json``).

One item per JSON line::

    {"id": "lvl-img-...", "axis": "level_identification", "format": "mcq", "modality": "image+text",
     "subtype": "image_sagittal", "system": "...", "turns": ["question text"], "images": ["images/x.png"],
     "options": {"A": "L2", "B": "L3", ...}, "answer": "B", "reference": null, "checks": {},
     "case_id": "spine-samples:tptbox_ct_lumbar_crop_L2-L4", "review_status": "by_construction",
     "source": {...provenance...}, "meta": {...}}

- ``format``: ``mcq`` (options + answer letter), ``open`` (free answer judged against ``reference``), ``report``
  (a structured report; ``checks`` holds what the deterministic checks need) or ``dialogue`` (``turns`` are the user
  turns of a consultation; the model's own answers become the history; ``checks`` holds one check per turn).
- ``modality``: ``image+text`` when ``images`` are part of the question, else ``text``. Images belong to the first
  user turn. Paths are relative to the benchmark folder.
- ``review_status`` says honestly who vouches for the answer: ``by_construction`` (derived from a label map or the
  anatomy tables in code), ``auto_gated`` (passed curation's automatic gates, not a clinician), ``accepted`` /
  ``edited`` (a human reviewer), ``external`` (an imported third-party benchmark).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.hashing import sha256_file

AXES = ("level_identification", "pathology_assessment", "surgical_planning", "report_generation", "consultation")
FORMATS = ("mcq", "open", "report", "dialogue")
MODALITIES = ("text", "image+text")
REVIEWED_STATUSES = ("accepted", "edited", "auto_gated")  # curated items the benchmark may use

MCQ_SYSTEM = ("You are a spine imaging assistant. Answer the multiple-choice question. "
              "Reply with the letter of the single best option.")
MCQ_INSTRUCTION = "Answer with the letter of the single best option."
OPEN_SYSTEM = "You are a spine imaging assistant. Answer the question briefly and precisely."


class BenchmarkError(ValueError):
    """A benchmark folder or item that cannot be used; the message names the file and line."""


@dataclass
class Item:
    id: str
    axis: str
    format: str
    modality: str
    turns: list[str]
    subtype: str = ""
    system: str | None = None
    images: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    answer: str | None = None
    reference: str | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    case_id: str | None = None
    review_status: str = "by_construction"
    source: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str = "") -> None:
        at = f"{where}: item {self.id!r}" if where else f"item {self.id!r}"
        if self.format not in FORMATS:
            raise BenchmarkError(f"{at}: unknown format {self.format!r} (known: {', '.join(FORMATS)})")
        if self.modality not in MODALITIES:
            raise BenchmarkError(f"{at}: unknown modality {self.modality!r}")
        if not self.turns or not all(isinstance(t, str) and t.strip() for t in self.turns):
            raise BenchmarkError(f"{at}: needs at least one non-empty user turn")
        if self.format == "mcq" and (len(self.options) < 2 or self.answer not in self.options):
            raise BenchmarkError(f"{at}: a multiple-choice item needs >= 2 options and an answer among them")
        if (self.modality == "image+text") != bool(self.images):
            raise BenchmarkError(f"{at}: modality {self.modality!r} does not match its {len(self.images)} image(s)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Item:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def mcq_text(item: Item) -> str:
    """The user text of a multiple-choice item: question, lettered options, instruction (same for every model).
    Items whose question already lists the options and says how to answer (``meta.options_in_text``, e.g. the
    curation export) are asked as they are."""
    if item.meta.get("options_in_text"):
        return item.turns[0].strip()
    options = "\n".join(f"{letter}. {text}" for letter, text in item.options.items())
    return f"{item.turns[0].strip()}\n\n{options}\n\n{MCQ_INSTRUCTION}"


def dumps(item: Item) -> str:
    return json.dumps(item.to_dict(), ensure_ascii=False, sort_keys=True)


def write_items(path: Path, items: list[Item]) -> None:
    ids = [i.id for i in items]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise BenchmarkError(f"duplicate item ids: {dupes[:5]}")
    for item in items:
        item.validate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(dumps(i) + "\n" for i in items), encoding="utf-8")


@dataclass
class Benchmark:
    folder: Path
    items: list[Item]
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.manifest.get("version") or self.folder.name)

    def image_bytes(self, item: Item) -> list[bytes]:
        return [(self.folder / p).read_bytes() for p in item.images]

    def fingerprint(self) -> str:
        return sha256_file(self.folder / "items.jsonl")[:16]


def load_benchmark(folder: Path | str) -> Benchmark:
    """Read ``items.jsonl`` (validated; image files must exist) and ``manifest.json`` (optional)."""
    folder = Path(folder)
    path = folder / "items.jsonl"
    if not path.is_file():
        raise BenchmarkError(f"{folder}: not a benchmark folder (no items.jsonl)")
    items: list[Item] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            item = Item.from_dict(json.loads(line))
        except (ValueError, TypeError) as exc:
            raise BenchmarkError(f"{where}: not a benchmark item ({exc})") from exc
        item.validate(where)
        if item.id in seen:
            raise BenchmarkError(f"{where}: duplicate item id {item.id!r}")
        seen.add(item.id)
        missing = [p for p in item.images if not (folder / p).is_file()]
        if missing:
            raise BenchmarkError(f"{where}: image file(s) missing: {missing}")
        items.append(item)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    return Benchmark(folder, items, manifest)
