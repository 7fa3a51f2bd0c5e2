"""The in-memory form of a generated item before it is stored, and its stable ids.

An :class:`ItemDraft` carries the content (per the task's schema) and everything provenance needs. Its ``job_key``
identifies the generation job (source chunk x task x subtask x generator x template version x seed x variant), so a
rerun skips jobs already done (resumable runs); the item id is derived from the job key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curation.store import stable_id


@dataclass
class ItemDraft:
    task: str  # mcq | open_qa | consultation | report
    subtask: str  # e.g. "definition_choice", "which_level_marked"
    content: dict[str, Any]
    source_id: str
    chunk_id: str
    location: str
    generator: str  # "template:kb-v1", "labels:grounded-v1", "llama-cpp:<model file>"
    generator_kind: str  # template | labels | llm
    prompt_template: str
    prompt_version: str
    seed: int = 0
    levels: list[str] = field(default_factory=list)
    region: str = ""
    images: list[str] = field(default_factory=list)  # paths relative to the store's image folder
    case_id: str = ""
    group_key: str = ""  # the unit a split keeps together: the case, or the knowledge document
    variant: str = ""  # distinguishes several items of one job (e.g. the vertebra marked)
    support: str = ""  # the text the answer must be supported by (passage or label facts)

    @property
    def modality(self) -> str:
        return "image+text" if self.images else "text"

    @property
    def job_key(self) -> str:
        return "|".join([self.chunk_id, self.task, self.subtask, self.generator, self.prompt_template,
                         self.prompt_version, str(self.seed), self.variant])

    @property
    def item_id(self) -> str:
        return stable_id(self.job_key)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.item_id, "job_key": self.job_key, "task": self.task, "subtask": self.subtask,
            "modality": self.modality, "region": self.region, "levels": self.levels, "content": self.content,
            "images": self.images, "source_id": self.source_id, "chunk_id": self.chunk_id, "location": self.location,
            "case_id": self.case_id, "group_key": self.group_key or self.case_id or self.source_id,
            "generator": self.generator, "generator_kind": self.generator_kind,
            "prompt_template": self.prompt_template, "prompt_version": self.prompt_version, "seed": self.seed,
        }
