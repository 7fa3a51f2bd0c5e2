"""Constrained generation: a chat call whose answer is JSON matching a schema, on any ChatBackend.

    data = generate_json(backend, messages, schema, GenerationParams(max_tokens=600), cancel=token)

- A backend with its own ``chat_json(messages, schema, params, cancel)`` is used as it is (an extension point for
  other runtimes and for tests).
- llama.cpp (``LlamaCppBackend``): the schema becomes a GBNF grammar (llama-cpp-python's
  ``response_format={"type": "json_object", "schema": ...}``), so every sampled token keeps the output inside the
  schema; with bounded strings (``maxLength`` / bounded ``pattern``) and ``max_tokens`` at least the longest answer
  the schema allows, the output always parses. ``core.inference`` has no public grammar parameter yet, so this module
  reaches the backend's ``Llama`` object through one small accessor (:func:`_llama_of`); asking that module's owner
  for ``chat_stream(..., json_schema=)`` is noted in the report of this work.
- Any other backend: unconstrained generation, the first JSON object in the text is taken and validated.

Every result is validated against the schema (``core.report.schema``); failures raise :class:`ConstrainedOutputError`
with the reason. Cancellation raises :class:`core.tasks.Cancelled`.
"""
from __future__ import annotations

import json
from typing import Any

from core.inference.backend import ChatBackend, GenerationParams, Message
from core.report.schema import errors
from core.tasks import Cancelled, CancelToken, check


class ConstrainedOutputError(RuntimeError):
    """The model's answer did not parse or did not match the schema."""


def _llama_of(backend: Any) -> Any | None:
    """The llama_cpp.Llama behind a LlamaCppBackend (loaded), else None."""
    llm = getattr(backend, "_llm", None)
    if llm is None or not hasattr(llm, "create_chat_completion") or not hasattr(backend, "_run_lock"):
        return None
    return llm


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


def _llama_json(backend: Any, llm: Any, messages: list[Message], schema: dict, params: GenerationParams,
                cancel: CancelToken) -> str:
    formatter = getattr(backend, "_formatter", None)
    parts: list[str] = []
    finish = ""
    with backend._run_lock:
        if formatter is not None:  # its stopping criterion checks the token after every sampled token
            formatter.token = cancel
        try:
            stream = llm.create_chat_completion(
                [{"role": m["role"], "content": m["content"]} for m in messages], stream=True,
                response_format={"type": "json_object", "schema": schema}, max_tokens=params.max_tokens,
                temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                repeat_penalty=params.repeat_penalty, seed=params.seed,
            )
            try:
                for chunk in stream:
                    if cancel.cancelled:
                        break
                    choice = chunk["choices"][0]
                    parts.append(choice["delta"].get("content") or "")
                    finish = choice.get("finish_reason") or finish
            finally:
                stream.close()
        finally:
            if formatter is not None:
                formatter.token = None
    check(cancel)
    if finish == "length":
        raise ConstrainedOutputError(f"the answer reached the {params.max_tokens}-token limit before it was complete")
    return "".join(parts)


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
        llm = _llama_of(backend)
        if llm is not None:
            text = _llama_json(backend, llm, messages, schema, params, token)
        else:
            text = "".join(backend.chat_stream(messages, params, cancel=token))
            check(token)
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
