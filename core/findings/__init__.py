"""Findings the workstation really has (facts from the labelling and the measurements), what the data cannot give,
and the check that keeps any model's unsupported image findings from being shown as findings. No Qt.

    sheet = build_facts(measurements, levels_in_view, modality="CT", sees_images=False)
    checked = check_answer(model_statements, sheet, passage_ids, question=q, level="L3")
    checked.to_text()
"""
from core.findings.build import build_facts
from core.findings.check import Checked, CheckedAnswer, answer_schema, check_answer, split_text
from core.findings.facts import Fact, FactSheet, NotAssessed

__all__ = [
    "Checked",
    "CheckedAnswer",
    "Fact",
    "FactSheet",
    "NotAssessed",
    "answer_schema",
    "build_facts",
    "check_answer",
    "split_text",
]
