"""Two-stage generation into the store: draft (template, labels or LLM) -> revise -> item, every stage recorded.

    pipe = Pipeline(store, image_root, generator=LlamaJsonGenerator(model), workers=1)
    pipe.run_templates()                   # LLM-free items from every knowledge chunk
    pipe.run_grounded()                    # label-grounded items (and key images) from every case
    pipe.run_llm(tasks=("mcq", "open_qa"), limit=20)

Resumable: each generation job has a key (chunk x task x generator x template version x seed ...); jobs with an item
(or an LLM draft that failed, unless ``retry_failed``) are skipped, and every item is committed as soon as it is
revised, so a crash loses at most the jobs in flight. LLM jobs run on ``workers`` threads (useful with an
OpenAI-compatible server); progress goes to a ``core.tasks`` progress callback and a cancel token stops between jobs.
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from core.spine.anatomy import find_levels
from core.tasks import CancelToken, ProgressFn, check, report
from curation.generate.grounded import GroundedGenerator
from curation.generate.items import ItemDraft
from curation.generate.llm import JsonGenerator
from curation.generate.prompts import load_template
from curation.generate.revise import Revision, item_text, revise
from curation.generate.schemas import llm_schema
from curation.generate.templates import TemplateGenerator, specific_level
from curation.sources.cases import case_from_store
from curation.store import CurationStore

DRAFT_TEMPLATES = {"mcq": "draft_mcq", "open_qa": "draft_open", "consultation": "draft_consultation",
                   "report": "draft_report"}
SYSTEM = "You write training items for a spine-imaging decision-support assistant. Reply with JSON only."
PASSAGE_CHARS = 1500


class Pipeline:
    def __init__(self, store: CurationStore, image_root: Path | str, *, generator: JsonGenerator | None = None,
                 reviser: JsonGenerator | None = None, max_tokens: int = 320, temperature: float = 0.3,
                 workers: int = 1, retry_failed: bool = False, llm_revise: bool = True,
                 progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> None:
        self.store = store
        self.image_root = Path(image_root)
        self.generator = generator
        self.reviser = reviser if reviser is not None else (generator if llm_revise else None)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.workers = max(1, workers)
        self.retry_failed = retry_failed
        self.progress = progress
        self.cancel = cancel
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    # --- storing one draft + revision + item ------------------------------------------------------------------
    def _levels(self, draft: ItemDraft) -> list[str]:
        if draft.generator_kind == "labels":
            return draft.levels
        found = find_levels(item_text(draft.task, draft.content))
        return found

    def commit(self, draft: ItemDraft, *, prompt: str = "", raw: str = "", elapsed_s: float = 0.0,
               revision: Revision | None = None) -> str:
        """Store the draft, revise it (unless given), store the revision and the item; returns the item id."""
        draft_id = self.store.add_draft(
            job_key=draft.job_key, item_id=draft.item_id, task=draft.task, generator=draft.generator,
            generator_kind=draft.generator_kind, prompt_template=draft.prompt_template,
            prompt_version=draft.prompt_version, seed=draft.seed, prompt=prompt,
            raw_output=raw or json.dumps(draft.content, ensure_ascii=False), parsed=draft.content, ok=1, error="",
            elapsed_s=elapsed_s)
        if revision is None:
            revision = revise(draft.task, draft.content, support=draft.support, allowed_levels=set(draft.levels),
                              generator_kind=draft.generator_kind, reviser=None)
        draft.content = revision.content
        row = draft.row()
        row["levels"] = self._levels(draft)
        row["draft_id"] = draft_id
        row["gate_report"] = {"revise": revision.problems} if revision.problems else {}
        row["review_status"] = "auto_rejected" if revision.problems else "pending"
        item_id = self.store.add_item(row)
        revision_id = self.store.add_revision(
            item_id=item_id, draft_id=draft_id, generator=revision.generator,
            prompt_template=revision.prompt_template, prompt_version=revision.prompt_version,
            critique=revision.critique, changes=revision.changes, result=revision.content, ok=int(revision.ok),
            elapsed_s=revision.elapsed_s)
        self.store.update_item(item_id, revision_id=revision_id)
        with self._lock:
            self.counts["items"] += 1
            self.counts["auto_rejected" if revision.problems else "pending"] += 1
        return item_id

    def _skip(self, draft_key: str) -> bool:
        if self.store.has_job(draft_key):
            return True
        if not self.retry_failed:
            rows = list(self.store.db["drafts"].rows_where("job_key = ? AND ok = 0", [draft_key], limit=1))
            return bool(rows)
        return False

    # --- template (LLM-free) items from the knowledge base ---------------------------------------------------
    def run_templates(self, source_ids: list[str] | None = None) -> Counter[str]:
        gen = TemplateGenerator()
        sources = [s for s in self.store.sources("knowledge_doc") if not source_ids or s["id"] in source_ids]
        for n, source in enumerate(sources):
            check(self.cancel)
            report(self.progress, n / max(1, len(sources)), f"templates: {source['id']}")
            chunks = self.store.chunks(source["id"])
            for chunk in chunks:
                for draft in gen.items(chunk, chunks, region=source["region"], topics=source["meta"].get("topics")):
                    if self._skip(draft.job_key):
                        self.counts["skipped"] += 1
                        continue
                    self.commit(draft)
        report(self.progress, 1.0, "templates done")
        return self.counts

    # --- label-grounded items from cases ---------------------------------------------------------------------
    def run_grounded(self, case_ids: list[str] | None = None) -> Counter[str]:
        gen = GroundedGenerator(self.image_root)
        sources = [s for s in self.store.sources("case")
                   if not case_ids or s["id"].removeprefix("case:") in case_ids]
        for n, source in enumerate(sources):
            check(self.cancel)
            report(self.progress, n / max(1, len(sources)), f"labels: {source['id']}")
            case = case_from_store(source)
            drafts, notes = gen.items(case)
            self.counts["notes"] += len(notes)
            for draft in drafts:
                if self._skip(draft.job_key):
                    self.counts["skipped"] += 1
                    continue
                self.commit(draft)
        report(self.progress, 1.0, "labels done")
        return self.counts

    # --- LLM items -------------------------------------------------------------------------------------------
    def llm_jobs(self, tasks: tuple[str, ...], seed: int, source_ids: list[str] | None = None,
                 limit: int | None = None) -> list[tuple[dict, dict, str]]:
        """(chunk, source, task) jobs not yet done, in a stable order; knowledge chunks only."""
        if self.generator is None:
            raise ValueError("no generator: give a model (GGUF) or an OpenAI-compatible endpoint")
        jobs = []
        for source in self.store.sources("knowledge_doc"):
            if source_ids and source["id"] not in source_ids:
                continue
            for chunk in self.store.chunks(source["id"]):
                if len(chunk["text"]) < 200:
                    continue
                for task in tasks:
                    if task in ("consultation",) and not specific_level(chunk["levels"], chunk["text"]):
                        continue
                    template = load_template(DRAFT_TEMPLATES[task])
                    key = ItemDraft(task, "llm_" + task, {}, source["id"], chunk["id"], chunk["location"],
                                    self.generator.name, "llm", template.name, template.version, seed).job_key
                    if not self._skip(key):
                        jobs.append((chunk, source, task))
        jobs.sort(key=lambda j: (j[0]["id"], j[2]))
        return jobs[:limit] if limit else jobs

    def _llm_one(self, chunk: dict, source: dict, task: str, seed: int) -> str | None:
        template = load_template(DRAFT_TEMPLATES[task])
        level = specific_level(chunk["levels"], chunk["text"]) or "the level in question"
        prompt = template.render(title=chunk["title"], passage=chunk["text"][:PASSAGE_CHARS], level=level,
                                 levels_in_view=level)
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        result = self.generator.generate(messages, llm_schema(task), max_tokens=self.max_tokens, seed=seed,
                                         temperature=self.temperature)
        draft = ItemDraft(task=task, subtask="llm_" + task, content=result.parsed or {}, source_id=source["id"],
                          chunk_id=chunk["id"], location=chunk["location"], generator=self.generator.name,
                          generator_kind="llm", prompt_template=template.name, prompt_version=template.version,
                          seed=seed, levels=[] if "all" in chunk["levels"] else list(chunk["levels"]),
                          region=source["region"], group_key=source["id"], support=chunk["text"])
        if result.parsed is None:
            self.store.add_draft(job_key=draft.job_key, item_id="", task=task, generator=self.generator.name,
                                 generator_kind="llm", prompt_template=template.name,
                                 prompt_version=template.version, seed=seed, prompt=prompt, raw_output=result.raw,
                                 parsed=None, ok=0, error=result.error, elapsed_s=result.elapsed_s)
            with self._lock:
                self.counts["llm_failed"] += 1
            return None
        revision = revise(task, result.parsed, support=chunk["text"], allowed_levels=set(draft.levels),
                          generator_kind="llm", reviser=self.reviser, max_tokens=self.max_tokens, seed=seed)
        with self._lock:
            self.counts["llm_drafted"] += 1
        return self.commit(draft, prompt=prompt, raw=result.raw, elapsed_s=result.elapsed_s, revision=revision)

    def run_llm(self, tasks: tuple[str, ...] = ("mcq", "open_qa"), *, seed: int = 0,
                source_ids: list[str] | None = None, limit: int | None = None) -> Counter[str]:
        jobs = self.llm_jobs(tasks, seed, source_ids, limit)
        total = len(jobs)
        done = 0
        report(self.progress, 0.0, f"LLM: {total} jobs")
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            pending: set[Future[Any]] = set()
            it = iter(jobs)
            while True:
                while len(pending) < self.workers * 2:
                    if self.cancel is not None and self.cancel.cancelled:
                        break
                    try:
                        chunk, source, task = next(it)
                    except StopIteration:
                        break
                    pending.add(pool.submit(self._llm_one, chunk, source, task, seed))
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    f.result()
                    done += 1
                    report(self.progress, done / max(1, total), f"LLM: {done}/{total}")
        check(self.cancel)
        return self.counts
