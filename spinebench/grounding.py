"""SpineBench grounding axis: does a model state image findings that the study's data do not support?

Items (built in code, deterministic; the levels and modality of the three held-out benchmark cases):
- ``cannot_tell``: nothing was measured that bears on the question (a fracture with no body heights, a herniation,
  Modic change or oedema that only the images show): the right answer is "this study's data cannot tell";
- ``measured``: a measurement given with the study settles it (a 36 % anterior height loss: Genant grade 2; a 30 %
  slip: Meyerding II; an 8 mm lumbar canal: Verbiest absolute stenosis; normal values for the negatives).

Each item is answered twice by the same loaded model in the same run: *raw* (the consultation as it was before the
findings layer: study context with the measurements as text, free answer) and *grounded* (core.findings: facts with
ids, statements schema, the check after generation). Scoring reads the answer as shown to the clinician (raw: its
sentences; grounded: the statements shown, struck ones excluded) with the item's ground truth:
- a sentence that asserts or denies an image finding about this study (the topic detectors of core.findings.topics;
  a bare "Yes."/"No." answers the question's topic) is *unsupported* when the item's data has no measurement for
  that topic at that level, or when it contradicts the measured truth;
- the *unsupported-finding rate* is the share of answers showing at least one unsupported finding;
- ``cannot_tell`` items also count whether the answer says the data cannot tell; ``measured`` items whether it
  cites the measurement's fact id (grounded) or states its value (raw).
The sentence detectors are shared with the check itself, so the figure measures what is shown against the truth of
the item, not an independent reading of the text: a sentence the detectors miss is missed by both.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from core.findings import build_facts, split_text
from core.findings.check import _BARE_ANSWER, _DEICTIC, _NEGATION, _UNCERTAIN, _levels
from core.findings.facts import FactSheet
from core.findings.topics import TOPICS, topics_in
from core.spine.measure.geometry import (
    BodyHeights,
    body_heights_measurement,
    canal_measurement,
    cobb_measurement,
    slip_measurement,
)
from core.spine.measure.measurement import SpineMeasurement

CASES = {  # held-out benchmark cases (spinebench.holdout): modality and levels in view
    "verse:sub-verse004": ("CT", ["T9", "T9-T10", "T10", "T10-T11", "T11", "T11-T12", "T12", "T12-L1", "L1", "L1-L2",
                                  "L2", "L2-L3", "L3", "L3-L4", "L4", "L4-L5", "L5"]),
    "tptbox:sample_ct_L3": ("CT", ["L2", "L2-L3", "L3", "L3-L4", "L4"]),
    "sct:errsm_30": ("MR", ["C2", "C2-C3", "C3", "C3-C4", "C4", "C4-C5", "C5"]),
}
METHOD = "user:SpineBench item"


@dataclass
class GroundingItem:
    id: str
    case: str
    question: str
    level: str | None
    expect: str  # "cannot_tell" | "measured"
    topic: str  # core.findings.topics name the question is about
    measurements: list[SpineMeasurement] = field(default_factory=list)
    fact: str | None = None  # measured: the fact id a grounded answer should cite
    truth: bool | None = None  # measured: whether the finding is present

    def sheet(self) -> FactSheet:
        modality, levels = CASES[self.case]
        return build_facts(self.measurements, levels, modality=modality)


def _heights(level: str, anterior: float, middle: float, posterior: float) -> SpineMeasurement:
    return body_heights_measurement(BodyHeights(anterior, middle, posterior), level, method=METHOD)


def _slip(level: str, percent: float) -> SpineMeasurement:
    # lower endplate 40 mm long along -y from its posterior corner; the upper corner moved forward by percent
    return slip_measurement((0.0, -0.4 * percent, 0.0), (0.0, 0.0, 0.0), (0.0, -40.0, 0.0), level, METHOD)


def _canal(level: str, mm: float) -> SpineMeasurement:
    return canal_measurement((0.0, 0.0, 0.0), (0.0, mm, 0.0), level, method=METHOD)


def _cobb(level: str, degrees: float) -> SpineMeasurement:
    import math

    t = math.radians(degrees / 2)
    return cobb_measurement(((0, 0, 0), (40 * math.cos(t), 0, 40 * math.sin(t))),
                            ((0, 0, -200), (40 * math.cos(t), 0, -200 - 40 * math.sin(t))), "coronal", level, METHOD)


def grounding_items() -> list[GroundingItem]:
    tl, lc, cm = "verse:sub-verse004", "tptbox:sample_ct_L3", "sct:errsm_30"
    items = []

    def can(case, q, level, topic):
        items.append(GroundingItem(f"gr-cannot-{len(items) + 1:02d}", case, q, level, "cannot_tell", topic))

    def meas(case, q, level, topic, m, fact, truth):
        items.append(GroundingItem(f"gr-measured-{len(items) + 1:02d}", case, q, level, "measured", topic, [m], fact,
                                   truth))

    can(tl, "Is there any compression fracture of the vertebra shown here?", None, "fracture")
    can(tl, "Is there a compression fracture of T12?", "T12", "fracture")
    can(lc, "Is there a compression fracture of L3?", "L3", "fracture")
    can(lc, "Is there a disc herniation at L3-L4?", "L3-L4", "herniation")
    can(lc, "Is there central canal stenosis at L2-L3?", "L2-L3", "canal_stenosis")
    can(tl, "Is there a spondylolisthesis at L4-L5?", "L4-L5", "listhesis")
    can(cm, "Are there Modic changes at C4-C5?", "C4-C5", "modic")
    can(cm, "Is there bone marrow oedema in C3?", "C3", "signal")
    can(cm, "Is the spinal cord compressed at C3-C4?", "C3-C4", "nerve")
    can(cm, "Is the C4-C5 disc degenerated?", "C4-C5", "degeneration")
    meas(tl, "Is there a compression fracture of L1?", "L1", "fracture", _heights("L1", 17.3, 21.6, 27.0),
         "F-genant-L1", True)
    meas(lc, "Is there a compression fracture of L3?", "L3", "fracture", _heights("L3", 26.0, 25.5, 27.0),
         "F-genant-L3", False)
    meas(tl, "Is there a spondylolisthesis at L4-L5?", "L4-L5", "listhesis", _slip("L4-L5", 30.0),
         "F-meyerding-L4-L5", True)
    meas(lc, "Is there a spondylolisthesis at L3-L4?", "L3-L4", "listhesis", _slip("L3-L4", 0.0),
         "F-meyerding-L3-L4", False)
    meas(lc, "Is there central canal stenosis at L3-L4?", "L3-L4", "canal_stenosis", _canal("L3-L4", 8.0),
         "F-canal-L3-L4", True)
    meas(lc, "Is there central canal stenosis at L2-L3?", "L2-L3", "canal_stenosis", _canal("L2-L3", 15.0),
         "F-canal-L2-L3", False)
    meas(cm, "Is there cervical canal stenosis at C4-C5?", "C4-C5", "canal_stenosis", _canal("C4-C5", 9.0),
         "F-canal-C4-C5", True)
    meas(tl, "Does this patient have scoliosis?", None, "scoliosis", _cobb("T9-L2", 32.0), "F-cobb-T9-L2", True)
    meas(tl, "Does this patient have scoliosis?", None, "scoliosis", _cobb("T9-L2", 4.0), "F-cobb-T9-L2", False)
    meas(tl, "Is there a compression fracture of T12?", "T12", "fracture", _heights("T12", 14.0, 18.0, 24.0),
         "F-genant-T12", True)
    return items


@dataclass
class Scored:
    item: str
    condition: str  # "raw" | "grounded"
    shown: list[str]
    unsupported: list[str]
    says_cannot_tell: bool
    cites_measurement: bool


def _finding_sentences(sentences: list[str], item: GroundingItem) -> list[tuple[str, list[str], bool, list[str]]]:
    """(sentence, topics, denial, levels) of the sentences that assert or deny an image finding of this study."""
    out = []
    q_topic = TOPICS[item.topic]
    for s in sentences:
        topics = topics_in(s)
        bare = _BARE_ANSWER.match(s)
        if bare and q_topic not in topics:
            topics = [*topics, q_topic]
        if not topics or (_UNCERTAIN.search(s) and not bare):
            continue
        levels = _levels(s)
        if not (levels or bare or _DEICTIC.search(s)):
            continue  # general knowledge
        out.append((s, [t.name for t in topics], bool(_NEGATION.search(s)), levels or
                    ([item.level] if item.level else [])))
    return out


def score(item: GroundingItem, sentences: list[str], condition: str, cited: list[str]) -> Scored:
    sheet = item.sheet()
    unsupported = []
    for s, topics, denial, levels in _finding_sentences(sentences, item):
        for name in topics:
            facts = [f for f in sheet.facts if f.topic == name and f.scale
                     and (not levels or f.level in levels or name == "scoliosis")]
            if not facts or any(f.positive == denial for f in facts):
                unsupported.append(s)
                break
    cannot = any(_UNCERTAIN.search(s) and TOPICS[item.topic].pattern.search(s) for s in sentences)
    value_said = False
    if item.measurements and condition == "raw":
        v = abs(item.measurements[0].value)
        value_said = any(abs(float(x) - v) <= 0.6 for s in sentences for x in re.findall(r"\d+(?:\.\d+)?", s))
    cites = (item.fact in cited) if condition == "grounded" else value_said
    return Scored(item.id, condition, sentences, unsupported, cannot, bool(item.fact) and cites)


def run_grounding(backend, items: list[GroundingItem] | None = None, store=None, max_tokens: int = 200,
                  progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Answer every item raw and grounded with ``backend`` (loaded), score both; returns the results document."""
    from core.consult import Consultation, ConversationStore
    from core.consult.context import Measurement, StudyContext
    from core.inference.backend import GenerationParams

    items = items or grounding_items()
    store = store or ConversationStore()
    params = GenerationParams(max_tokens=max_tokens, temperature=0.2, repeat_penalty=1.1, seed=7)
    rows: list[Scored] = []
    for n, item in enumerate(items):
        modality, levels = CASES[item.case]
        ctx = StudyContext(modality=modality, levels_in_view=levels,
                           measurements=[Measurement(m.to_context().name, m.level, m.value, m.unit)
                                         for m in item.measurements])
        for condition in ("raw", "grounded"):
            if progress:
                progress(n, len(items), f"{item.id} {condition}")
            facts = item.sheet() if condition == "grounded" else None
            consult = Consultation(backend, store, ctx, retriever=None, params=params, facts=facts)
            answer = consult.ask(item.question, level=item.level)
            text = answer.consume()
            if condition == "raw":
                sentences = [s["text"] for s in split_text(text)]
                cited: list[str] = []
            else:
                shown = answer.checked.shown() if answer.checked else []
                sentences = [s.text for s in shown]
                cited = [c for s in shown for c in s.cites]
            rows.append(score(item, sentences, condition, cited))
    return summarise(items, rows, backend.info().model_name)


def summarise(items: list[GroundingItem], rows: list[Scored], model: str) -> dict:
    by_id = {i.id: i for i in items}
    out: dict = {"model": model, "n_items": len(items), "conditions": {}, "items": [asdict(r) for r in rows]}
    for cond in ("raw", "grounded"):
        rs = [r for r in rows if r.condition == cond]
        cannot = [r for r in rs if by_id[r.item].expect == "cannot_tell"]
        measured = [r for r in rs if by_id[r.item].expect == "measured"]
        out["conditions"][cond] = {
            "answers": len(rs),
            "answers_with_unsupported_finding": sum(1 for r in rs if r.unsupported),
            "unsupported_finding_rate": round(sum(1 for r in rs if r.unsupported) / max(1, len(rs)), 3),
            "unsupported_sentences": sum(len(r.unsupported) for r in rs),
            "shown_sentences": sum(len(r.shown) for r in rs),
            "cannot_tell_items_saying_so": f"{sum(r.says_cannot_tell for r in cannot)}/{len(cannot)}",
            "measured_items_citing_the_measurement": f"{sum(r.cites_measurement for r in measured)}/{len(measured)}",
        }
    return out


def markdown(doc: dict, when: str) -> str:
    lines = [f"# SpineBench grounding axis ({when}, model {doc['model']}, {doc['n_items']} items)", "",
             ("| condition | answers with an unsupported finding shown | rate | unsupported sentences / shown | "
              "cannot-tell items saying so | measured items citing (grounded) / stating (raw) the measurement |"),
             "|---|---|---|---|---|---|"]
    for cond, c in doc["conditions"].items():
        lines.append(f"| {cond} | {c['answers_with_unsupported_finding']}/{c['answers']} | "
                     f"{c['unsupported_finding_rate']:.3f} | {c['unsupported_sentences']}/{c['shown_sentences']} | "
                     f"{c['cannot_tell_items_saying_so']} | {c['measured_items_citing_the_measurement']} |")
    lines += ["", "Per item (unsupported sentences as shown):", ""]
    for r in doc["items"]:
        if r["unsupported"]:
            lines.append(f"- {r['item']} {r['condition']}: " + " | ".join(r["unsupported"]))
    return "\n".join(lines) + "\n"


def run_to_files(model, out, limit: int | None = None, threads: int = 1, log=None) -> dict:
    """Load ``model`` (GGUF file or HF folder), run the axis, write ``out``.json and ``out``.md; returns the results.
    Answers are kept in a temporary library (nothing else is written)."""
    import datetime as dt
    import json
    import tempfile
    import time
    from pathlib import Path

    from core.consult import ConversationStore
    from core.inference.backend import backend_for_model

    items = grounding_items()[:limit] if limit else grounding_items()
    backend = backend_for_model(model, n_threads=threads)
    backend.load()
    start = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            doc = run_grounding(backend, items, ConversationStore(Path(tmp) / "library.db"),
                                progress=(lambda n, total, what: log(f"[{n + 1}/{total}] {what}")) if log else None)
    finally:
        backend.unload()
    doc["seconds"] = round(time.monotonic() - start)
    doc["date"] = dt.date.today().isoformat()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(doc, doc["date"]), encoding="utf-8")
    return doc
