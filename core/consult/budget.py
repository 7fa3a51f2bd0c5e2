"""Context-length management: fit a conversation into the model's context window, visibly.

The prompt (system + history + the new question) plus the tokens reserved for the answer must fit in ``n_ctx``;
tokens are counted with the model's own tokenizer and chat template. When they do not fit, whole turns are dropped
from the oldest end, down to ``target_ratio`` of the budget rather than just under it: the kept history then stays the
same for the next few questions, so their prompts keep extending one another and the KV cache is still reused.
The caller shows :attr:`Fit.note` to the user; when even the question alone does not fit,
:class:`ContextOverflowError` says so with the numbers.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.inference.backend import Message

SAFETY_MARGIN = 8  # tokens: template details (e.g. a BOS added by the runtime) that the count may not see


class ContextOverflowError(ValueError):
    pass


@dataclass
class Fit:
    messages: list[Message]
    start: int  # index into the history of the first message kept
    prompt_tokens: int
    dropped_turns: int  # turns newly dropped by this call
    limit: int

    @property
    def note(self) -> str | None:
        if not self.dropped_turns:
            return None
        s = "s" if self.dropped_turns != 1 else ""
        return (f"{self.dropped_turns} earlier question{s} and answer{s} left out of the model's view to fit its "
                f"context window ({self.limit} tokens for the prompt).")


def prompt_limit(n_ctx: int, answer_tokens: int) -> int:
    return n_ctx - answer_tokens - SAFETY_MARGIN


def fit_history(
    count: Callable[[list[Message]], int],
    system: Message,
    history: list[Message],
    current: Message,
    limit: int,
    start: int = 0,
    target_ratio: float = 0.75,
) -> Fit:
    """Keep ``history[start:]`` if it fits, else drop whole turns (a user message and what follows) from the start."""
    def build(s: int) -> list[Message]:
        return [system, *history[s:], current]

    n = count(build(start))
    if n <= limit:
        return Fit(build(start), start, n, 0, limit)
    candidates = [i for i, m in enumerate(history) if i > start and m["role"] == "user"] + [len(history)]
    target = int(limit * target_ratio)
    fallback: tuple[int, int] | None = None
    for s in candidates:
        n = count(build(s))
        if n <= target:
            return Fit(build(s), s, n, _turns(history, start, s), limit)
        if n <= limit and fallback is None:
            fallback = (s, n)
    if fallback is not None:
        s, n = fallback
        return Fit(build(s), s, n, _turns(history, start, s), limit)
    raise ContextOverflowError(
        f"the question with the study context needs {n} tokens, but the model's context window leaves {limit} for the "
        "prompt: shorten the question, or load the model with a larger context (n_ctx)"
    )


def _turns(history: list[Message], start: int, stop: int) -> int:
    return sum(1 for m in history[start:stop] if m["role"] == "user") or (1 if stop > start else 0)
