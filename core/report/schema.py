"""The JSON schema of a report document (``spinemed.report`` v1) and a small validator for the subset it uses.

``REPORT_SCHEMA`` is a JSON Schema (2020-12) document; ``report_schema_json()`` writes it out for other tools.
:func:`validate` checks ``type``, ``enum``, ``const``, ``properties``/``required``/``additionalProperties``, ``items``,
``minItems``/``maxItems``, ``maxLength``, ``pattern`` and local ``$ref`` (``#/$defs/...``): enough for this schema and
for the small per-call schemas of the drafting step, without a third-party dependency. Errors name the JSON path.
"""
from __future__ import annotations

import json
import re
from typing import Any

from core.report.model import ASPECTS, SCALES, SECTIONS, SOURCES, STATUSES, ReportFormatError

_STR = {"type": "string"}
_STR_LIST = {"type": "array", "items": _STR}
_NULL_STR = {"type": ["string", "null"]}

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://spinemed.invalid/schemas/report-v1.json",
    "title": "SpineMed structured spine report",
    "type": "object",
    "required": ["format", "format_version", "disclaimer", "signature_state", "study", "levels", "sections", "images", "measurements",
                 "passages", "notes", "incomplete", "template", "model", "report_id", "created_at", "signature",
                 "version"],
    "additionalProperties": False,
    "properties": {
        "format": {"const": "spinemed.report"},
        "format_version": {"type": "integer"},
        "disclaimer": _STR,
        "signature_state": _STR,  # derived, for readers of the file: "NOT SIGNED ..." or "Signed by ..."
        "study": {
            "type": "object",
            "additionalProperties": False,
            "required": ["modality", "region", "study_description", "study_date", "series_description", "series_uid",
                         "study_uid", "n_images", "patient_age", "patient_sex", "labelling", "levels_in_view"],
            "properties": {
                "modality": _STR, "region": _STR, "study_description": _STR, "study_date": _STR,
                "series_description": _STR, "series_uid": _STR, "study_uid": _STR, "n_images": {"type": "integer"},
                "patient_age": _NULL_STR, "patient_sex": _NULL_STR, "labelling": _STR, "levels_in_view": _STR_LIST,
            },
        },
        "levels": {"type": "array", "items": {"$ref": "#/$defs/level"}},
        "sections": {
            "type": "object",
            "additionalProperties": False,
            "required": list(SECTIONS),
            "properties": {name: {"type": "array", "items": {"$ref": "#/$defs/statement"}} for name in SECTIONS},
        },
        "images": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["id", "description", "series_uid", "kind"],
            "properties": {"id": _STR, "description": _STR, "series_uid": _STR,
                           "kind": {"enum": ["series", "key image"]}}}},
        "measurements": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["id", "name", "level", "value", "unit"],
            "properties": {"id": _STR, "name": _STR, "level": _NULL_STR, "value": {"type": "number"}, "unit": _STR}}},
        "passages": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["id", "title"],
            "properties": {"id": _STR, "title": _STR}}},
        "notes": _STR_LIST,
        "incomplete": _NULL_STR,
        "template": _STR,
        "model": _STR,
        "report_id": _STR,
        "created_at": _STR,
        "signature": {"oneOf": [{"type": "null"}, {
            "type": "object", "additionalProperties": False, "required": ["name", "signed_at", "version"],
            "properties": {"name": _STR, "signed_at": _STR, "version": {"type": "integer"}}}]},
        "version": {"type": "integer"},
    },
    "$defs": {
        "statement": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "text", "source", "status", "aspect", "grade", "basis", "original"],
            "properties": {
                "id": _STR,
                "text": _STR,
                "source": {"enum": list(SOURCES)},
                "status": {"enum": list(STATUSES)},
                "aspect": {"enum": ["", *ASPECTS, *SCALES, "measurement", "note"]},
                "grade": _NULL_STR,
                "basis": {"type": "object", "additionalProperties": False,
                          "required": ["images", "measurements", "passages"],
                          "properties": {"images": _STR_LIST, "measurements": _STR_LIST, "passages": _STR_LIST}},
                "original": _NULL_STR,
            },
        },
        "level": {
            "type": "object",
            "additionalProperties": False,
            "required": ["level", "kind", "statements", "position", "partial", "note"],
            "properties": {
                "level": {"type": "string", "pattern": "^[CTLS][0-9]{1,2}(-[CTLS][0-9]{1,2})?$"},
                "kind": {"enum": ["vertebra", "disc"]},
                "statements": {"type": "array", "items": {"$ref": "#/$defs/statement"}},
                "position": {"oneOf": [{"type": "null"},
                                       {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}]},
                "partial": {"type": "boolean"},
                "note": _STR,
            },
        },
    },
}

_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def _errors(value: Any, schema: dict, root: dict, path: str) -> list[str]:
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref}")
        return _errors(value, root["$defs"][ref.split("/")[-1]], root, path)
    if "oneOf" in schema or "anyOf" in schema:
        options = schema.get("oneOf") or schema["anyOf"]
        results = [_errors(value, option, root, path) for option in options]
        return [] if any(not r for r in results) else min(results, key=len)
    where = path or "$"
    if "const" in schema and value != schema["const"]:
        return [f"{where}: expected {schema['const']!r}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is_type(value, n) for n in names):
            return [f"{where}: expected {' or '.join(names)}, got {type(value).__name__}"]
    out: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"{where}: missing {key!r}")
        for key, item in value.items():
            if key in props:
                out += _errors(item, props[key], root, f"{path}.{key}" if path else key)
            elif schema.get("additionalProperties") is False:
                out.append(f"{where}: unexpected property {key!r}")
    elif isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                out += _errors(item, schema["items"], root, f"{where}[{i}]")
    elif isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{where}: longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{where}: {value!r} does not match {schema['pattern']}")
    return out


def errors(value: Any, schema: dict) -> list[str]:
    """Every violation of ``schema`` by ``value`` (empty when valid)."""
    return _errors(value, schema, schema, "")


def validate(value: Any, schema: dict, what: str = "document") -> None:
    problems = errors(value, schema)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ReportFormatError(f"invalid {what}: " + "; ".join(problems[:5]) + more)


def validate_report(doc: Any) -> None:
    validate(doc, REPORT_SCHEMA, "report")


def report_schema_json(indent: int = 1) -> str:
    return json.dumps(REPORT_SCHEMA, indent=indent)
