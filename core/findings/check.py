"""The check run in code AFTER a model answered: no statement about an image finding is shown as a finding unless a
fact of the study (a measurement or the labelling) supports it.

    checked = check_answer(statements, sheet, passage_ids=["lumbar-disc#grading"], question=q, level="L3")
    checked.shown()     # statements kept, each with its citations (fact ids, passage ids)
    checked.struck()    # statements not shown as findings, each with the reason
    checked.needs       # what would have to be measured or looked at
    checked.to_text()   # the answer as plain text (struck statements marked ~~...~~ with the reason)

A statement is a dict ``{"text", "kind", "cites"}`` (the JSON schema of :func:`answer_schema`) or plain text (any
other backend: split into sentences, ``[id]`` brackets read as citations). The model's own ``kind`` is not trusted:
- a sentence naming no finding topic (core.findings.topics) is kept as it is (advice, a question back);
- one that says the data cannot tell ("cannot be determined", "would need ...") is kept as such;
- one about a topic that names no level and does not speak of this study ("there is", "shown", "this patient"...)
  is kept as general knowledge, marked so;
- anything else asserts or denies a finding of this study: it is shown only when facts at its levels settle every
  topic it names, agree with it (a denial needs negative facts, an assertion a positive one) and with any grade it
  names. Citations the model invented are dropped; supporting facts it did not cite are added (and marked so).
Image-only topics (herniation, signal change, Modic...) are never supported for a model that did not see the images.
The workstation then adds the facts about the question's topic and level itself, so a measured answer always cites
its measurement, and says plainly when the model was text-only.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from core.findings.facts import Fact, FactSheet
from core.findings.topics import MEASURABLE, TOPICS, Topic, topics_in
from core.spine.anatomy import find_levels, is_disc

KINDS = ("finding", "general", "cannot_tell")
TEXT_ONLY_NOTE = ("This model is text-only: it did not see the images. The answer rests only on the study's level "
                  "labels and measurements listed as facts.")
_UNCERTAIN = re.compile(
    r"\b(?:cannot|can ?not|can't|unable|not possible|impossible|not (?:be )?(?:assess|determin|tell|evaluat|judg|"
    r"establish|confirm|exclud|known)|not assessed|not measured|would (?:need|require|have to)|needs? (?:to be|a |an |"
    r"the )|unknown|uncertain|did not see|do not see|don't see|not see the|no images?|without (?:the )?images|"
    r"not enough|insufficient|no (?:measurement|data|information))", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:no|not|without|absence|absent|none|negative for|normal|unremarkable|intact|preserved|"
                       r"free of|ruled out|nor)\b", re.IGNORECASE)
_DEICTIC = re.compile(
    r"\b(?:there (?:is|are|was|were|appears?|seems?)|this (?:patient|study|scan|image|vertebra|level|disc|case|"
    r"segment|ct|mri|spine)|the (?:patient|study|scan|images?|vertebra|disc)\b|shown|here|seen|visible|present|"
    r"demonstrat|reveal|shows?|evidence of|i see|we see|appears?|noted|identified|has (?:a|an|no)|have (?:a|an|no)|"
    r"yes|no)\b", re.IGNORECASE)
_BARE_ANSWER = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)
_GRADE = re.compile(r"\b(meyerding|genant)\s+(?:grade\s+|type\s+)?(0|[1-5]|i{1,3}v?|iv|v)\b", re.IGNORECASE)
_SEVERITY = re.compile(r"\b(mild|moderate|severe|absolute|relative)\b", re.IGNORECASE)
_ROMAN = {"i": "I", "ii": "II", "iii": "III", "iv": "IV", "v": "V", "1": "I", "2": "II", "3": "III", "4": "IV",
          "5": "V", "0": "none"}
_CITE = re.compile(r"\[([A-Za-z0-9#._:\-]+)\]")


@dataclass
class Checked:
    text: str
    kind: str  # "finding" | "general" | "cannot_tell" | "plain" | "fact" (added by the workstation)
    cites: list[str] = field(default_factory=list)
    shown: bool = True
    reason: str = ""  # why it is not shown as a finding; or a remark ("citation added by the check")
    topics: list[str] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)


@dataclass
class CheckedAnswer:
    statements: list[Checked] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)
    text_only: bool = True
    raw: str = ""  # the model's answer as generated (kept for the record, never shown as findings)

    def shown(self) -> list[Checked]:
        return [s for s in self.statements if s.shown]

    def struck(self) -> list[Checked]:
        return [s for s in self.statements if not s.shown]

    def cited_ids(self) -> list[str]:
        out: list[str] = []
        for s in self.shown():
            out += [c for c in s.cites if c not in out]
        return out

    def to_text(self) -> str:
        lines = []
        for s in self.shown():
            tag = " (general knowledge)" if s.kind == "general" else ""
            cites = " " + " ".join(f"[{c}]" for c in s.cites) if s.cites else ""
            lines.append(f"{s.text}{tag}{cites}")
        struck = self.struck()
        if struck:
            lines.append("Not shown as findings (nothing measured in this study supports them):")
            lines += [f"- ~~{s.text}~~ ({s.reason})" for s in struck]
        if self.needs:
            lines.append("To tell, this would need: " + "; ".join(self.needs) + ".")
        if self.text_only:
            lines.append(TEXT_ONLY_NOTE)
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"statements": [asdict(s) for s in self.statements], "needs": list(self.needs),
                "text_only": self.text_only, "raw": self.raw}

    @classmethod
    def from_json(cls, d: dict) -> CheckedAnswer:
        return cls([Checked(**s) for s in d.get("statements", [])], list(d.get("needs", [])),
                   bool(d.get("text_only", True)), d.get("raw", ""))


def answer_schema(ids: list[str], max_statements: int = 4, max_chars: int = 160) -> dict:
    """The JSON schema a model answers under: statements, each with its kind and the ids it cites (only ids of this
    study's facts and of the passages given can be written: an enum, which llama.cpp turns into a grammar)."""
    # a sentence: a capital letter first and at least 12 characters (a tiny model otherwise writes "ab")
    text = {"type": "string", "pattern": f"^[A-Z][A-Za-z0-9 ,.;:()/'%+-]{{11,{max_chars - 1}}}$",
            "x-max-chars": max_chars}
    cites: dict[str, Any] = {"type": "array", "items": {"enum": list(ids)}, "maxItems": 3} if ids else \
        {"type": "array", "items": {"type": "string", "maxLength": 1}, "maxItems": 0}
    item = {"type": "object", "properties": {"text": text, "kind": {"enum": list(KINDS)}, "cites": cites},
            "required": ["text", "kind", "cites"], "additionalProperties": False}
    return {"type": "object", "properties": {"statements": {"type": "array", "items": item, "minItems": 1,
                                                            "maxItems": max_statements}},
            "required": ["statements"], "additionalProperties": False}


ANSWER_FORMAT = ('Answer the question in JSON: {"statements": [{"text": <your answer sentence>, "kind": <finding, '
                 'general or cannot_tell>, "cites": [<fact ids it rests on>]}]}. finding: about this study, citing '
                 'its facts; general: general knowledge; cannot_tell: the facts cannot tell.')


def split_text(text: str) -> list[dict]:
    """Plain model text as statements: one per sentence (or bullet), ``[id]`` brackets as its citations."""
    out = []
    for part in re.split(r"(?<=[.!?;])\s+|\n+", text):
        part = part.strip(" -*\t")
        if not re.search(r"[A-Za-z]", part):
            continue
        cites = _CITE.findall(part)
        out.append({"text": _CITE.sub("", part).strip(), "kind": "", "cites": cites})
    return out


def _levels(text: str) -> list[str]:
    try:
        return find_levels(text)
    except Exception:  # noqa: BLE001 - an odd level-like token must not stop the check
        return []


def _grades_named(text: str) -> dict[str, tuple[str, str]]:
    """scale -> (grade normalised to Roman numerals, grade as written)."""
    return {m.group(1).lower(): (_ROMAN.get(m.group(2).lower(), m.group(2)), m.group(2))
            for m in _GRADE.finditer(text)}


def _agrees(fact: Fact, text: str, denial: bool) -> str:
    """'' when ``fact`` agrees with the sentence, else the reason."""
    if denial and fact.positive:
        return f"contradicted by [{fact.id}]: {fact.grade_label or fact.text}"
    if not denial and fact.scale and not fact.positive:
        return f"contradicted by [{fact.id}]: {fact.grade_label or fact.text}"
    named = _grades_named(text)
    scale = fact.scale.split()[0].lower() if fact.scale else ""
    if scale in named:
        want, written = named[scale]
        if scale == "genant":
            want = {"I": "1", "II": "2", "III": "3", "none": "0"}.get(want, want)
        if want != fact.grade:
            return f"names {scale.capitalize()} grade {written}, the measured grade is [{fact.id}] {fact.grade_label}"
    sev = _SEVERITY.search(text)
    if sev and fact.topic in ("scoliosis", "canal_stenosis") and fact.grade and sev.group(1).lower() not in fact.grade:
        return f"says {sev.group(1).lower()}, the measurement gives [{fact.id}] {fact.grade_label}"
    return ""


def _applies(topic: Topic, level: str) -> bool:
    """Whether a topic is about this kind of level (fracture: vertebrae; slip, disc, canal: disc segments)."""
    if topic.name == "fracture":
        return not is_disc(level)
    if topic.name in ("listhesis", "disc_height"):
        return is_disc(level)
    return True


def _support(topic: Topic, levels: list[str], text: str, denial: bool, sheet: FactSheet) -> tuple[list[str], str]:
    """(supporting fact ids, '') or ([], reason)."""
    if topic not in MEASURABLE:
        if sheet.sees_images:
            return [], ""
        return [], f"{topic.what}: this model did not see the images and nothing measured shows it"
    targets = [lv for lv in levels if _applies(topic, lv)] or levels
    if not targets:  # no level named: every level in view where the topic applies
        targets = [lv for lv in sheet.levels_in_view if _applies(topic, lv)]
        if not denial:  # an assertion anywhere: one positive fact is enough
            pos = [f for f in sheet.about(topic.name) if f.positive]
            if pos:
                reason = _agrees(pos[0], text, denial)
                return ([pos[0].id], "") if not reason else ([], reason)
    if not targets:
        return [], f"{topic.what}: no level of this study to measure it at"
    ids: list[str] = []
    for lv in targets:
        facts = sheet.about(topic.name, lv)
        if not facts:
            return [], f"{topic.what}: not measured at {lv} ({topic.measure} would tell)"
        reasons = [_agrees(f, text, denial) for f in facts]
        if denial and any(reasons):
            return [], next(r for r in reasons if r)
        if not denial and all(reasons):
            return [], reasons[0]
        ids += [f.id for f, r in zip(facts, reasons) if not r and f.id not in ids]
    return ids, ""


def check_statement(st: dict, sheet: FactSheet, passage_ids: set[str], question_topics: list[Topic],
                    question_levels: list[str], default_topics: list[Topic] | None = None) -> Checked:
    """One statement checked (see the module text); ``default_topics``: what the statement speaks of when its words
    name no topic (a report row's aspect: a "Vertebral body" phrase is about fracture)."""
    text = " ".join(str(st.get("text", "")).split())
    kind = st.get("kind") or ""
    known = set(sheet.ids()) | passage_ids
    cites = [c for c in st.get("cites", []) if c in known]
    invented = [c for c in st.get("cites", []) if c not in known]
    topics = topics_in(text) or list(default_topics or [])
    levels = [lv for lv in _levels(text)]
    bare = _BARE_ANSWER.match(text)
    if bare and not topics:  # "No." / "Yes, it is." answers the question's topic at the question's level
        topics, levels = question_topics, levels or question_levels
    out = Checked(text, kind or "plain", cites, topics=[t.name for t in topics], levels=levels)
    if invented:
        out.reason = f"unknown citation(s) dropped: {', '.join(invented)}"
    if not topics:
        out.kind = kind if kind in ("general", "cannot_tell") else "plain"
        return out
    if _UNCERTAIN.search(text) and not bare:
        out.kind = "cannot_tell"
        return out
    about_study = bool(levels) or bool(_DEICTIC.search(text)) or kind == "finding"
    if not about_study:
        out.kind = "general"
        return out
    out.kind = "finding"
    levels = levels or question_levels
    out.levels = levels
    denial = bool(_NEGATION.search(text))
    fact_cites = [c for c in cites if sheet.fact(c) is not None]
    support: list[str] = []
    for topic in topics:
        ids, reason = _support(topic, levels, text, denial, sheet)
        if reason:
            out.shown, out.reason = False, reason
            return out
        support += ids
    if topics and not support and not sheet.sees_images:
        out.shown, out.reason = False, "no fact of this study supports it"
        return out
    missing = [i for i in support if i not in fact_cites]
    if missing:
        out.cites = cites + missing
        out.reason = "; ".join(filter(None, [out.reason, f"citation added by the check: {', '.join(missing)}"]))
    return out


def check_answer(statements: list[dict] | str, sheet: FactSheet, passage_ids: list[str] | None = None,
                 question: str = "", level: str | None = None, raw: str = "") -> CheckedAnswer:
    """Check a model's statements (or plain text) against the fact sheet; see the module text."""
    items = split_text(statements) if isinstance(statements, str) else list(statements)
    q_topics = topics_in(question)
    q_levels = _levels(question) or ([level] if level else [])
    answer = CheckedAnswer(text_only=not sheet.sees_images, raw=raw or (statements if isinstance(statements, str)
                                                                         else ""))
    pids = set(passage_ids or [])
    seen: set[str] = set()
    for st in items:
        key = " ".join(str(st.get("text", "")).split()).lower()
        if key in seen:  # small models repeat themselves: one copy is enough
            continue
        seen.add(key)
        answer.statements.append(check_statement(st, sheet, pids, q_topics, q_levels))
    added: set[str] = set()  # the measured facts themselves are always given, so the answer shows value and grade
    if not q_topics:
        for f in (f for lv in q_levels for f in sheet.at(lv)):
            answer.statements.append(Checked(f.text, "fact", [f.id], topics=[f.topic], levels=[f.level]))
    for topic in q_topics:
        targets = [lv for lv in q_levels if _applies(topic, lv)] or q_levels
        facts = [f for lv in targets for f in sheet.about(topic.name, lv)] if targets else sheet.about(topic.name)
        for f in facts:
            if f.id not in added:
                answer.statements.append(Checked(f.text, "fact", [f.id], topics=[topic.name],
                                                 levels=[f.level] if f.level else []))
                added.add(f.id)
        blind = topic not in MEASURABLE and not sheet.sees_images
        if (topic in MEASURABLE and not facts) or blind:
            where = ", ".join(targets) if targets else "the levels in view"
            answer.needs.append(topic.needs(where))
            why = "this model did not see the images" if blind else "nothing was measured that would show it"
            answer.statements.append(Checked(f"This study's data cannot tell {topic.what} at {where}: {why}.",
                                             "cannot_tell", [], topics=[topic.name], levels=targets))
    for s in answer.struck():
        for name in s.topics:
            need = TOPICS[name].needs(", ".join(s.levels) or "the levels in view")
            if need not in answer.needs:
                answer.needs.append(need)
    return answer
