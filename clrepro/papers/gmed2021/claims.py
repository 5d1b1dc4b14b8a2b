"""GMED claims C1-C14 (spec §2), decided by the verdict engine from per-seed values. Where a
scale lacks a dataset (quick mode has only the MNIST stand-ins) that part of a claim is
listed as not checkable at this scale."""

from __future__ import annotations

from clrepro.analysis import verdicts as V
from clrepro.papers.base import INCONCLUSIVE, NOT_CHECKABLE, ArtifactContext, Verdict
from clrepro.papers.gmed2021 import numbers as N
from clrepro.papers.gmed2021 import runs as R
from clrepro.papers.gmed2021.artifacts import edits, frame, plain, selections, tsne_of_edits
from clrepro.papers.gmed2021.protocol import TABLE1

LEVELS = {"**": 1e-3, "*": 0.05}


def _present(ctx: ArtifactContext, datasets) -> tuple[list[str], list[V.Evidence]]:
    """The datasets this scale runs, and a not-checkable part for each one it does not."""
    have = set(frame(ctx)["dataset"])
    return ([d for d in datasets if d in have],
            [V.not_checkable(R.DATASET_TITLES[d], "not run at this scale")
             for d in datasets if d not in have])


def _significant(ctx: ArtifactContext, treated: str, expected: dict[str, str | None]) -> Verdict:
    """expected: dataset -> '*' / '**' (the paper's significance level) or None (the paper
    finds no significant improvement). The paper's own test: one-tailed paired t-test."""
    df = frame(ctx)
    checked, parts = _present(ctx, expected)
    control = R.PAIRS_OF[treated]
    for d in checked:
        what = f"{R.DATASET_TITLES[d]}: {R.TITLES[treated]} > {R.TITLES[control]}"
        a, b = plain(df, treated, d), plain(df, control, d)
        level = expected[d]
        parts.append(V.paired(a, b, what, level=LEVELS[level]) if level else
                     V.not_significant(a, b, what + " (not significant)"))
    return V.combine(parts)


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


GAINS = {("er_gmed", "split_mnist"): 1.72, ("er_gmed", "split_cifar10"): 1.67,
         ("er_gmed", "split_miniimagenet"): 1.79, ("er_gmed", "rot_mnist"): 0.94,
         ("mir_gmed", "split_mnist"): 2.98, ("mir_gmed", "split_cifar10"): 1.07,
         ("mir_gmed", "split_miniimagenet"): 1.28}


def c5(ctx):
    if ctx.quick:
        return V.combine([V.not_checkable("absolute gains", "compared at full scale only (quick "
                                                            "uses stand-in data)")])
    df = frame(ctx)
    parts = []
    for (treated, d), paper in GAINS.items():
        a, b = plain(df, treated, d), plain(df, R.PAIRS_OF[treated], d)
        seeds = sorted(set(a) & set(b))
        gain = (sum(a[s] - b[s] for s in seeds) / len(seeds)) if seeds else float("nan")
        parts.append(V.match(gain, paper, "mean_sd",
                             f"{R.TITLES[treated]} gain on {R.DATASET_TITLES[d]}", paper_sd=0.0))
    return V.combine(parts, summary="a gain is a difference of two means; it matches within "
                                    "1 point (§1.4 with no printed sd)")


def _best(ctx, datasets_rows: dict[str, str], exclude: tuple[str, ...]) -> Verdict:
    df = frame(ctx)
    checked, parts = _present(ctx, datasets_rows)
    for d in checked:
        rows = sorted(r for r in set(df.loc[df["dataset"] == d, "row"]) if r not in exclude)
        entries = {R.TITLES.get(r, r): plain(df, r, d) for r in rows}  # a new row: its name
        target = R.TITLES[datasets_rows[d]]
        if target not in entries:
            parts.append(V.Evidence(f"{R.DATASET_TITLES[d]}: {target}", "best", INCONCLUSIVE,
                                    note="not run"))
            continue
        parts += V.best(target, entries, R.DATASET_TITLES[d])
    return V.combine(parts)


def c6(ctx):
    rows = {d: "mir_gmed" for d in ("split_mnist", "perm_mnist", "rot_mnist", "split_cifar10")}
    return _best(ctx, {**rows, "split_miniimagenet": "er_gmed"}, ("iid_online", "iid_offline"))


def c7(ctx):
    return _best(ctx, {d: "iid_offline" for d in N.DATASETS}, ())


def _worse_than_gmed(ctx, ablation: str) -> Verdict:
    df = frame(ctx)
    checked, parts = _present(ctx, N.DATASETS)
    parts += [V.paired(plain(df, "er_gmed", d), plain(df, ablation, d),
                       f"{R.DATASET_TITLES[d]}: ER+GMED > {R.TITLES[ablation]}") for d in checked]
    return V.combine(parts)


def c8(ctx):
    return _worse_than_gmed(ctx, "er_random_edit")


def c9(ctx):
    return _worse_than_gmed(ctx, "er_hindsight_edit")


def c10(ctx):
    df = frame(ctx)
    checked, parts = _present(ctx, ["rot_mnist", "split_miniimagenet"])
    for d in checked:
        zero = df[(df["row"] == "er_gmed") & (df["dataset"] == d) & (df["variant"] != "")
                  & (df["status"] == "ok")]
        parts.append(V.paired(plain(df, "er_gmed", d), dict(zip(zero["seed"].astype(int), zero["acc"])),
                              f"{R.DATASET_TITLES[d]}: tuned β > β = 0"))
    return V.combine(parts)


def c11(ctx):
    df = frame(ctx)
    checked, parts = _present(ctx, ["split_mnist", "rot_mnist", "split_cifar10", "split_miniimagenet"])
    for d in checked:
        for size in sorted(df.loc[df["dataset"] == d, "memory"].unique()):
            parts.append(V.paired(plain(df, "er_gmed", d, memory=size), plain(df, "er", d, memory=size),
                                  f"{R.DATASET_TITLES[d]}, memory {size}: ER+GMED > ER"))
    return V.combine(parts)


def c12(ctx):
    data = edits(ctx)
    if data is None:
        return V.inconclusive("edit log", "no edit log from the seed-0 ER+GMED Split MNIST run")
    diff = (data["edited"] - data["original"]).flatten(1).norm(dim=1)
    size = data["original"].flatten(1).norm(dim=1)
    rel = float((diff / size.clamp(min=1e-12)).median())
    return Verdict(NOT_CHECKABLE, f"qualitative (see the figure): the median edit is {100 * rel:.1f}% "
                                  f"of the image's L2 norm over {len(diff)} memory examples",
                   rule="qualitative")


def c13(ctx):
    result = tsne_of_edits(ctx)
    if result is None:
        return V.inconclusive("edit vectors", "no (or too few) edited examples from the seed-0 "
                                              "ER+GMED run")
    _, s = result
    hits = round(s["knn_accuracy"] * s["n"])
    return V.combine([V.above_chance(hits, s["n"], s["chance"], "5-NN label agreement of the "
                                                                "edit vectors")],
                     summary=f"silhouette {s['silhouette']:.3f} (one seed-0 run; the test is over "
                             f"its {s['n']} edited memory examples)")


def c14(ctx):
    chosen = selections(ctx)
    if not chosen:
        return V.inconclusive("tuning", "no tuning runs")
    parts = []
    for d, v in chosen.items():
        if "er_gmed" not in v:
            continue
        ours = (v["er_gmed"]["alpha"], v["er_gmed"]["beta"])
        what = f"{R.DATASET_TITLES[d]}: selected (α, β)"
        parts.append(V.not_checkable(what, f"{ours} vs paper {TABLE1[d]}; quick uses a smaller grid "
                                           f"on stand-in data") if ctx.quick else
                     V.exact(ours, TABLE1[d], what))
    return V.combine(parts)
