"""Aggregating per-item records into results (JSON, Markdown table, bar plot) and comparing two runs.

All figures are on 0-100 in the Markdown and the plot (accuracies and pass rates as percentages, judge scores on
their 0-100 scale) and carry 95 % bootstrap intervals (``metrics.mean_ci``). ``compare`` pairs two results files on
their common item ids: McNemar for MCQ correctness, paired bootstrap for scores.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spinebench.metrics import JUDGE_DIMENSIONS, Estimate, accuracy, mcnemar, mean_ci, paired_bootstrap
from spinebench.schema import AXES

_KEEP = ("id", "axis", "format", "modality", "subtype", "case_id", "review_status", "image_withheld", "correct",
         "extracted", "extraction", "answer", "score", "score_source", "error")
CHECKS = ("parses", "levels_covered", "no_outside_level", "values_match")
NO_INVENTION = ("no_outside_level", "values_match")  # only meaningful for a report that says something


def _compact(rec: dict) -> dict:
    out = {k: rec[k] for k in _KEEP if k in rec}
    if "checks" in rec:
        out["checks"] = {k: rec["checks"].get(k) for k in (*CHECKS, "score", "n_values")}
        out["checks"]["has_content"] = rec["checks"].get("has_content", True)
    if "judge" in rec:
        out["judge"] = {"scores": rec["judge"]["scores"], "overall_0_100": rec["judge"]["overall_0_100"]}
    if "dialogue" in rec:
        out["dialogue"] = {"passed": rec["dialogue"]["passed"], "fraction": rec["dialogue"]["fraction"]}
    return out


def _est(e: Estimate) -> dict:
    return e.to_dict()


def summarise(records: list[dict], meta: dict) -> dict[str, Any]:
    items = [_compact(r) for r in records]
    scored = [r for r in items if r.get("score") is not None]
    mcq = [r for r in items if r["format"] == "mcq"]
    summary: dict[str, Any] = {"total": _est(mean_ci([r["score"] for r in scored]))}
    summary["axes"] = {a: _est(mean_ci([r["score"] for r in scored if r["axis"] == a])) for a in AXES
                       if any(r["axis"] == a for r in items)}
    for a in sorted({r["axis"] for r in items} - set(AXES)):  # imported benchmarks may bring their own axes
        summary["axes"][a] = _est(mean_ci([r["score"] for r in scored if r["axis"] == a]))

    def acc(rows: list[dict]) -> dict:
        return _est(accuracy([bool(r.get("correct")) for r in rows]))

    summary["mcq"] = {
        "all": acc(mcq), "text": acc([r for r in mcq if r["modality"] == "text"]),
        "image+text": acc([r for r in mcq if r["modality"] == "image+text"]),
        "by_axis": {a: {"all": acc(rows), "text": acc([r for r in rows if r["modality"] == "text"]),
                        "image+text": acc([r for r in rows if r["modality"] == "image+text"])}
                    for a in sorted({r["axis"] for r in mcq}) for rows in [[r for r in mcq if r["axis"] == a]]},
        "extraction": {s: sum(1 for r in mcq if r.get("extraction") == s) for s in ("ok", "invalid", "none")},
    }
    reports = [r for r in items if r["format"] == "report"]
    judged = [r for r in reports if r.get("judge")]
    dims = {d: _est(mean_ci([(r["judge"]["scores"][d] - 1) / 4 * 100 for r in judged
                             if r["judge"]["scores"].get(d) is not None])) for d in JUDGE_DIMENSIONS}
    n_cells = len(judged) * len(JUDGE_DIMENSIONS)
    parsed = sum(1 for r in judged for d in JUDGE_DIMENSIONS if r["judge"]["scores"].get(d) is not None)
    summary["report"] = {
        "n": len(reports), "n_judged": len(judged),
        "judge_overall": _est(mean_ci([r["judge"]["overall_0_100"] for r in judged
                                       if r["judge"]["overall_0_100"] is not None])),
        "dimensions": dims, "judge_parse_rate": parsed / n_cells if n_cells else None,
        "checks": {c: _est(mean_ci([float(r["checks"][c]) for r in reports if "checks" in r
                                    and (c not in NO_INVENTION or r["checks"].get("has_content", True))]))
                   for c in (*CHECKS, "has_content", "score")},
    }
    dialogues = [r for r in items if r["format"] == "dialogue" and "dialogue" in r]
    summary["dialogue"] = {
        "pass": _est(mean_ci([float(r["dialogue"]["passed"]) for r in dialogues])),
        "checks_passed": _est(mean_ci([r["dialogue"]["fraction"] for r in dialogues])),
        "by_subtype": {s: _est(mean_ci([float(r["dialogue"]["passed"]) for r in dialogues if r["subtype"] == s]))
                       for s in sorted({r["subtype"] for r in dialogues})},
    }
    opens = [r for r in items if r["format"] == "open"]
    summary["open"] = {"judge": _est(mean_ci([r["score"] * 100 for r in opens if r.get("score_source") == "judge"])),
                       "n": len(opens)}
    summary["flags"] = {"image_withheld": sum(1 for r in items if r.get("image_withheld")),
                        "errors": sum(1 for r in items if r.get("error")),
                        "unscored": len(items) - len(scored),
                        "report_score_source": sorted({r.get("score_source") for r in reports})}
    return {"meta": meta, "summary": summary, "items": items}


# --- output ---------------------------------------------------------------------------------------------------
def _pct(e: dict, scale: float = 100.0) -> tuple[str, str, str]:
    if e["value"] is None:
        return "-", "-", str(e["n"])
    return f"{e['value'] * scale:.1f}", f"{e['lo'] * scale:.1f} - {e['hi'] * scale:.1f}", str(e["n"])


def markdown(results: dict) -> str:
    m, s = results["meta"], results["summary"]
    cand = m["candidate"]
    name = Path(cand["model"]).name if cand["kind"] != "openai" else f"{cand['model']} @ {cand['url']}"
    if cand.get("adapter"):
        name += f" + adapter {Path(cand['adapter']).name}"
    judge = m.get("judge")
    judge_name = "none" if not judge else (Path(judge["model"]).name if judge["kind"] != "openai"
                                           else f"{judge['model']} @ {judge['url']}")
    rows = [("**Total** (all scored items, item-weighted)", *_pct(s["total"]))]
    rows += [(f"axis: {a}", *_pct(e)) for a, e in s["axes"].items()]
    rows += [("MCQ accuracy, all", *_pct(s["mcq"]["all"])), ("MCQ accuracy, text-only items", *_pct(s["mcq"]["text"])),
             ("MCQ accuracy, image+text items", *_pct(s["mcq"]["image+text"]))]
    for a, d in s["mcq"]["by_axis"].items():
        rows += [(f"MCQ accuracy, {a}, {k}", *_pct(v)) for k, v in d.items() if v["n"] and k != "all"]
    rep = s["report"]
    if rep["n"]:
        rows.append(("Report: judge overall (0-100)", *_pct(rep["judge_overall"], 1.0)))
        rows += [(f"Report judge: {d.replace('_', ' ')}", *_pct(e, 1.0)) for d, e in rep["dimensions"].items()]
        names = {"has_content": "report has content of its own", "score": "combined check score",
                 "no_outside_level": "no level outside the view (reports with content)",
                 "values_match": "quoted values match (reports with content)"}
        rows += [(f"Report check: {names.get(c, c.replace('_', ' '))}", *_pct(e)) for c, e in rep["checks"].items()]
    dia = s["dialogue"]
    if dia["pass"]["n"]:
        rows.append(("Consultation: all turn checks pass", *_pct(dia["pass"])))
        rows.append(("Consultation: share of turn checks passed", *_pct(dia["checks_passed"])))
        rows += [(f"Consultation: {k}", *_pct(v)) for k, v in dia["by_subtype"].items()]
    if s["open"]["n"]:
        rows.append(("Open questions: judge (0-100)", *_pct(s["open"]["judge"], 1.0)))
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    flags = s["flags"]
    ex = s["mcq"]["extraction"]
    notes = [f"Benchmark {m['bench']} ({m['n_selected']} of {m['n_bench_items']} items"
             + (f", stratified subset --limit {m['limit']}" if m.get("limit") else "") + ").",
             f"Candidate: {name} ({cand['kind']}); judge: {judge_name}.",
             (f"MCQ answer extraction: {ex['ok']} answered, {ex['invalid']} invalid (several options), "
             f"{ex['none']} without an answer; invalid and missing answers count as wrong."),
             ("Scores are 0-100 (accuracies and pass rates in %); 95 % percentile-bootstrap intervals over items "
             "(2000 resamples, seeded). Items from one study are correlated, so the intervals are optimistic.")]
    if flags["image_withheld"]:
        notes.append(f"{flags['image_withheld']} image items were answered from their text only: the candidate takes "
                     "no images (chance on 4-option MCQ is 25 %).")
    if rep["n"] and not rep["n_judged"]:
        notes.append("No judge ran: report items are scored by the deterministic checks only.")
    elif rep["n_judged"]:
        fully = rep["judge_overall"]["n"]
        notes.append(f"Judge replies parsed for {100 * (rep['judge_parse_rate'] or 0):.0f} % of the report x "
                     f"dimension cells; {fully} of {rep['n']} reports got all 10 dimensions (only those have an "
                     "overall judge score and use it as their item score; the others use the deterministic checks).")
    if flags["errors"]:
        notes.append(f"{flags['errors']} items failed with an error and count as 0.")
    return (f"# SpineBench results: {name}\n\n| figure | score | 95 % CI | n |\n|---|---|---|---|\n{table}\n\n"
            + "\n".join(f"- {n}" for n in notes) + "\n")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results["summary"]
    bars = [("Total", s["total"])] + [(a.replace("_", " "), e) for a, e in s["axes"].items()]
    withheld = s["flags"]["image_withheld"] > 0
    bars += [("MCQ text-only", s["mcq"]["text"]),
             ("MCQ image+text" + (" (image not shown)" if withheld else ""), s["mcq"]["image+text"])]
    bars = [(n, e) for n, e in bars if e["n"]]
    rep = s["report"]
    right = ([(d.replace("_", " "), e) for d, e in rep["dimensions"].items() if e["n"]]
             if rep["judge_overall"]["n"] else [])
    right_title = "Report judge dimensions (0-100)"
    if not right:
        right = [(c.replace("_", " "), {**e, "value": e["value"] * 100 if e["value"] is not None else None,
                                         "lo": (e["lo"] or 0) * 100, "hi": (e["hi"] or 0) * 100})
                 for c, e in rep["checks"].items() if e["n"]]
        right_title = "Report deterministic checks (%)"
    fig, axes = plt.subplots(1, 2 if right else 1, figsize=(12 if right else 7, 4.8), squeeze=False)
    _barh(axes[0][0], [(n, {**e, "value": e["value"] * 100, "lo": e["lo"] * 100, "hi": e["hi"] * 100})
                       for n, e in bars], "Score per axis (0-100, 95 % CI)")
    axes[0][0].axvline(25, color="#aa3333", linestyle="--", linewidth=1)
    axes[0][0].text(25.5, -0.45, "MCQ chance (4 options)", color="#aa3333", fontsize=7, va="top")
    if right:
        _barh(axes[0][1], right, right_title)
    m = results["meta"]
    fig.suptitle(f"SpineBench {m['bench']}: {Path(m['candidate']['model']).name}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _barh(ax: Any, bars: list[tuple[str, dict]], title: str) -> None:
    names = [f"{n} (n={e['n']})" for n, e in bars]
    vals = [e["value"] for n, e in bars]
    err = [[v - e["lo"] for v, (n, e) in zip(vals, bars)], [e["hi"] - v for v, (n, e) in zip(vals, bars)]]
    y = list(range(len(bars)))[::-1]
    ax.barh(y, vals, xerr=err, color="#4a7ab5", ecolor="#222222", capsize=3)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_title(title, fontsize=10)
    for yy, v, (_, e) in zip(y, vals, bars):
        ax.text(min(e["hi"] + 1.5, 93), yy + 0.25, f"{v:.0f}", va="bottom", fontsize=8)


def write_all(results: dict, out: Path) -> None:
    out = Path(out)
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    (out / "results.md").write_text(markdown(results), encoding="utf-8")
    plot(results, out / "results.png")


# --- comparison -----------------------------------------------------------------------------------------------
def compare(a: dict, b: dict) -> dict[str, Any]:
    """Paired comparison of two results on their common items (B minus A)."""
    ia = {r["id"]: r for r in a["items"]}
    ib = {r["id"]: r for r in b["items"]}
    common = [i for i in ia if i in ib]
    rows: dict[str, Any] = {}

    def groups() -> list[tuple[str, list[str]]]:
        out = [("total", common)]
        out += [(f"axis: {ax}", [i for i in common if ia[i]["axis"] == ax])
                for ax in dict.fromkeys(ia[i]["axis"] for i in common)]
        return out

    for name, ids in groups():
        pairs = [i for i in ids if ia[i].get("score") is not None and ib[i].get("score") is not None]
        sa, sb = [ia[i]["score"] for i in pairs], [ib[i]["score"] for i in pairs]
        rows[name] = {"kind": "paired bootstrap (mean score difference)",
                      "mean_a": sum(sa) / len(sa) if sa else None, "mean_b": sum(sb) / len(sb) if sb else None,
                      **paired_bootstrap(sa, sb)}
    mcq = [i for i in common if ia[i]["format"] == "mcq"]
    for name, ids in [("MCQ all", mcq), ("MCQ text-only", [i for i in mcq if ia[i]["modality"] == "text"]),
                      ("MCQ image+text", [i for i in mcq if ia[i]["modality"] == "image+text"])]:
        if ids:
            rows[name] = {"kind": "McNemar", "acc_a": sum(bool(ia[i].get("correct")) for i in ids) / len(ids),
                          "acc_b": sum(bool(ib[i].get("correct")) for i in ids) / len(ids),
                          **mcnemar([bool(ia[i].get("correct")) for i in ids], [bool(ib[i].get("correct")) for i in ids])}
    return {"a": a["meta"]["candidate"], "b": b["meta"]["candidate"], "n_common": len(common),
            "only_a": len(ia) - len(common), "only_b": len(ib) - len(common), "rows": rows}


def compare_markdown(cmp: dict, name_a: str, name_b: str) -> str:
    lines = [f"# SpineBench comparison: B = {name_b} vs A = {name_a}", "",
             f"{cmp['n_common']} common items (only in A: {cmp['only_a']}, only in B: {cmp['only_b']}).", "",
             "| figure | A | B | B - A | 95 % CI of B - A | p | test |", "|---|---|---|---|---|---|---|"]
    for name, r in cmp["rows"].items():
        if r["kind"] == "McNemar":
            diff = (r["acc_b"] - r["acc_a"]) * 100
            lines.append(f"| {name} | {r['acc_a'] * 100:.1f} | {r['acc_b'] * 100:.1f} | {diff:+.1f} | "
                         f"(A only right {r['a_only']}, B only right {r['b_only']}) | {r['p']:.3g} | "
                         f"McNemar, {r['method']} |")
        elif r["diff"] is not None:
            lines.append(f"| {name} (score) | {r['mean_a'] * 100:.1f} | {r['mean_b'] * 100:.1f} | "
                         f"{r['diff'] * 100:+.1f} | {r['lo'] * 100:+.1f} .. "
                         f"{r['hi'] * 100:+.1f} | {r['p']:.3g} | paired bootstrap, n={r['n_pairs']} |")
    return "\n".join(lines) + "\n"
