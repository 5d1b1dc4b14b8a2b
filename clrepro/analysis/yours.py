"""A user's method against every baseline of an artifact (issue 24), by the verdict engine.

Her runs mirror a reference baseline's (same benchmark, seeds, epochs; clrepro.yours), so
every comparison pairs runs of the same seed (same stream, same initialisation): the rule
`paired` ("yours > baseline", one-tailed paired t-test, clrepro.analysis.verdicts) gives
n, the effect (mean of the per-seed differences), its 95 % CI, p and the status -- "holds":
yours is better, "does not hold": the baseline is, "inconclusive": neither is supported.
Beside the metric: the memory a method keeps (the record's measured intra-batch peak, in
bytes, beyond the network) and its training time, for hers and the baseline's runs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from clrepro.analysis import verdicts as V
from clrepro.analysis.collect import RunSet
from clrepro.spec import RunSpec


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def _memory(runs: RunSet, specs: list[RunSpec]) -> float | None:
    peaks = []
    for spec in specs:
        record = runs.record(spec)
        if record is not None and record.get("memory_bytes"):
            peaks.append(float(record["memory_bytes"].get("intra_batch", 0)))
    return _mean(peaks)


def compare(runs: RunSet, mine: list[RunSpec], baselines: list[RunSpec], name: str,
            metric: str) -> list[dict[str, Any]]:
    """One row per (setting of hers, baseline group): the paired comparison's evidence and
    both sides' means, memory and training time."""
    rows = []
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in mine:
        groups.setdefault((spec.benchmark, spec.memory, spec.epochs, spec.overrides), []).append(spec)
    for (benchmark, memory, epochs, overrides), specs in sorted(groups.items(), key=str):
        kept = dict(overrides)
        near = [b for b in baselines if b.benchmark == benchmark and b.epochs == epochs
                and all(dict(b.overrides).get(k) == v for k, v in kept.items())]
        by_label: dict[tuple[str, int], list[RunSpec]] = {}
        for b in near:
            label = b.label if not kept else RunSpec(b.benchmark, b.method, b.seed, b.memory,
                b.epochs, tuple((k, v) for k, v in b.overrides if k not in kept)).label
            by_label.setdefault((label, b.memory), []).append(b)
        same_memory = {label for label, m in by_label if m == memory}
        hers = _values(runs, specs, metric)
        for (label, their_memory), theirs_specs in sorted(by_label.items(), key=str):
            if label in same_memory and their_memory != memory:
                continue  # that baseline also runs at her memory size: compare there
            theirs = _values(runs, theirs_specs, metric)
            ev = V.paired(hers, theirs, f"{name} > {label}")
            rows.append({
                "benchmark": benchmark, "epochs": epochs, "memory": memory,
                **({"variant": ", ".join(f"{k}={v}" for k, v in kept.items())} if kept else {}),
                "baseline": label, "baseline memory": their_memory, "metric": metric,
                "yours": _mean(hers.values()), "theirs": _mean(theirs.values()),
                "n": ev.n, "effect": V._finite(ev.effect),
                "ci": list(ev.ci) if ev.ci else None, "p": V._finite(ev.p),
                "status": ev.status, "rule": ev.rule,
                "yours bytes": _memory(runs, specs), "theirs bytes": _memory(runs, theirs_specs),
                "yours train_s": _mean(_values(runs, specs, "train_s").values()),
                "theirs train_s": _mean(_values(runs, theirs_specs, "train_s").values()),
            })
    return rows


def _values(runs: RunSet, specs: list[RunSpec], metric: str) -> dict[int, float]:
    """seed -> metric of the usable runs among `specs`."""
    paths = {str(s.path(runs.root)) for s in specs}
    ok = runs.df[runs.df["path"].isin(paths) & (runs.df["status"] == "ok")]
    return {int(s): float(v) for s, v in zip(ok["seed"], ok[metric]) if math.isfinite(float(v))}


def display(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The rows as short strings (Markdown, the report)."""
    def num(v, form="{:.4g}"):
        return "–" if v is None else form.format(v)

    out = []
    for r in rows:
        out.append({
            "benchmark": r["benchmark"] + (f" ({r['variant']})" if r.get("variant") else ""),
            "e": str(r["epochs"]), "vs": f"{r['baseline']} (m{r['baseline memory']})",
            "yours": f"{num(r['yours'])} (m{r['memory']})", "theirs": num(r["theirs"]),
            "n": str(r["n"]), "effect": num(r["effect"], "{:+.3g}"),
            "95% CI": "–" if not r["ci"] else f"[{r['ci'][0]:+.3g}, {r['ci'][1]:+.3g}]",
            "p": num(r["p"], "{:.2g}"), "verdict": r["status"],
            "bytes yours/theirs": f"{num(r['yours bytes'], '{:.3g}')}/{num(r['theirs bytes'], '{:.3g}')}",
            "train s yours/theirs": f"{num(r['yours train_s'], '{:.3g}')}/{num(r['theirs train_s'], '{:.3g}')}",
        })
    return out


def tally(rows: list[dict[str, Any]]) -> str:
    """'better than 3, worse than 1, inconclusive 5 (9 paired comparisons)'."""
    wins = sum(r["status"] == V.HOLDS for r in rows)
    losses = sum(r["status"] == V.FAILS for r in rows)
    return (f"better than the baseline in {wins}, worse in {losses}, undecided in "
            f"{len(rows) - wins - losses} of {len(rows)} paired comparisons")
