"""The datasheet of an export: Markdown with the counts that matter (task, modality, region, level, source, review
status, generator kind, split), the sources with their licences, how the data was made, and its limits; and a PNG
with the same counts as bar charts (matplotlib, Agg backend: no display needed).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from curation.store import CurationStore

_STATUS_MEANING = {
    "accepted": "accepted by a human reviewer",
    "edited": "edited and accepted by a human reviewer",
    "auto_gated": "passed the automatic quality gates only - NOT reviewed by a clinician",
    "pending": "not reviewed and not gated",
}


def _table(counter: Counter, header: str, limit: int | None = None) -> str:
    rows = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    if limit:
        rest = sum(v for _, v in rows[limit:])
        rows = rows[:limit] + ([("(others)", rest)] if rest else [])
    lines = [f"| {header} | items |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def counts(records: list[dict[str, Any]]) -> dict[str, Counter]:
    c: dict[str, Counter] = {k: Counter() for k in ("task", "subtask", "axis", "modality", "region", "level", "source",
                                                     "dataset", "review_status", "generator_kind", "split",
                                                     "split_x_status")}
    for rec in records:
        r = rec["meta"]
        c["task"][r["task"]] += 1
        c["subtask"][f"{r['task']}/{r['subtask']}"] += 1
        c["axis"][r["axis"]] += 1
        c["modality"][r["modality"]] += 1
        c["region"][r["region"]] += 1
        for lv in r["levels"] or ["(none named)"]:
            c["level"][lv] += 1
        prov = rec["provenance"]
        c["source"][prov["source_id"]] += 1
        is_kb = prov["source_kind"] == "knowledge_doc"
        c["dataset"]["knowledge base" if is_kb else prov["source_id"].split(":")[1]] += 1
        c["review_status"][r["review_status"]] += 1
        c["generator_kind"][prov["generator_kind"]] += 1
        c["split"][r["split"]] += 1
        c["split_x_status"][f"{r['split']} / {r['review_status']}"] += 1
    return c


def plot(c: dict[str, Counter], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("task", "Task"), ("review_status", "Review status"), ("split", "Split"), ("region", "Region"),
              ("generator_kind", "Generator"), ("level", "Levels (top 15)")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    for ax, (key, label) in zip(axes.ravel(), panels):
        items = sorted(c[key].items(), key=lambda kv: (-kv[1], str(kv[0])))[:15]
        names = [str(k) for k, _ in items][::-1]
        values = [v for _, v in items][::-1]
        ax.barh(names, values, color="#4a7ab5")
        ax.set_title(label)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v}", va="center", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_xlim(0, max(values or [1]) * 1.18)
    fig.suptitle(f"{title}: {sum(c['split'].values())} items")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _files(out: Path) -> str:
    rows = ["| file | size |", "|---|---:|"]
    for name in ("train.jsonl", "val.jsonl", "bench.jsonl", "images", "hf", "manifest.json"):
        path = out / name
        if path.is_file():
            size = path.stat().st_size
        elif path.is_dir():
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        else:
            continue
        rows.append(f"| {name}{'/' if path.is_dir() else ''} | {size / 1024:.0f} KiB |")
    rows.append("")
    rows.append("Record layout (one JSON object per line): `messages` (system/user/assistant; a user turn with key "
                "images has list content with one `{\"type\": \"image\"}` part per entry of `images`), `images` "
                "(paths relative to this folder), `meta` (id, split, stage, task, subtask, axis, modality, region, "
                "levels, review_status, case_id, source_id, location; options and answer letter for multiple "
                "choice), `reference` (the structured item) and `provenance` (source, location, generator, prompt "
                "template and version, seed, draft and revision ids in the curation store, reviews). Without `hf/`, "
                "`spinemed-curate export` writes the Hugging Face copy, or use "
                "`datasets.load_dataset(\"json\", data_files=...)`.")
    return "\n".join(rows)


def write_datasheet(records: list[dict[str, Any]], store: CurationStore, out: Path, *, title: str,
                    include: tuple[str, ...] = ()) -> Path:
    c = counts(records)
    plot(c, out / "datasheet.png", title)
    sources = {r["provenance"]["source_id"] for r in records}

    licences = Counter()
    for sid in sources:
        s = store.source(sid) or {}
        key = "knowledge base (project documents)" if s.get("kind") == "knowledge_doc" else f"{sid}"
        licences[(key, s.get("licence", ""), s.get("origin", ""))] += 1
    lic_rows = ["| source | licence | origin |", "|---|---|---|"]
    for (name, lic, origin), _ in sorted(licences.items()):
        lic_rows.append(f"| {name} | {lic} | {origin} |")
    status_lines = [f"- **{k}** ({v} items): {_STATUS_MEANING.get(k, k)}" for k, v in
                    sorted(c["review_status"].items())]
    text = f"""# {title} - datasheet

![counts](datasheet.png)

## Summary
- {len(records)} items: {", ".join(f"{k} {v}" for k, v in sorted(c["split"].items()))}.
- Exported review statuses: {", ".join(["accepted", "edited", *include])}.
{chr(10).join(status_lines)}

**Review status, honestly:** items marked `auto_gated` passed schema validation, near-duplicate removal, the
answer-support / level-consistency checks of the revise stage and the PHI scan. No clinician has reviewed them.
Use them for development and for training experiments; do not present them as clinically validated.

## Composition
{_table(c["task"], "task")}

{_table(c["subtask"], "task/subtask")}

{_table(c["axis"], "axis")}

{_table(c["modality"], "modality")}

{_table(c["region"], "region")}

{_table(c["dataset"], "source dataset")}

{_table(c["generator_kind"], "generator kind")}

{_table(c["review_status"], "review status")}

{_table(c["split_x_status"], "split / review status")}

{_table(c["level"], "level named", limit=30)}

{_table(c["source"], "source", limit=25)}

## Files
{_files(out)}

## Sources and licences
{chr(10).join(lic_rows)}

Key images are rendered from the labelled cases (sagittal plane through the labelled vertebrae, labels and markers
drawn from the label maps). Images derived from CC BY-SA data (VerSe) are shared under CC BY-SA 4.0 with attribution.

## How it was made
1. Sources: the project's knowledge base (resources/knowledge, one chunk per section, located by file and line)
   and labelled imaging cases (label maps with level names; DICOM is de-identified with the PS3.15 Basic Profile
   before use).
2. Draft: LLM-free templates over the passages (answers are passage text), label-grounded generators over the
   cases (answers computed from the label maps), and - where run - the embedded LLM with schema-constrained JSON.
3. Revise: rule fixes and checks against written criteria (schema, answer supported by the cited passage, levels
   and numbers present in the source); LLM drafts are also critiqued by the model; every change is recorded.
4. Gates: schema, near duplicates (MinHash, Jaccard >= 0.8), MCQ answer-position balance, PHI scan.
5. Split by case / knowledge document (near-duplicate groups merged); the cases SpineBench is built from (manifest
   `held_out_cases`, see spinebench/holdout.py) are pinned to bench; leakage check between train and bench.
Every record's `provenance` names the source, its location, the generator, the prompt template and version, the
seed, the draft and revision ids in the curation store, and the reviews.

## Limits
- Template items repeat the knowledge base's wording; label-grounded items cover few cases and regions.
- The embedded model (SmolLM2-135M) writes weak drafts: most are rejected by the gates.
- The knowledge documents themselves are marked `reviewed: false` (not yet reviewed by a clinician).
- Decision support only: nothing here is a diagnosis.
"""
    path = out / "datasheet.md"
    path.write_text(text, encoding="utf-8")
    return path
