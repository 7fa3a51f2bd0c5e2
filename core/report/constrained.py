"""Constrained generation: a chat call whose answer is JSON matching a schema, on any ChatBackend.

    data = generate_json(backend, messages, schema, GenerationParams(max_tokens=600), cancel=token)

- A backend with its own ``chat_json(messages, schema, params, cancel)`` is used as it is (an extension point for
  other runtimes and for tests).
- llama.cpp (``LlamaCppBackend``): the schema becomes a GBNF grammar (llama-cpp-python's
  ``response_format={"type": "json_object", "schema": ...}``), so every sampled token keeps the output inside the
  schema; with bounded strings (``maxLength`` / bounded ``pattern``) and ``max_tokens`` at least the longest answer
  the schema allows, the output always parses. The schema travels as ``GenerationParams.json_schema``.
- Any other backend: unconstrained generation, the first JSON object in the text is taken and validated.

Every result is validated against the schema (``core.report.schema``); failures raise :class:`ConstrainedOutputError`
with the reason. Cancellation raises :class:`core.tasks.Cancelled`.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from core.inference.backend import ChatBackend, GenerationParams, Message
from core.report.schema import errors
from core.tasks import Cancelled, CancelToken, check


class ConstrainedOutputError(RuntimeError):
    """The model's answer did not parse or did not match the schema."""


def first_json_object(text: str) -> Any:
    """The first complete JSON object in ``text`` (models often wrap it in prose or code fences)."""
    start = text.find("{")
    decoder = json.JSONDecoder()
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text[start:])
            return value
        except ValueError:
            start = text.find("{", start + 1)
    raise ConstrainedOutputError(f"no JSON object in the model's answer ({text[:80]!r})")


def generate_json(backend: ChatBackend, messages: list[Message], schema: dict, params: GenerationParams | None = None,
                  cancel: CancelToken | None = None) -> Any:
    """The model's answer to ``messages`` as a JSON value matching ``schema``."""
    params = params or GenerationParams()
    token = cancel or CancelToken()
    check(token)
    custom = getattr(backend, "chat_json", None)
    if callable(custom):
        value = custom(messages, schema, params, token)
    else:
        text = "".join(backend.chat_stream(messages, replace(params, json_schema=schema), cancel=token))
        check(token)
        stats = getattr(backend, "last_stats", None)
        if stats is not None and getattr(stats, "finish_reason", "") == "length":
            raise ConstrainedOutputError(
                f"the answer reached the {params.max_tokens}-token limit before it was complete")
        try:
            value = json.loads(text)
        except ValueError:
            value = first_json_object(text)
    if token.cancelled:
        raise Cancelled()
    problems = errors(value, schema)
    if problems:
        raise ConstrainedOutputError("the model's answer does not match the schema: " + "; ".join(problems[:3]))
    return value


def max_answer_chars(schema: dict) -> int:
    """An upper bound of the answer's length in characters (bounded strings and arrays only); tokens <= chars."""
    if "enum" in schema:
        return max(len(json.dumps(v)) for v in schema["enum"]) + 2
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return 2 + sum(len(k) + 6 + max_answer_chars(v) for k, v in props.items())
    if kind == "array":
        return 2 + schema.get("maxItems", 8) * (2 + max_answer_chars(schema["items"]))
    if kind == "string":
        return 4 + int(schema.get("x-max-chars", schema.get("maxLength", 200)))
    return 24
