"""Prompt templates for LLM drafting and revision: Markdown files in resources/curation_prompts/ with front matter.

    ---
    name: draft_mcq
    version: 1
    task: mcq
    ---
    <!-- comments are removed before sending -->
    text with {{placeholders}}

``render`` fails on a placeholder left unfilled, so a template change cannot silently send "{{passage}}" to a model.
Items record the template name and version (provenance); bump the version when the wording changes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.paths import RESOURCES

PROMPTS_DIR = RESOURCES / "curation_prompts"
_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    task: str
    text: str
    path: Path

    def render(self, **values: str) -> str:
        needed = set(_PLACEHOLDER.findall(self.text))
        missing = needed - set(values)
        if missing:
            raise KeyError(f"{self.path.name}: no value for placeholder(s) {sorted(missing)}")
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), self.text)


def load_template(name: str, folder: Path | None = None) -> PromptTemplate:
    path = (folder or PROMPTS_DIR) / f"{name}.md"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ValueError(f"{path}: a prompt template starts with a '---' front-matter block")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise ValueError(f"{path}: front matter not closed")
    fields = {}
    for line in lines[1:end]:
        if ":" in line:
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    for key in ("name", "version", "task"):
        if not fields.get(key):
            raise ValueError(f"{path}: front matter needs '{key}'")
    if fields["name"] != name:
        raise ValueError(f"{path}: name {fields['name']!r} must equal the file name {name!r}")
    body = _COMMENT.sub("", "\n".join(lines[end + 1:])).strip()
    return PromptTemplate(fields["name"], fields["version"], fields["task"], body, path)
