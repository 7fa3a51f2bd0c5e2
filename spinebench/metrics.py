"""Scores, confidence intervals and paired tests for benchmark results (numpy + math only).

- Every figure is an :class:`Estimate`: the value, its 95 % percentile-bootstrap interval (``B`` resamples of the
  items with replacement, seeded, so a rerun gives the same interval) and ``n``.
- MCQ accuracy: mean of 0/1 correctness (an invalid or missing answer is wrong).
- Report score: each of the 10 judge dimensions is scored 1-5; a dimension is reported on 0-100 as
  ``(score - 1) / 4 * 100`` (1 -> 0, 3 -> 50, 5 -> 100); a report's overall judge score is the mean of the 10
  dimensions on that scale and exists only when the judge scored all 10 (a partly parsed judgement still counts in
  the per-dimension figures; unscored dimensions are never counted as zero).
- Total: the mean of every scored item's primary score in 0-1 (MCQ correctness, report judge score / 100 - or the
  deterministic check score when no judge ran -, dialogue pass), i.e. axes weighted by their item counts.
- Paired comparison of two runs on the same items: McNemar's test for MCQ correctness (exact two-sided binomial test
  on the discordant pairs when there are fewer than 25, else the chi-square test with continuity correction), and a
  paired bootstrap of the mean score difference (interval and two-sided p).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

B_DEFAULT = 2000
SEED_DEFAULT = 20240531
EXACT_BELOW = 25

JUDGE_DIMENSIONS = ("imaging_findings", "diagnosis", "patient_guidance", "evidence_based_treatment",
                    "technical_feasibility", "risk_prognosis", "coverage", "relevance", "granularity",
                    "interpretability")


@dataclass(frozen=True)
class Estimate:
    value: float | None
    lo: float | None
    hi: float | None
    n: int

    def to_dict(self) -> dict:
        return asdict(self)

    def fmt(self, scale: float = 1.0, digits: int = 1) -> str:
        if self.value is None:
            return "-"
        return (f"{self.value * scale:.{digits}f} [{self.lo * scale:.{digits}f}, {self.hi * scale:.{digits}f}] "
                f"(n={self.n})")


def bootstrap_means(values: Sequence[float], b: int = B_DEFAULT, seed: int = SEED_DEFAULT) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(b, len(x)))
    return x[idx].mean(axis=1)


def mean_ci(values: Sequence[float], b: int = B_DEFAULT, seed: int = SEED_DEFAULT, level: float = 0.95) -> Estimate:
    """Mean with a percentile-bootstrap interval; an empty list gives an empty estimate."""
    x = [float(v) for v in values]
    if not x:
        return Estimate(None, None, None, 0)
    means = bootstrap_means(x, b, seed)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return Estimate(float(np.mean(x)), float(lo), float(hi), len(x))


def accuracy(correct: Sequence[bool], **kw) -> Estimate:
    return mean_ci([1.0 if c else 0.0 for c in correct], **kw)


def dimension_0_100(score: float) -> float:
    """A 1-5 judge score on the 0-100 scale."""
    if not 1.0 <= score <= 5.0:
        raise ValueError(f"judge scores are 1-5, got {score}")
    return (score - 1.0) / 4.0 * 100.0


def report_judge_score(scores: dict[str, float | None]) -> float | None:
    """Overall 0-100 judge score of one report: mean of the 10 dimensions; None unless all 10 were scored."""
    vals = [scores.get(k) for k in JUDGE_DIMENSIONS]
    if any(v is None for v in vals):
        return None
    return sum(dimension_0_100(v) for v in vals) / len(vals)


# --- paired tests ---------------------------------------------------------------------------------------------
def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p of k (the smaller count) successes in n trials with p = 0.5: 2 * P(X <= k), capped at 1."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict:
    """McNemar's test on paired correctness. ``b`` = A right & B wrong, ``c`` = A wrong & B right."""
    if len(a_correct) != len(b_correct):
        raise ValueError("paired results must have the same length")
    b = sum(1 for x, y in zip(a_correct, b_correct) if x and not y)
    c = sum(1 for x, y in zip(a_correct, b_correct) if y and not x)
    n = b + c
    if n < EXACT_BELOW:
        p, method, stat = binomial_two_sided(min(b, c), n), "exact binomial", None
    else:
        stat = (abs(b - c) - 1.0) ** 2 / n
        p, method = math.erfc(math.sqrt(stat / 2.0)), "chi-square (continuity corrected)"
    return {"n_pairs": len(a_correct), "a_only": b, "b_only": c, "discordant": n, "statistic": stat, "p": p,
            "method": method}


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = B_DEFAULT,
                     seed: int = SEED_DEFAULT) -> dict:
    """Mean of (b - a) over paired items with a bootstrap interval and a two-sided p (share of resampled means on
    the other side of zero, doubled)."""
    if len(a) != len(b):
        raise ValueError("paired scores must have the same length")
    if not a:
        return {"n_pairs": 0, "diff": None, "lo": None, "hi": None, "p": None}
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    means = bootstrap_means(d, n_boot, seed)
    lo, hi = np.quantile(means, [0.025, 0.975])
    if np.all(d == 0):
        p = 1.0
    else:
        p = float(min(1.0, 2.0 * min(np.mean(means <= 0.0), np.mean(means >= 0.0))))
    return {"n_pairs": len(d), "diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "p": p}
