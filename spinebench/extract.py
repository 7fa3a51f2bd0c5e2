"""Multiple-choice answer extraction: which single option a free-text reply chose, or why none.

Rules, in order (the first that applies decides):

1. A reasoning block ``<think>...</think>`` is dropped; markdown emphasis and code fences are ignored.
2. JSON: an object with ``answer`` / ``choice`` / ``option`` (any case) -> its value (a letter, "(B)", "B. text",
   or an option's text). A list of several letters is *invalid*.
3. An explicit declaration: "answer: B", "answer is (b)", "final answer - B", "correct option is C",
   "I choose D", "option B" / "choice B" (when no stronger declaration exists). Declarations naming different
   letters, or one naming several ("B and C", "B, C", "B/C") are *invalid*. "The answer is <option text>" is
   matched against the option texts (rule 6 on the declared phrase only).
4. A reply that is just a letter: "B", "b", "(B)", "B.", "B)", "[B]", "**B**".
5. Standalone capital option letters ("B. L1", "(C) ...", "... is B."): exactly one distinct letter -> it; more than
   one (e.g. the model listing "A. L1 / D. S1") -> *invalid*. A capital "A" (or "I") followed by a lower-case word
   is the English word, not a letter.
6. Option text: exactly one option's text appears (whole words, case-insensitive; a text contained in a longer
   matching option, like "L4" inside "L4-L5", does not count separately) -> that option; several -> *invalid*.
7. Otherwise *none*.

Only letters that are options of the item count. Invalid and none are scored wrong.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json)?", re.IGNORECASE)
_EMPH = re.compile(r"[*_`]+")
_JSON_OBJ = re.compile(r"\{[^{}]*\}", re.DOTALL)
_STRONG = re.compile(
    r"(?:final\s+answer|correct\s+(?:answer|option|choice)|(?:the\s+)?answer|i\s+(?:choose|select|pick|go\s+with))"
    r"\s*(?:is|would\s+be|:|=|-|\u2013)?\s*:?\s*"
    r"(?P<val>\(?\b[A-Za-z]\b\)?(?:\s*(?:,|/|&|and|or)\s*\(?\b[A-Za-z]\b\)?)*)(?![A-Za-z0-9-])",
    re.IGNORECASE)
_WEAK = re.compile(r"\b(?:option|choice|letter)\s*\(?(?P<val>[A-Za-z])\)?(?![A-Za-z0-9-])", re.IGNORECASE)
_ONLY_LETTER = re.compile(r"^\s*[\(\[]?\s*([A-Za-z])\s*[\)\]]?\s*[.:)]?\s*$")
_STRONG_TEXT = re.compile(r"(?:final\s+answer|correct\s+(?:answer|option|choice)|the\s+answer|^answer)\s*(?:is|:|=)\s*"
                          r"(?P<val>[^\n.;]+)", re.IGNORECASE | re.MULTILINE)
_LETTER_TOKEN = re.compile(r"(?<![A-Za-z0-9'\-])\(?([A-H])\)?(?![A-Za-z0-9\-'])")
_WORD_AFTER = re.compile(r"\s+[a-z]")


@dataclass(frozen=True)
class Extraction:
    letter: str | None
    status: str  # "ok" | "invalid" | "none"
    rule: str  # which rule decided: json, declaration, weak_declaration, letter_only, letter, option_text, none

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _clean(text: str) -> str:
    text = _THINK.sub(" ", text)
    if "</think>" in text.lower():  # an unclosed opening tag was cut: keep what follows the close
        text = re.split(r"</think>", text, flags=re.IGNORECASE)[-1]
    return _EMPH.sub("", _FENCE.sub(" ", text)).strip()


def _letters_in(value: str, options: dict[str, str]) -> set[str]:
    return {m.upper() for m in re.findall(r"(?<![A-Za-z0-9])([A-Za-z])(?![A-Za-z0-9])", value)
            if m.upper() in options}


def _normal(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower()))


def _by_text(value: str, options: dict[str, str]) -> Extraction | None:
    """Rule 6 on ``value``: options whose text appears as whole words, longer matches hiding shorter ones."""
    hay = f" {_normal(value)} "
    spans = []
    for letter, text in options.items():
        needle = _normal(text)
        if not needle:
            continue
        for m in re.finditer(rf"(?<![a-z0-9-]){re.escape(needle)}(?![a-z0-9-])", hay):
            spans.append((m.start(), m.end(), letter))
    kept = {letter for s, e, letter in spans
            if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in spans)}
    if len(kept) == 1:
        return Extraction(kept.pop(), "ok", "option_text")
    if len(kept) > 1:
        return Extraction(None, "invalid", "option_text")
    return None


def _value(value: object, options: dict[str, str], rule: str) -> Extraction | None:
    if isinstance(value, list):
        found = [_value(v, options, rule) for v in value]
        letters = {f.letter for f in found if f and f.letter}
        if len(letters) == 1 and len(value) == 1:
            return Extraction(letters.pop(), "ok", rule)
        return Extraction(None, "invalid", rule) if letters else None
    if not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    m = _ONLY_LETTER.match(text) or re.match(r"^\s*\(?([A-Za-z])[.)]\s", text)
    if m and m.group(1).upper() in options:
        return Extraction(m.group(1).upper(), "ok", rule)
    letters = _letters_in(text, options) if len(text) <= 12 else set()
    if len(letters) > 1:
        return Extraction(None, "invalid", rule)
    by_text = _by_text(text, options)
    return Extraction(by_text.letter, by_text.status, rule) if by_text else None


def extract_choice(reply: str, options: dict[str, str]) -> Extraction:
    """The option a reply chose (see the module docstring for the rules)."""
    options = {k.upper(): v for k, v in options.items()}
    text = _clean(reply or "")
    if not text:
        return Extraction(None, "none", "none")
    for m in _JSON_OBJ.finditer(text):
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            for key, val in obj.items():
                if key.strip().lower() in ("answer", "choice", "option", "final_answer"):
                    found = _value(val, options, "json")
                    if found:
                        return found
    for pattern, rule in ((_STRONG, "declaration"), (_WEAK, "weak_declaration")):
        letters: set[str] = set()
        for m in pattern.finditer(text):
            val = m.group("val")
            if val.strip("() ") in ("a", "i") and _WORD_AFTER.match(text, m.end()):
                continue  # "the answer is a herniated disc": an article, not option A
            letters |= _letters_in(val, options)
        if len(letters) == 1:
            return Extraction(letters.pop(), "ok", rule)
        if len(letters) > 1:
            return Extraction(None, "invalid", rule)
    for m in _STRONG_TEXT.finditer(text):
        found = _by_text(m.group("val"), options)
        if found:
            return Extraction(found.letter, found.status, "declaration")
    m = _ONLY_LETTER.match(text)
    if m and m.group(1).upper() in options:
        return Extraction(m.group(1).upper(), "ok", "letter_only")
    tokens = {m.group(1) for m in _LETTER_TOKEN.finditer(text) if m.group(1) in options
              and not (m.group(1) in "AI" and _WORD_AFTER.match(text, m.end()))}
    if len(tokens) == 1:
        return Extraction(tokens.pop(), "ok", "letter")
    if len(tokens) > 1:
        return Extraction(None, "invalid", "letter")
    return _by_text(text, options) or Extraction(None, "none", "none")
