"""JSON schemas of the item types, used twice: to constrain LLM output (llama.cpp grammar / response_format) and to
validate every item before it is stored or exported.

Task types: ``mcq`` (4-5 options, one correct, rationale), ``open_qa`` (question + reference answer),
``consultation`` (3-8 turns, patient and clinician alternating, patient first and clinician last, about one level),
``report`` (structured report with the sections of core.report: technique, findings per level, impression, advice
for the patient, treatment options, risk/prognosis, and the basis of the statements).
:func:`validate` implements the subset of JSON Schema used here (type, required, properties,
additionalProperties, items, minItems/maxItems, enum, minLength/maxLength, minimum/maximum) plus the rules a schema
cannot say (distinct options, alternating roles).
"""
from __future__ import annotations

import itertools
from typing import Any

TASKS = ("mcq", "open_qa", "consultation", "report")
_TEXT = {"type": "string", "minLength": 1, "maxLength": 1200}
_SHORT = {"type": "string", "minLength": 1, "maxLength": 300}

MCQ = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "minLength": 8, "maxLength": 600},
        "options": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 300},
                    "minItems": 4, "maxItems": 5},
        "answer_index": {"type": "integer", "enum": [0, 1, 2, 3, 4]},
        "rationale": _TEXT,
    },
    "required": ["question", "options", "answer_index", "rationale"],
    "additionalProperties": False,
}
OPEN_QA = {
    "type": "object",
    "properties": {"question": {"type": "string", "minLength": 8, "maxLength": 600}, "answer": _TEXT},
    "required": ["question", "answer"],
    "additionalProperties": False,
}
CONSULTATION = {
    "type": "object",
    "properties": {
        "level": {"type": "string", "minLength": 2, "maxLength": 12},
        "turns": {"type": "array", "minItems": 3, "maxItems": 8, "items": {
            "type": "object",
            "properties": {"role": {"type": "string", "enum": ["patient", "clinician"]}, "text": _TEXT},
            "required": ["role", "text"], "additionalProperties": False}},
    },
    "required": ["level", "turns"],
    "additionalProperties": False,
}
REPORT = {
    "type": "object",
    "properties": {
        "technique": _SHORT,
        "findings": {"type": "array", "minItems": 1, "maxItems": 30, "items": {
            "type": "object", "properties": {"level": {"type": "string", "minLength": 2, "maxLength": 12},
                                             "finding": _SHORT},
            "required": ["level", "finding"], "additionalProperties": False}},
        "impression": _TEXT,
        "advice": _TEXT,
        "treatment": _TEXT,
        "risk": _TEXT,
        "basis": {"type": "array", "minItems": 1, "maxItems": 10, "items": _SHORT},
    },
    "required": ["technique", "findings", "impression", "advice", "treatment", "risk", "basis"],
    "additionalProperties": False,
}
SCHEMAS: dict[str, dict[str, Any]] = {"mcq": MCQ, "open_qa": OPEN_QA, "consultation": CONSULTATION, "report": REPORT}

REVISION = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["keep", "fix", "reject"]},
        "problems": {"type": "array", "maxItems": 6, "items": {"type": "string", "maxLength": 300}},
    },
    "required": ["verdict", "problems"],
    "additionalProperties": False,
}


def revision_schema(task: str) -> dict[str, Any]:
    """The critique schema (for the decoder) with a ``revised`` item of the task's own schema."""
    schema = for_decoder({**REVISION, "properties": {**REVISION["properties"], "revised": llm_schema(task)}})
    schema["required"] = ["verdict", "problems", "revised"]
    return schema


def for_decoder(schema: Any) -> Any:
    """A copy without string length limits: llama.cpp's grammar compiler expands ``maxLength`` into nested optional
    rules and refuses long ones. Lengths are checked by :func:`validate` afterwards, and ``max_tokens`` bounds the
    output."""
    if isinstance(schema, dict):
        return {k: for_decoder(v) for k, v in schema.items() if k not in ("minLength", "maxLength")}
    if isinstance(schema, list):
        return [for_decoder(v) for v in schema]
    return schema


def llm_schema(task: str) -> dict[str, Any]:
    """The schema given to a constrained decoder: 4 MCQ options and an answer index limited to them."""
    schema = for_decoder(SCHEMAS[task])
    if task == "mcq":
        schema["properties"]["options"] = {**schema["properties"]["options"], "minItems": 4, "maxItems": 4}
        schema["properties"]["answer_index"] = {"type": "integer", "enum": [0, 1, 2, 3]}
    return schema


def _check(value: Any, schema: dict[str, Any], path: str, errors: list[str]) -> None:
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool}
    if kind and not isinstance(value, types[kind]) or (kind in ("integer", "number") and isinstance(value, bool)):
        errors.append(f"{path}: expected {kind}, got {type(value).__name__}")
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if kind == "string":
        text = value.strip()
        if len(text) < schema.get("minLength", 0):
            errors.append(f"{path}: too short ({len(text)} < {schema['minLength']})")
        if len(value) > schema.get("maxLength", 1 << 30):
            errors.append(f"{path}: too long ({len(value)} > {schema['maxLength']})")
    elif kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > {schema['maximum']}")
    elif kind == "array":
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: {len(value)} items < {schema['minItems']}")
        if len(value) > schema.get("maxItems", 1 << 30):
            errors.append(f"{path}: {len(value)} items > {schema['maxItems']}")
        for i, v in enumerate(value):
            _check(v, schema.get("items", {}), f"{path}[{i}]", errors)
    elif kind == "object":
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}.{key}: missing")
        if schema.get("additionalProperties") is False:
            extra = set(value) - set(props)
            if extra:
                errors.append(f"{path}: unexpected field(s) {sorted(extra)}")
        for key, sub in props.items():
            if key in value:
                _check(value[key], sub, f"{path}.{key}", errors)


def validate(task: str, content: Any) -> list[str]:
    """Problems with an item's content ([] when valid)."""
    if task not in SCHEMAS:
        return [f"unknown task {task!r} (known: {', '.join(TASKS)})"]
    errors: list[str] = []
    _check(content, SCHEMAS[task], task, errors)
    if errors:
        return errors
    if task == "mcq":
        opts = [o.strip().lower() for o in content["options"]]
        if len(set(opts)) != len(opts):
            errors.append("mcq.options: options must be distinct")
        if content["answer_index"] >= len(opts):
            errors.append(f"mcq.answer_index: {content['answer_index']} but only {len(opts)} options")
    elif task == "consultation":
        roles = [t["role"] for t in content["turns"]]
        if roles[0] != "patient" or roles[-1] != "clinician":
            errors.append("consultation.turns: must start with the patient and end with the clinician")
        if any(a == b for a, b in itertools.pairwise(roles)):
            errors.append("consultation.turns: roles must alternate")
    return errors
