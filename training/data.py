"""Chat data for supervised fine-tuning: records -> token ids with the loss on assistant tokens only.

Records are the curation export's chat JSONL (one per line)::

    {"messages": [{"role": "system"|"user"|"assistant", "content": "..." | [{"type": "text", "text": ...},
                                                                          {"type": "image"}]}, ...],
     "images": ["key_images/case12_L4.png", ...],      # one per {"type": "image"} part, in order
     "meta": {"stage": "spine", "task": "mcq", ...}}

Each sample is rendered with the base's chat template (``tokenizer.apply_chat_template``), tokenised once with
character offsets, and every token that overlaps an assistant message's content gets its id as label, plus the
end-of-turn token that follows it (``<|im_end|>``, ``<end_of_turn>``) so the model learns to stop; every other token
(system, user, template markup, padding) is -100. Multi-turn samples train on every assistant turn.

Batching: ``bucket`` (the Trainer's length-grouped sampler on a ``length`` column), ``pack`` (first-fit-decreasing
bins of ``max_length`` tokens; position ids restart per sample and no attention mask is passed, so transformers builds
a block-diagonal causal mask and samples never attend to each other), or ``none``.

Vision-language bases (Qwen2-VL / Qwen2.5-VL family) go through :class:`VisionSFTDataset`: the template renders one
image token per image; the image processor's patch grid says how many tokens each image takes
(``grid_t * grid_h * grid_w / merge_size**2``) and the token is repeated that many times, labels -100.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

IGNORE = -100

TEMPLATES = {
    # ChatML, as SmolLM2 / Qwen use it; content may be a string or a list of text parts
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
        "{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    # Gemma turns (Gemma 3 base has the tokens but no template); the system prompt is prepended to the first user turn
    "gemma": (
        "{{ bos_token }}{% set ns = namespace(sys='') %}{% for m in messages %}"
        "{% set text = m['content'] if m['content'] is string else "
        "(m['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('')) %}"
        "{% if m['role'] == 'system' %}{% set ns.sys = text + '\n\n' %}{% else %}"
        "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
        "{% if m['role'] == 'user' %}{{ ns.sys }}{% set ns.sys = '' %}{% endif %}{{ text | trim }}<end_of_turn>\n"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    ),
}


class DataError(ValueError):
    """A training record or file that cannot be used; the message names the file and line."""


# --- reading --------------------------------------------------------------------------------------------------
@dataclass
class Record:
    messages: list[dict[str, Any]]
    images: list[str]
    meta: dict[str, Any]
    where: str  # "file.jsonl:12"
    folder: Path  # relative image paths are resolved against this


def _check_record(obj: Any, where: str) -> None:
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list) or not obj["messages"]:
        raise DataError(f"{where}: expected an object with a non-empty \"messages\" list")
    for i, m in enumerate(obj["messages"]):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise DataError(f"{where}: messages[{i}] needs a role of system, user or assistant, got {m!r:.80}")
        if not isinstance(m.get("content"), (str, list)):
            raise DataError(f"{where}: messages[{i}].content must be a string or a list of parts")
    if not any(m["role"] == "assistant" for m in obj["messages"]):
        raise DataError(f"{where}: no assistant message, nothing to learn")


def read_records(files: Iterable[str | Path], images_root: str | Path | None = None) -> list[Record]:
    """Records of JSONL files (or ``datasets`` folders saved with save_to_disk), validated, in file order."""
    out: list[Record] = []
    for f in files:
        path = Path(f)
        folder = Path(images_root) if images_root else path.parent
        if path.is_dir():
            import datasets

            try:
                ds = datasets.load_from_disk(str(path))
            except (FileNotFoundError, ValueError) as exc:
                raise DataError(f"{path}: not a datasets folder saved with save_to_disk ({exc})") from exc
            if isinstance(ds, datasets.DatasetDict):
                raise DataError(f"{path}: a DatasetDict; point at one split's folder (e.g. {path}/train)")
            rows: Iterable[tuple[str, Any]] = ((f"{path}[{i}]", row) for i, row in enumerate(ds))
        elif path.is_file():
            def lines(p: Path = path) -> Iterable[tuple[str, Any]]:
                with p.open(encoding="utf-8") as fh:
                    for n, line in enumerate(fh, 1):
                        if not line.strip():
                            continue
                        try:
                            yield f"{p}:{n}", json.loads(line)
                        except ValueError as exc:
                            raise DataError(f"{p}:{n}: not valid JSON ({exc})") from exc
            rows = lines()
        else:
            raise DataError(f"{path}: no such training file or folder")
        for where, obj in rows:
            _check_record(obj, where)
            images = obj.get("images") or []
            n_parts = sum(1 for m in obj["messages"] if isinstance(m["content"], list)
                          for c in m["content"] if isinstance(c, dict) and c.get("type") == "image")
            if n_parts != len(images):
                raise DataError(f"{where}: {n_parts} image part(s) in the messages but {len(images)} path(s) in "
                                "\"images\"")
            out.append(Record(obj["messages"], list(images), dict(obj.get("meta") or {}), where, folder))
    return out


def _lookup(record: Record, dotted: str) -> Any:
    node: Any = {"meta": record.meta, "messages": record.messages, "images": record.images}
    parts = dotted.split(".")
    if parts[0] not in node:  # a bare key means meta.<key>
        parts = ["meta", *parts]
    for p in parts:
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


def matches(record: Record, flt: dict[str, Any]) -> bool:
    """All filter keys match; a list of wanted values matches any of them; list-valued fields match on overlap."""
    for key, wanted in flt.items():
        value = _lookup(record, key)
        wanted_set = set(map(str, wanted)) if isinstance(wanted, list) else {str(wanted)}
        have = set(map(str, value)) if isinstance(value, list) else {str(value)} if value is not None else set()
        if not wanted_set & have:
            return False
    return True


def files_fingerprint(files: Iterable[str | Path]) -> str:
    """Short sha256 over the training files' bytes (the data version when none is given)."""
    h = hashlib.sha256()
    for f in sorted(str(p) for p in files):
        p = Path(f)
        if p.is_file():
            with p.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        elif p.is_dir():
            for q in sorted(p.rglob("*")):
                if q.is_file():
                    h.update(q.name.encode())
                    h.update(q.read_bytes())
    return h.hexdigest()[:12]


# --- chat template --------------------------------------------------------------------------------------------
def set_chat_template(tokenizer: Any, override: str | None) -> str:
    """Install the template override (built-in name, .jinja file or Jinja text); refuse a base without template."""
    if override:
        if override in TEMPLATES:
            tokenizer.chat_template = TEMPLATES[override]
        elif "{%" in override or "{{" in override:
            tokenizer.chat_template = override
        else:
            path = Path(override)
            if not path.is_file():
                raise DataError(f"base.chat_template: template file {path} not found")
            tokenizer.chat_template = path.read_text(encoding="utf-8")
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("the base model has no chat template (a base, not an instruct, model): set "
                        f"base.chat_template to one of {', '.join(TEMPLATES)}, a .jinja file or Jinja text")
    return tokenizer.chat_template


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text")


def _has_images(record: Record) -> bool:
    return bool(record.images)


def prepare_messages(record: Record, default_system: str | None, vision: bool) -> list[dict[str, Any]]:
    msgs = [dict(m) for m in record.messages]
    if default_system and msgs[0]["role"] != "system":
        msgs.insert(0, {"role": "system", "content": default_system})
    if not vision:
        msgs = [{"role": m["role"], "content": _text_of(m["content"])} for m in msgs]
    else:  # parts without extra keys: templates test c['type'] only
        msgs = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else
                 [{"type": "image"} if c.get("type") == "image" else {"type": "text", "text": c.get("text", "")}
                  for c in m["content"]]} for m in msgs]
    return msgs


def _special_ids(tokenizer: Any) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for tid, tok in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items():
        if getattr(tok, "special", False):
            ids.add(int(tid))
    return ids


def encode_chat(tokenizer: Any, messages: list[dict[str, Any]], where: str = "") -> dict[str, list[int]]:
    """Render with the chat template, tokenise once, labels = ids on assistant content + its end-of-turn token."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    cursor, spans = 0, []
    for i, m in enumerate(messages):
        content = _text_of(m["content"]).strip()
        if not content:
            continue
        start = text.find(content, cursor)
        if start < 0:
            if m["role"] == "assistant":
                raise DataError(f"{where}: the chat template did not render assistant message {i} verbatim; "
                                "cannot locate its tokens for the loss")
            continue
        cursor = start + len(content)
        if m["role"] == "assistant":
            spans.append((start, cursor))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets = enc["offset_mapping"]
    labels = [IGNORE] * len(ids)
    special = _special_ids(tokenizer)
    for s, e in spans:
        last = -1
        for t, (a, b) in enumerate(offsets):
            if a < e and b > s and b > a:
                labels[t] = ids[t]
                last = t
        if last >= 0 and last + 1 < len(ids) and ids[last + 1] in special:
            labels[last + 1] = ids[last + 1]  # the end-of-turn marker: learn to stop
    return {"input_ids": ids, "labels": labels}


# --- text datasets --------------------------------------------------------------------------------------------
@dataclass
class DataStats:
    records: int = 0
    used: int = 0
    filtered_out: int = 0
    skipped_images: int = 0
    dropped_overlong: int = 0
    truncated: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    sequences: int = 0
    files: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.used}/{self.records} samples used ({self.filtered_out} filtered out, {self.skipped_images} "
                f"with images skipped, {self.dropped_overlong} too long dropped, {self.truncated} truncated), "
                f"{self.tokens} tokens of which {self.trained_tokens} trained, {self.sequences} sequences")


def encode_records(tokenizer: Any, records: list[Record], *, max_length: int, overlong: str = "drop",
                   default_system: str | None = None, flt: dict[str, Any] | None = None,
                   skip_image_samples: bool = True, stats: DataStats | None = None) -> list[dict[str, Any]]:
    stats = stats if stats is not None else DataStats()
    out: list[dict[str, Any]] = []
    for rec in records:
        stats.records += 1
        if flt and not matches(rec, flt):
            stats.filtered_out += 1
            continue
        if _has_images(rec):
            if not skip_image_samples:
                raise DataError(f"{rec.where}: an image sample, but the base is a text model "
                                "(set data.skip_image_samples: true or use a vision base)")
            stats.skipped_images += 1
            continue
        ex = encode_chat(tokenizer, prepare_messages(rec, default_system, vision=False), rec.where)
        if len(ex["input_ids"]) > max_length:
            if overlong == "drop":
                stats.dropped_overlong += 1
                continue
            ex = {k: v[:max_length] for k, v in ex.items()}
            stats.truncated += 1
        n_trained = sum(1 for x in ex["labels"] if x != IGNORE)
        if n_trained == 0:
            stats.dropped_overlong += 1
            continue
        ex["length"] = len(ex["input_ids"])
        stats.used += 1
        stats.tokens += ex["length"]
        stats.trained_tokens += n_trained
        out.append(ex)
    return out


def pack_examples(examples: list[dict[str, Any]], max_length: int) -> list[dict[str, Any]]:
    """First-fit-decreasing bins of at most max_length tokens; position ids restart at 0 for every sample."""
    order = sorted(range(len(examples)), key=lambda i: -examples[i]["length"])
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = examples[i]["length"]
        for b, free in enumerate(room):
            if n <= free:
                bins[b].append(i)
                room[b] -= n
                break
        else:
            bins.append([i])
            room.append(max_length - n)
    packed = []
    for members in bins:
        ids, labels, pos = [], [], []
        for i in sorted(members):
            ids += examples[i]["input_ids"]
            labels += examples[i]["labels"]
            pos += list(range(examples[i]["length"]))
        packed.append({"input_ids": ids, "labels": labels, "position_ids": pos, "length": len(ids)})
    return packed


class SFTCollator:
    """Pads a batch (labels -100). Packed rows get position_ids and no attention mask (block-diagonal attention).

    Adds ``spinemed_num_tokens`` (real, unpadded tokens), which the trainer counts for tokens/s and removes before
    the forward pass.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        packed = "position_ids" in features[0]
        width = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        pos = torch.zeros((len(features), width), dtype=torch.long)
        for r, f in enumerate(features):
            n = len(f["input_ids"])
            ids[r, :n] = torch.tensor(f["input_ids"])
            labels[r, :n] = torch.tensor(f["labels"])
            mask[r, :n] = 1
            if packed:
                pos[r, :n] = torch.tensor(f["position_ids"])
                pos[r, n:] = torch.arange(width - n)  # the padding is one more (ignored) segment
        batch: dict[str, Any] = {"input_ids": ids, "labels": labels, "spinemed_num_tokens": mask.sum()}
        if packed:
            batch["position_ids"] = pos
        else:
            batch["attention_mask"] = mask
        return batch


def build_text_dataset(examples: list[dict[str, Any]], batching: str, max_length: int) -> Any:
    import datasets

    rows = pack_examples(examples, max_length) if batching == "pack" else examples
    if not rows:
        return None
    return datasets.Dataset.from_list(rows)


# --- vision-language ------------------------------------------------------------------------------------------
class VisionSFTDataset:
    """Image+text records for Qwen2-VL-style models, encoded on access (images are loaded lazily).

    ``image_token_id``: the placeholder the chat template renders once per image; it is repeated
    ``grid.prod() // merge_size**2`` times, as the model's processor would do.
    """

    def __init__(self, records: list[Record], tokenizer: Any, image_processor: Any, image_token_id: int, *,
                 max_length: int, default_system: str | None = None, merge_size: int | None = None) -> None:
        self.records = records
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.image_token_id = image_token_id
        self.max_length = max_length
        self.default_system = default_system
        self.merge_size = merge_size or getattr(image_processor, "merge_size", None) or 2

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from PIL import Image

        rec = self.records[i]
        ex = encode_chat(self.tokenizer, prepare_messages(rec, self.default_system, vision=True), rec.where)
        out: dict[str, Any] = {}
        counts: list[int] = []
        if rec.images:
            imgs = []
            for p in rec.images:
                path = Path(p) if Path(p).is_absolute() else rec.folder / p
                if not path.is_file():
                    raise DataError(f"{rec.where}: image {path} not found")
                with Image.open(path) as im:
                    imgs.append(im.convert("RGB"))
            proc = self.image_processor(images=imgs, return_tensors="pt")
            out["pixel_values"] = proc["pixel_values"]
            out["image_grid_thw"] = proc["image_grid_thw"]
            counts = [int(g.prod()) // self.merge_size ** 2 for g in proc["image_grid_thw"]]
        n_placeholders = ex["input_ids"].count(self.image_token_id)
        if n_placeholders != len(counts):
            raise DataError(f"{rec.where}: the chat template rendered {n_placeholders} image token(s) for "
                            f"{len(counts)} image(s); does the template handle {{'type': 'image'}} parts?")
        ids, labels, k = [], [], 0
        for tid, lab in zip(ex["input_ids"], ex["labels"]):
            if tid == self.image_token_id:
                ids += [tid] * counts[k]
                labels += [IGNORE] * counts[k]
                k += 1
            else:
                ids.append(tid)
                labels.append(lab)
        if len(ids) > self.max_length:
            raise DataError(f"{rec.where}: {len(ids)} tokens with the image tokens, over data.max_length "
                            f"{self.max_length}; raise it or lower the image resolution")
        out.update(input_ids=ids, labels=labels)
        return out


class VisionCollator(SFTCollator):
    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = super().__call__([{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features])
        with_images = [f for f in features if "pixel_values" in f]
        if with_images:
            batch["pixel_values"] = torch.cat([f["pixel_values"] for f in with_images])
            batch["image_grid_thw"] = torch.cat([f["image_grid_thw"] for f in with_images])
        return batch


def image_token_id(model_config: Any, tokenizer: Any) -> int:
    tid = getattr(model_config, "image_token_id", None) or getattr(model_config, "image_token_index", None)
    if tid is None:
        tid = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    if tid is None or tid == getattr(tokenizer, "unk_token_id", None):
        raise DataError("cannot tell which token stands for an image: the model config has no image_token_id")
    return int(tid)
