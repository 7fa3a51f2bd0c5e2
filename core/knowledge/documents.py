"""Knowledge documents: strict front-matter parsing, loading a folder of Markdown files, chunking into passages.

A document is a Markdown file that starts with a front-matter block between two ``---`` lines. Each line of the
block is ``key: value`` where value is a bare string, ``true``/``false`` or a ``[list]`` whose items are bare words
or double-quoted strings (quote an item that contains a comma). No YAML dependency: the parser accepts exactly this
subset and names the file and line of anything else. Sections are ``## Heading`` lines; ``chunk`` turns every section
into one searchable :class:`Passage`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.spine.anatomy import VALID_LEVELS

REQUIRED_KEYS: tuple[str, ...] = ("id", "title", "topics", "levels", "modalities", "references", "reviewed")
LIST_KEYS = frozenset({"topics", "levels", "modalities", "references"})
MODALITIES = frozenset({"xray", "ct", "mri"})
ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_KEY_LINE_RE = re.compile(r"^([a-z_]+):\s*(.*)$")
_SECTION_RE = re.compile(r"^##\s+(.+?)\s*#*\s*$")


class KnowledgeError(ValueError):
    """A knowledge document is malformed; the message starts with the file (and line) at fault."""


@dataclass(frozen=True)
class KnowledgeDoc:
    id: str
    title: str
    topics: tuple[str, ...]
    levels: tuple[str, ...]
    modalities: tuple[str, ...]
    references: tuple[str, ...]
    reviewed: bool
    body: str
    path: Path
    body_line: int = 1  # 1-based line number of the first body line in the file


@dataclass(frozen=True)
class Passage:
    id: str  # "<doc-id>#<section-slug>"
    doc_id: str
    title: str  # "Doc title — Section"
    section: str
    text: str
    levels: tuple[str, ...]
    path: Path
    line: int  # 1-based line of the section heading in the source file


def _parse_list(raw: str, where: str) -> tuple[str, ...]:
    if not (raw.startswith("[") and raw.endswith("]")):
        raise KnowledgeError(f"{where}: expected a [list], got {raw!r}")
    inner = raw[1:-1].strip()
    items: list[str] = []
    i, n = 0, len(inner)
    while i < n:
        while i < n and inner[i] == " ":
            i += 1
        if i >= n:
            break
        if inner[i] == '"':
            end = inner.find('"', i + 1)
            if end < 0:
                raise KnowledgeError(f"{where}: unterminated quoted item in {raw!r}")
            item = inner[i + 1:end]
            i = end + 1
            while i < n and inner[i] == " ":
                i += 1
            if i < n and inner[i] != ",":
                raise KnowledgeError(f"{where}: unexpected text after quoted item in {raw!r}")
        else:
            end = inner.find(",", i)
            end = n if end < 0 else end
            item = inner[i:end].strip()
            if '"' in item or "[" in item or "]" in item:
                raise KnowledgeError(f"{where}: stray quote or bracket in item {item!r}")
            i = end
        if not item.strip():
            raise KnowledgeError(f"{where}: empty list item in {raw!r}")
        items.append(item.strip())
        if i < n:  # at a comma
            i += 1
            if not inner[i:].strip():
                raise KnowledgeError(f"{where}: trailing comma in {raw!r}")
    return tuple(items)


def parse_front_matter(text: str, path: Path | str = "<text>") -> tuple[dict[str, object], str, int]:
    """Split a document into (fields, body, body_line). Raises KnowledgeError naming ``path`` on any deviation."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise KnowledgeError(f"{path}: must start with a '---' front-matter line")
    try:
        close = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise KnowledgeError(f"{path}: front matter is not closed by a '---' line") from None
    fields: dict[str, object] = {}
    for lineno in range(2, close + 1):
        line = lines[lineno - 1]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{lineno}"
        m = _KEY_LINE_RE.match(line)
        if not m:
            raise KnowledgeError(f"{where}: expected 'key: value', got {line!r}")
        key, raw = m.group(1), m.group(2).strip()
        if key not in REQUIRED_KEYS:
            raise KnowledgeError(f"{where}: unknown key {key!r} (allowed: {', '.join(REQUIRED_KEYS)})")
        if key in fields:
            raise KnowledgeError(f"{where}: duplicate key {key!r}")
        if key in LIST_KEYS:
            fields[key] = _parse_list(raw, where)
        elif key == "reviewed":
            if raw not in ("true", "false"):
                raise KnowledgeError(f"{where}: reviewed must be true or false, got {raw!r}")
            fields[key] = raw == "true"
        else:
            if not raw or raw.startswith("["):
                raise KnowledgeError(f"{where}: {key} must be a non-empty plain value")
            fields[key] = raw.strip('"')
    missing = [k for k in REQUIRED_KEYS if k not in fields]
    if missing:
        raise KnowledgeError(f"{path}: missing front-matter key(s): {', '.join(missing)}")
    body = "\n".join(lines[close + 1:])
    return fields, body, close + 2


def _validate(fields: dict[str, object], path: Path) -> None:
    doc_id = str(fields["id"])
    if not ID_RE.match(doc_id):
        raise KnowledgeError(f"{path}: id {doc_id!r} is not kebab-case (lowercase letters, digits, hyphens)")
    if doc_id != path.stem:
        raise KnowledgeError(f"{path}: id {doc_id!r} must equal the file name stem {path.stem!r}")
    bad_levels = [lv for lv in fields["levels"] if lv not in VALID_LEVELS]  # type: ignore[union-attr]
    if bad_levels or not fields["levels"]:
        raise KnowledgeError(f"{path}: invalid or empty levels {bad_levels or '[]'} (e.g. C5, L4-L5, L5-S1 or all)")
    bad_mod = [m for m in fields["modalities"] if m not in MODALITIES]  # type: ignore[union-attr]
    if bad_mod:
        raise KnowledgeError(f"{path}: invalid modalities {bad_mod} (allowed: xray, ct, mri)")
    for key in ("topics", "references"):
        if not fields[key]:
            raise KnowledgeError(f"{path}: {key} must not be empty")


def parse_document(path: Path | str) -> KnowledgeDoc:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise KnowledgeError(f"{path}: not valid UTF-8 ({exc})") from exc
    fields, body, body_line = parse_front_matter(text, path)
    _validate(fields, path)
    return KnowledgeDoc(
        id=str(fields["id"]),
        title=str(fields["title"]),
        topics=fields["topics"],  # type: ignore[arg-type]
        levels=fields["levels"],  # type: ignore[arg-type]
        modalities=fields["modalities"],  # type: ignore[arg-type]
        references=fields["references"],  # type: ignore[arg-type]
        reviewed=bool(fields["reviewed"]),
        body=body,
        path=path,
        body_line=body_line,
    )


def default_folder() -> Path:
    from core.paths import RESOURCES

    return RESOURCES / "knowledge"


def document_files(folder: Path | str | None = None) -> list[Path]:
    folder = Path(folder) if folder is not None else default_folder()
    if not folder.is_dir():
        raise KnowledgeError(f"{folder}: knowledge folder not found")
    return sorted(p for p in folder.glob("*.md") if p.is_file())


def load_documents(folder: Path | str | None = None) -> list[KnowledgeDoc]:
    """Every ``*.md`` document in ``folder`` (default ``resources/knowledge``), sorted by id; ids must be unique."""
    docs: list[KnowledgeDoc] = []
    seen: dict[str, Path] = {}
    for path in document_files(folder):
        doc = parse_document(path)
        if doc.id in seen:
            raise KnowledgeError(f"{path}: duplicate id {doc.id!r} (also in {seen[doc.id]})")
        seen[doc.id] = path
        docs.append(doc)
    return sorted(docs, key=lambda d: d.id)


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "section"


def chunk(doc: KnowledgeDoc) -> list[Passage]:
    """One passage per ``##`` section (``###`` subsections stay inside their section). Text before the first
    ``##`` heading, if any besides a ``#`` title line, becomes an 'Overview' passage."""
    sections: list[tuple[str, int, list[str]]] = [("Overview", doc.body_line, [])]
    for offset, line in enumerate(doc.body.splitlines()):
        m = _SECTION_RE.match(line)
        if m:
            sections.append((m.group(1).strip(), doc.body_line + offset, []))
        elif not (line.startswith("# ") and len(sections) == 1):
            sections[-1][2].append(line)
    passages: list[Passage] = []
    used: set[str] = set()
    for heading, line, body_lines in sections:
        text = "\n".join(body_lines).strip()
        if not text:
            continue
        slug = base = slugify(heading)
        k = 2
        while slug in used:
            slug, k = f"{base}-{k}", k + 1
        used.add(slug)
        passages.append(
            Passage(
                id=f"{doc.id}#{slug}",
                doc_id=doc.id,
                title=f"{doc.title} \u2014 {heading}",
                section=heading,
                text=text,
                levels=doc.levels,
                path=doc.path,
                line=line,
            )
        )
    return passages
