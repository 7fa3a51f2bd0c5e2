"""Multiple-choice answer extraction: one table of replies and the option (or failure) each must give."""
from __future__ import annotations

import pytest

from spinebench.extract import extract_choice

OPTIONS = {"A": "L1", "B": "T12", "C": "L4-L5", "D": "L4"}

CASES = [
    # (reply, expected letter or "invalid" / "none")
    ("B", "B"),
    ("b", "B"),
    ("(B)", "B"),
    ("B.", "B"),
    ("[C]", "C"),
    ("**D**", "D"),
    ("  c)  ", "C"),
    ("Answer: B.", "B"),
    ("answer: b", "B"),
    ("The answer is (D).", "D"),
    ("The correct option is C, because the disc lies between L4 and L5.", "C"),
    ("Final answer - A", "A"),
    ("I choose D.", "D"),
    ("I think it is option b.", "B"),
    ('{"answer": "B"}', "B"),
    ('```json\n{"Answer": "c"}\n```', "C"),
    ('{"answer": "L4"}', "D"),
    ('{"answer": ["A", "B"]}', "invalid"),
    ("B. T12", "B"),
    ("C. L4-L5 is the disc below L4.", "C"),
    ("It is B because T12 carries the last rib.", "B"),
    ("<think>Maybe A or B... the rib count says T12.</think>Answer: B", "B"),
    ("L4-L5", "C"),  # option text; the shorter option "L4" inside it does not count
    ("The level is T12.", "B"),
    ("The answer is L4-L5.", "C"),
    ("L4", "D"),
    ("B and C", "invalid"),
    ("Answer: B, C", "invalid"),
    ("Answer: B/C", "invalid"),
    ("A. L1\nD. L4", "invalid"),  # the model listed options instead of choosing
    ("Answer: A. Final answer: D.", "invalid"),
    ("L1 or T12", "invalid"),
    ("A herniated disc is a common finding.", "none"),
    ("The answer is a herniated disc.", "none"),
    ("I am not sure.", "none"),
    ("", "none"),
    ("E", "none"),  # not an option
    ("The answer is E.", "none"),
]


@pytest.mark.parametrize("reply, expected", CASES)
def test_extraction_table(reply, expected):
    got = extract_choice(reply, OPTIONS)
    if expected in ("invalid", "none"):
        assert (got.letter, got.status) == (None, expected), got
    else:
        assert (got.letter, got.status) == (expected, "ok"), got


def test_options_with_more_than_four_letters():
    opts = {k: f"grade {n}" for n, k in enumerate("ABCDEF", 1)}
    assert extract_choice("F", opts).letter == "F"
    assert extract_choice("grade 5", opts).letter == "E"
