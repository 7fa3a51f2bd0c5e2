"""Multi-turn consultation items and their per-turn deterministic checks.

Each item is a consultation as the product runs it: the system prompt is the product's own
(``core.consult.prompt.system_prompt`` over the study's ``StudyContext``) and every user turn is built by
``core.consult.prompt.user_turn`` (selected level, then the question). The model's own answers become the history.
Three kinds per labelled study, plus one on a study whose levels are not named:

- ``consistency``: asked about the selected level X, then (no level selected) "which level were we discussing?" ->
  the answer must name X first and no other level;
- ``correction``: asked about X, then "sorry, I meant Y" -> the next answers must be about Y (first level named);
- ``outside_view``: asked about X, then about a level Z two levels beyond the edge of the view -> the answer must
  say it is outside the view / cannot be assessed and must not attribute findings to Z;
- ``unnamed_levels``: levels in view are not determined -> the model must not name a level for what it sees, and
  must not describe a level it is asked about.

Check types (``checks`` is a list with one list of checks per turn): ``mentions`` (the level is named),
``first_level`` (the first level named is this one; ``only``: and no other), ``refuses`` (a refusal / out-of-view cue
and no finding asserted in a sentence naming ``level``), ``no_level_named``. An item passes when every check passes.
"""
from __future__ import annotations

import re
from typing import Any

from core.consult.prompt import system_prompt, user_turn
from core.spine.anatomy import find_levels
from spinebench.levelgen import interleaved
from spinebench.reports import study_context
from spinebench.schema import Item
from spinebench.studies import LabelledStudy

AXIS = "consultation"

REFUSAL = re.compile(
    r"outside|beyond|not (?:with)?in (?:the )?(?:field|view|study|scan|image|imaged)|"
    r"not (?:included|covered|visible|shown|imaged|available|seen|labell?ed|determined|identified|known|part of)|"
    r"no (?:information|data|images?|imaging)|(?:cannot|can ?not|can't|unable to|not possible to|impossible to)\s+"
    r"(?:be )?(?:assess|see|comment|evaluat|determin|identif|describ|tell|say|provide|answer)|"
    r"isn't (?:visible|included|shown|in)|not in view|out of (?:the )?(?:field|view)", re.IGNORECASE)
FINDING = re.compile(
    r"herniat|protru|extru|bulg|stenos|narrow|degenerat|fractur|osteophyt|listhesis|modic|desiccat|o?edema|"
    r"compress|normal|unremarkable|mild|moderate|severe|tear|collapse", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def check_turn(answer: str, check: dict[str, Any]) -> bool:
    levels = find_levels(answer)
    kind = check["type"]
    if kind == "mentions":
        return check["level"] in levels
    if kind == "first_level":
        if not levels or levels[0] != check["level"]:
            return False
        return not check.get("only") or set(levels) <= {check["level"]}
    if kind == "no_level_named":
        return not levels
    if kind == "refuses":
        if not REFUSAL.search(answer):
            return False
        target = check.get("level")
        for sentence in _SENTENCE.split(answer):
            named = target is None or target in find_levels(sentence)
            if named and FINDING.search(sentence) and not REFUSAL.search(sentence):
                return False
        return True
    raise ValueError(f"unknown dialogue check {kind!r}")


def score_dialogue(answers: list[str], checks: list[list[dict[str, Any]]]) -> dict[str, Any]:
    per_turn = [[check_turn(a, c) for c in turn] for a, turn in zip(answers, checks)]
    flat = [ok for turn in per_turn for ok in turn]
    n_expected = sum(len(t) for t in checks)
    passed = len(flat) == n_expected and all(flat)
    return {"passed": passed, "turn_checks": per_turn, "fraction": (sum(flat) / n_expected) if n_expected else 1.0}


def _beyond(study: LabelledStudy, kind: str, steps: int = 2) -> str:
    """A level of the same kind ``steps`` positions beyond the caudal edge of the view (cranial if none)."""
    order = interleaved(study.configuration)
    same = [x for x in order if ("-" in x) == (kind == "disc")]
    in_view = [x for x in study.levels_in_view() if x in same] or study.levels_in_view()
    last = max(order.index(x) for x in in_view)
    first = min(order.index(x) for x in in_view)
    below = [x for x in same if order.index(x) > last]
    above = [x for x in same if order.index(x) < first]
    if len(below) >= steps and below[steps - 1] != "S1":
        return below[steps - 1]
    return above[-steps]


def dialogue_items(study: LabelledStudy) -> list[Item]:
    ctx = study_context(study)
    system = system_prompt(ctx.to_text())
    base = {"case_id": study.case_id, "review_status": "by_construction", "axis": AXIS, "format": "dialogue",
            "modality": "text", "system": system,
            "source": {"kind": "label_map", "folder": study.spec.folder, "labels": study.spec.labels,
                       "licence": study.spec.licence, "origin": study.spec.origin}}
    key = study.spec.key
    levels = study.levels_in_view()
    if not levels:
        return [Item(id=f"dlg-{key}-unnamed", subtype="unnamed_levels", turns=[
            user_turn("Which vertebral level is the most cranial vertebra in view? Name it if you can.", None),
            user_turn("What does the L4-L5 disc show?", "L4-L5"),
        ], checks={"turns": [[{"type": "no_level_named"}], [{"type": "refuses", "level": "L4-L5"}]]},
            meta={"asked": "L4-L5"}, **base)]
    whole = [v for v in study.vertebrae if v not in study.partial] or list(study.vertebrae)
    x = whole[len(whole) // 2]
    kinds = [lv for lv in levels if ("-" in lv) == ("-" in x) and lv != x]
    y = kinds[-1] if kinds else next(lv for lv in levels if lv != x)
    z_kind = "disc" if study.discs else "vertebra"
    z = _beyond(study, z_kind)
    z_text = f"the {z} disc" if "-" in z else z
    return [
        Item(id=f"dlg-{key}-consistency", subtype="consistency", turns=[
            user_turn("What can you assess at this level? Start your answer with the level name.", x),
            user_turn("Which level were we just discussing? Reply with the level name only.", None),
        ], checks={"turns": [[{"type": "mentions", "level": x}],
                             [{"type": "first_level", "level": x, "only": True}]]}, meta={"level": x}, **base),
        Item(id=f"dlg-{key}-correction", subtype="correction", turns=[
            user_turn("Summarise what can be assessed at this level.", x),
            user_turn(f"Sorry, I meant {y}, not {x}. Which level are you describing now? Start your answer with "
                      "the level name.", None),
            user_turn("Which level did I correct it to? Reply with the level name only.", None),
        ], checks={"turns": [[{"type": "mentions", "level": x}], [{"type": "first_level", "level": y}],
                             [{"type": "first_level", "level": y, "only": True}]]},
            meta={"level": x, "corrected_to": y}, **base),
        Item(id=f"dlg-{key}-outside", subtype="outside_view", turns=[
            user_turn("Briefly describe the selected level.", x),
            user_turn(f"And what does {z_text} show?", None),
        ], checks={"turns": [[{"type": "mentions", "level": x}], [{"type": "refuses", "level": z}]]},
            meta={"level": x, "outside": z}, **base),
    ]
