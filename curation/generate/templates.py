"""LLM-free items from knowledge passages (the fallback generator, recorded as ``template:kb`` in provenance).

Every answer is text of the passage itself, so it is supported by construction:

- ``definition_choice`` (MCQ): a passage list item "- Term: description" becomes "which term is described as ...?",
  with the other terms of the same list (or, for short lists, of the same document) as distractors;
- ``definition`` (open): "what does the knowledge base say about <term>?" -> the description;
- ``section_summary`` (open): "what are the key points on <section> in <document>?" -> the first sentences;
- ``kb_consultation`` (consultation): a patient asks about a topic at one of the document's levels; the clinician
  answers with passage sentences and says the images decide.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from core.spine.anatomy import ALL_LEVELS, TEXT_SEGMENTS, TEXT_VERTEBRAE, find_levels
from curation.generate.items import ItemDraft

GENERATOR = "template:kb"
VERSION = "1"
_DEF = re.compile(r"^\s*[-*]\s+(?:\*\*)?([^:*]{2,70}?)(?:\*\*)?:\s+(.{10,})$")
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_MAX_ANSWER = 700
# list labels that name a heading-like category rather than a term: fine as open questions, poor as MCQ answers
GENERIC_TERMS = frozenset({
    "management", "clinical features", "imaging", "treatment", "definition", "presentation", "causes", "diagnosis",
    "mri", "ct", "radiographs", "surgery", "prognosis", "risk factors", "indications", "outcomes", "complications",
    "follow-up", "urgent or emergency", "cervical", "thoracic", "lumbar", "intact", "unilateral", "bilateral",
    "examples", "limitations", "evidence", "symptoms", "signs"})
# sections that are about the document or the workstation, not about a patient's condition: no consultation
NO_CONSULTATION = frozenset({
    "overview", "purpose", "workstation use", "workstation-generated content", "references", "reporting",
    "pitfalls", "why structure", "why numbering fails", "level accuracy", "level confirmation", "measurements",
    "safety", "when to use it", "use in decisions", "reliability", "limitations"})


@dataclass
class Definition:
    term: str
    description: str
    line: int  # line offset inside the passage


def definitions(text: str) -> list[Definition]:
    out = []
    for n, line in enumerate(text.splitlines()):
        m = _DEF.match(line)
        if m and not m.group(1).strip().endswith(("e.g.", "i.e.")):
            out.append(Definition(m.group(1).strip(), m.group(2).strip(), n))
    return out


def sentences(text: str) -> list[str]:
    """Sentences of a passage, list markers removed, headings and empty lines dropped."""
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "**Decision support note")):
            continue
        line = re.sub(r"^[-*]\s+", "", line)
        line = line.replace("**", "")
        if line and line[-1] not in ".!?:;":
            line += "."
        lines.append(line)
    out = []
    for line in lines:
        out += [s.strip() for s in _SENT.split(line) if len(s.strip()) > 3]
    return out


def _first_sentences(text: str, limit: int = _MAX_ANSWER, n: int = 4) -> str:
    chosen: list[str] = []
    for s in sentences(text):
        if len(" ".join(chosen + [s])) > limit or len(chosen) >= n:
            break
        chosen.append(s)
    return " ".join(chosen)


TYPICAL = ("L4-L5", "L5-S1", "C5-C6", "C6-C7", "L3-L4", "T12-L1", "T12", "L1", "C2")


def specific_level(levels: list[str] | tuple[str, ...], text: str = "") -> str | None:
    """A level to talk about: one the passage names (and the document is tagged with), else the document's most
    typical level (L4-L5, L5-S1, C5-C6 ...), else its first disc level or vertebra; None for whole-spine documents."""
    if ALL_LEVELS in levels:
        return None
    for lv in find_levels(text):
        if lv in levels:
            return lv
    for lv in TYPICAL:
        if lv in levels:
            return lv
    for lv in levels:
        if lv in TEXT_SEGMENTS:
            return lv
    return next((lv for lv in levels if lv in TEXT_VERTEBRAE), None)


def _lower_first(text: str) -> str:
    return text[0].lower() + text[1:] if text and not text[:2].isupper() else text


class TemplateGenerator:
    """Items from one knowledge chunk (a store row of ``chunks``), with the other chunks of its document for
    distractors."""

    name = GENERATOR

    def _draft(self, chunk: dict, task: str, subtask: str, content: dict, support: str, variant: str = "",
               levels: list[str] | None = None, region: str = "") -> ItemDraft:
        return ItemDraft(
            task=task, subtask=subtask, content=content, source_id=chunk["source_id"], chunk_id=chunk["id"],
            location=chunk["location"], generator=GENERATOR, generator_kind="template",
            prompt_template=f"template:{subtask}", prompt_version=VERSION, seed=0,
            levels=list(levels if levels is not None else chunk["levels"]), region=region,
            group_key=chunk["source_id"], variant=variant, support=support,
        )

    def items(self, chunk: dict, doc_chunks: list[dict], region: str = "", topics: list[str] | None = None
              ) -> list[ItemDraft]:
        out: list[ItemDraft] = []
        title = chunk["title"]
        doc_title = title.split(" \u2014 ")[0]
        section = chunk["meta"].get("section", title)
        text = chunk["text"]
        levels = [] if ALL_LEVELS in chunk["levels"] else list(chunk["levels"])
        defs = definitions(text)
        doc_defs = [d for c in doc_chunks if c["id"] != chunk["id"] for d in definitions(c["text"])]
        for d in defs:
            others = [o.term for o in defs if o.term.lower() != d.term.lower()]
            others += [o.term for o in doc_defs if o.term.lower() != d.term.lower() and o.term not in others]
            distractors = []
            for term in others:
                if term.lower() not in {x.lower() for x in distractors} and term.lower() not in d.description.lower():
                    distractors.append(term)
            if len(distractors) >= 3 and d.term.lower() not in GENERIC_TERMS:
                options = sorted([d.term] + distractors[:3], key=str.lower)
                out.append(self._draft(chunk, "mcq", "definition_choice", {
                    "question": f"In {doc_title} ({section}), which term is described as follows: "
                                f"\"{d.description}\"",
                    "options": options, "answer_index": options.index(d.term),
                    "rationale": f"The knowledge base states: {d.term}: {d.description}",
                }, support=f"The knowledge base states: {d.term}: {d.description}", variant=d.term, levels=levels,
                    region=region))
            out.append(self._draft(chunk, "open_qa", "definition", {
                "question": f"In the context of {doc_title}, what does the knowledge base say about {d.term}?",
                "answer": f"{d.term}: {d.description}",
            }, support=f"{d.term}: {d.description}", variant=d.term, levels=levels, region=region))
        summary = _first_sentences(text)
        if len(summary) >= 60:
            out.append(self._draft(chunk, "open_qa", "section_summary", {
                "question": f"What are the key points on \"{section}\" in {doc_title}?",
                "answer": summary,
            }, support=text, levels=levels, region=region))
        level = specific_level(chunk["levels"], text)
        sents = sentences(text)
        if level and len(sents) >= 3 and section.lower() not in NO_CONSULTATION:
            topic = (topics or [doc_title])[0]
            first, second = " ".join(sents[:2]), " ".join(sents[2:4])
            turns = [
                {"role": "patient", "text": f"My scan report mentions {topic} at {level}. What should I know about "
                                            f"{_lower_first(section)}?"},
                {"role": "clinician", "text": f"{first} Whether this applies at {level} is decided on your own "
                                              "images."},
                {"role": "patient", "text": "What else should I know about it?"},
                {"role": "clinician", "text": f"{second} Your specialist will go through the images and the "
                                              "options with you."},
            ]
            wording = (f"Whether this applies at {level} is decided on your own images. Your specialist will go "
                       "through the images and the options with you.")  # template text, not a medical fact
            out.append(self._draft(chunk, "consultation", "kb_consultation", {"level": level, "turns": turns},
                                   support=text + "\n" + wording, levels=[level], region=region))
        return out
