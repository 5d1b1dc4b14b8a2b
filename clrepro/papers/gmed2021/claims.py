"""GMED claims C1-C14 (spec §2), checked from run records. Where a scale lacks a dataset
(quick mode has only the MNIST stand-ins) that part of a claim is reported as not checkable."""

from __future__ import annotations

import math

import numpy as np

from clrepro.papers.base import FAILS, HOLDS, INCONCLUSIVE, NOT_CHECKABLE, Context, Verdict
from clrepro.papers.gmed2021 import numbers as N
from clrepro.papers.gmed2021 import runs as R
from clrepro.papers.gmed2021.artifacts import (edits, frame, plain, selections, significance,
                                               tsne_of_edits)
from clrepro.papers.gmed2021.protocol import TABLE1

LEVELS = {"**": 1e-3, "*": 0.05}


def _combine(parts: list[tuple[bool | None, str]], unavailable: list[str]) -> Verdict:
    """parts: (True/False = checked, None = runs missing, text)."""
    detail = "; ".join(text for _, text in parts)
    if unavailable:
        detail += f" (not checkable at this scale: {', '.join(unavailable)})"
    if any(ok is False for ok, _ in parts):
        return Verdict(FAILS, detail)
    if not parts:
        return Verdict(NOT_CHECKABLE, detail or "no dataset of this claim runs at this scale")
    if any(ok is None for ok, _ in parts):
        return Verdict(INCONCLUSIVE, detail)
    return Verdict(HOLDS, detail)


def _split(ctx: Context, datasets: list[str]) -> tuple[list[str], list[str]]:
    have = set(frame(ctx)["dataset"])
    return ([d for d in datasets if d in have],
            [R.DATASET_TITLES[d] for d in datasets if d not in have])


def _significant(ctx: Context, treated: str, expected: dict[str, str | None]) -> Verdict:
    """expected: dataset -> '*' / '**' (significant at that level) or None (not significant)."""
    df = frame(ctx)
    checked, unavailable = _split(ctx, list(expected))
    parts = []
    for d in checked:
        test = significance(df, treated, d)
        name = f"{R.DATASET_TITLES[d]}: {R.TITLES[treated]} - {R.TITLES[R.PAIRS_OF[treated]]} " \
               f"= {test.mean_diff:+.2f} points, p = {test.p:.2g} (n = {test.n})"
        if math.isnan(test.p):
            parts.append((None, name))
            continue
        level = expected[d]
        ok = test.p < LEVELS[level] and test.mean_diff > 0 if level else test.p >= 0.05
        parts.append((ok, name + (f", claimed p < {LEVELS[level]:g}" if level else ", claimed n.s.")))
    return _combine(parts, unavailable)


def c1(ctx):
    return _significant(ctx, "er_gmed", {"split_mnist": "**"})


def c2(ctx):
    return _significant(ctx, "er_gmed", {"rot_mnist": "*", "split_cifar10": "*",
                                         "split_miniimagenet": "**"})


def c3(ctx):
    return _significant(ctx, "er_gmed", {"perm_mnist": None})


def c4(ctx):
    return _significant(ctx, "mir_gmed", {"split_mnist": "**", "perm_mnist": "*",
                                          "rot_mnist": "**", "split_miniimagenet": "*",
                                          "split_cifar10": None})


def _mean(values: dict) -> float:
    return float(np.mean(list(values.values()))) if values else float("nan")


def c5(ctx):
    if ctx.quick:
        return Verdict(NOT_CHECKABLE, "absolute gains are compared at full scale only (quick uses "
                                      "stand-in data)")
    df = frame(ctx)
    gains = {("er_gmed", "split_mnist"): 1.72, ("er_gmed", "split_cifar10"): 1.67,
             ("er_gmed", "split_miniimagenet"): 1.79, ("er_gmed", "rot_mnist"): 0.94,
             ("mir_gmed", "split_mnist"): 2.98, ("mir_gmed", "split_cifar10"): 1.07,
             ("mir_gmed", "split_miniimagenet"): 1.28}
    parts = []
    for (treated, d), paper in gains.items():
        ours = _mean(plain(df, treated, d)) - _mean(plain(df, R.PAIRS_OF[treated], d))
        ok = None if math.isnan(ours) else (ours > 0 and abs(ours - paper) <= 1.0)
        parts.append((ok, f"{R.TITLES[treated]} on {R.DATASET_TITLES[d]}: {ours:+.2f} (paper {paper:+.2f})"))
    return _combine(parts, [])


def _best(ctx, datasets_rows: dict[str, str], exclude: tuple[str, ...]) -> Verdict:
    df = frame(ctx)
    checked, unavailable = _split(ctx, list(datasets_rows))
    parts = []
    for d in checked:
        means = {row: _mean(plain(df, row, d)) for row in set(df["row"]) if row not in exclude}
        means = {r: m for r, m in means.items() if not math.isnan(m)}
        if datasets_rows[d] not in means:
            parts.append((None, f"{R.DATASET_TITLES[d]}: {R.TITLES[datasets_rows[d]]} missing"))
            continue
        top = max(means, key=means.get)
        parts.append((top == datasets_rows[d], f"{R.DATASET_TITLES[d]}: best is {R.TITLES[top]} "
                                               f"({means[top]:.2f}) among {len(means)} methods"))
    return _combine(parts, unavailable)


def c6(ctx):
    rows = {d: "mir_gmed" for d in ("split_mnist", "perm_mnist", "rot_mnist", "split_cifar10")}
    return _best(ctx, {**rows, "split_miniimagenet": "er_gmed"}, ("iid_online", "iid_offline"))


def c7(ctx):
    return _best(ctx, {d: "iid_offline" for d in N.DATASETS}, ())


def _worse_than_gmed(ctx, ablation: str, datasets: list[str]) -> list[tuple[bool | None, str]]:
    df = frame(ctx)
    parts = []
    for d in datasets:
        gmed, other = _mean(plain(df, "er_gmed", d)), _mean(plain(df, ablation, d))
        ok = None if math.isnan(gmed) or math.isnan(other) else other < gmed
        parts.append((ok, f"{R.DATASET_TITLES[d]}: {R.TITLES[ablation]} {other:.2f} vs GMED {gmed:.2f}"))
    return parts


def c8(ctx):
    checked, unavailable = _split(ctx, list(N.DATASETS))
    parts = _worse_than_gmed(ctx, "er_random_edit", checked)
    return _combine(parts, unavailable + (["Random Edit > ER on Split CIFAR-10 (ER is in Table 2)"]
                                          if "split_cifar10" in checked else []))


def c9(ctx):
    checked, unavailable = _split(ctx, list(N.DATASETS))
    return _combine(_worse_than_gmed(ctx, "er_hindsight_edit", checked), unavailable)


def c10(ctx):
    df = frame(ctx)
    checked, unavailable = _split(ctx, ["rot_mnist", "split_miniimagenet"])
    parts = []
    for d in checked:
        tuned = _mean(plain(df, "er_gmed", d))
        part = df[(df["row"] == "er_gmed") & (df["dataset"] == d) & (df["variant"] != "")
                  & (df["status"] == "ok")]
        zero = float(part["acc"].mean()) if len(part) else float("nan")
        ok = None if math.isnan(tuned) or math.isnan(zero) else tuned > zero
        parts.append((ok, f"{R.DATASET_TITLES[d]}: tuned β {tuned:.2f} vs β = 0 {zero:.2f}"))
    return _combine(parts, unavailable)


def c11(ctx):
    df = frame(ctx)
    checked, unavailable = _split(ctx, ["split_mnist", "rot_mnist", "split_cifar10",
                                        "split_miniimagenet"])
    parts = []
    for d in checked:
        sizes = sorted(df.loc[df["dataset"] == d, "memory"].unique())
        gaps = []
        for size in sizes:
            er, gmed = (_mean(plain(df, row, d, memory=size)) for row in ("er", "er_gmed"))
            gaps.append((size, gmed - er))
        ok = None if any(math.isnan(g) for _, g in gaps) else all(g > 0 for _, g in gaps)
        parts.append((ok, f"{R.DATASET_TITLES[d]}: ER+GMED - ER = " +
                      ", ".join(f"{g:+.2f} at {s}" for s, g in gaps)))
    return _combine(parts, unavailable)


def c12(ctx):
    data = edits(ctx)
    if data is None:
        return Verdict(INCONCLUSIVE, "no edit log from the seed-0 ER+GMED Split MNIST run")
    diff = (data["edited"] - data["original"]).flatten(1).norm(dim=1)
    size = data["original"].flatten(1).norm(dim=1)
    rel = float((diff / size.clamp(min=1e-12)).median())
    return Verdict(NOT_CHECKABLE, f"qualitative (see the figure): the median edit is {100 * rel:.1f}% "
                                  f"of the image's L2 norm over {len(diff)} memory examples")


def c13(ctx):
    result = tsne_of_edits(ctx)
    if result is None:
        return Verdict(INCONCLUSIVE, "no (or too few) edited examples from the seed-0 ER+GMED run")
    _, stats = result
    ok = stats["silhouette"] > 0 and stats["knn_accuracy"] > stats["chance"]
    return Verdict(HOLDS if ok else FAILS,
                   f"edit vectors of {stats['n']} examples: silhouette {stats['silhouette']:.3f} "
                   f"(> 0 required), 5-NN label accuracy {stats['knn_accuracy']:.3f} "
                   f"(> chance {stats['chance']:.2f} required)")


def c14(ctx):
    chosen = selections(ctx)
    if not chosen:
        return Verdict(INCONCLUSIVE, "no tuning runs")
    parts = [f"{R.DATASET_TITLES[d]}: selected α={v['er_gmed']['alpha']}, β={v['er_gmed']['beta']} "
             f"(paper α={TABLE1[d][0]}, β={TABLE1[d][1]})" for d, v in chosen.items() if "er_gmed" in v]
    if ctx.quick:
        return Verdict(NOT_CHECKABLE, "; ".join(parts) + " (quick: a smaller grid on stand-in data)")
    ok = all(tuple(v["er_gmed"][k] for k in ("alpha", "beta")) == TABLE1[d]
             for d, v in chosen.items() if "er_gmed" in v)
    return Verdict(HOLDS if ok else FAILS, "; ".join(parts))
