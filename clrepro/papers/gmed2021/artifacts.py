"""Render functions of the seven GMED artifacts (spec §3)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from clrepro.analysis.collect import mean_sd
from clrepro.analysis.embed import label_structure, tsne
from clrepro.analysis.plots import setup_style
from clrepro.analysis.stats import paired_greater
from clrepro.analysis.tables import fmt, fmt_mean_sd
from clrepro.papers.base import ArtifactContext, Rendered
from clrepro.papers.gmed2021 import numbers as N
from clrepro.papers.gmed2021 import runs as R
from clrepro.papers.gmed2021.protocol import TABLE1, TUNE_GRIDS, dataset_of
from clrepro.tuning import is_tuned

PAIRS = R.PAIRS_OF  # significance: X + GMED vs X
TASK_AWARE = ("gem", "hal")  # they receive task boundaries; everything else is task-free


def frame(ctx: ArtifactContext) -> pd.DataFrame:
    """One row per run: dataset, row label (Table 2 naming), seed, final accuracy in %."""
    df = ctx.runs.df.copy()
    df["dataset"] = [dataset_of(b) for b in df["benchmark"]]
    df["row"] = [("iid_offline" if e > 1 else "iid_online") if m == "iid" else m
                 for m, e in zip(df["method"], df["epochs"])]
    df["acc"] = 100 * df["final_acc_weighted"]
    return df


def plain(df: pd.DataFrame, row: str, dataset: str, **where) -> dict[int, float]:
    """Seed -> final accuracy of the usable default-protocol runs (no variant) of a row."""
    part = df[(df["row"] == row) & (df["dataset"] == dataset) & (df["status"] == "ok")
              & (df["variant"] == "")]
    for key, value in where.items():
        part = part[part[key] == value]
    return dict(zip(part["seed"].astype(int), part["acc"]))


def _shown(mean: float, sd: float, n: int, note: str, stars: str = "") -> str:
    text = fmt_mean_sd(mean, sd, n) + stars if n else "–"
    return f"{text} ({note})" if note else text


def significance(df: pd.DataFrame, treated: str, dataset: str, **where):
    """One-tailed paired t-test of X + GMED against X over the seeds both have."""
    return paired_greater(plain(df, treated, dataset, **where),
                          plain(df, PAIRS[treated], dataset, **where))


# ----------------------------------------------------------------------------- tables

def _paper_stars(paper, row: str, dataset: str) -> str:
    """The paper's significance marks; only Table 2 prints them."""
    if paper is not N.table2:
        return ""
    return N.TABLE2_STARS.get(row, [""] * len(N.DATASETS))[N.DATASETS.index(dataset)]


def _results_table(ctx: ArtifactContext, rows: list[str], paper) -> Rendered:
    df = frame(ctx)
    ds = [d for d in N.DATASETS if d in set(df["dataset"])]
    records, display = [], []
    for row in rows:
        if row not in set(df["row"]):
            continue
        drow = {"method": R.TITLES.get(row, row) + (" †" if row in TASK_AWARE else "")}
        for d in ds:
            values = plain(df, row, d)
            mean, sd, n = mean_sd(pd.Series(list(values.values()), dtype=float))
            bad = df[(df["row"] == row) & (df["dataset"] == d) & (df["status"] != "ok")
                     & (df["variant"] == "")]["status"].value_counts()
            note = ", ".join(f"{c} {s}" for s, c in bad.items())
            test = significance(df, row, d) if row in PAIRS else None
            ref = paper(row, d)
            records.append({
                "method": row, "dataset": d, "mean": mean, "sd": sd, "n": n,
                "p_value": test.p if test else None, "stars": test.stars if test else "",
                "paper_mean": ref[0] if ref else None, "paper_sd": ref[1] if ref else None,
                "paper_stars": _paper_stars(paper, row, d),
                "match": (N.matches(mean, ref) if ref and n and not ctx.quick else None),
                "unusable": note})
            drow[R.dataset_title(d, ctx.scale)] = _shown(mean, sd, n, note, test.stars if test else "")
        display.append(drow)
    paper_rows = []
    for row in rows:  # a user's method (ctx.yours): its name, no number
        prow = {"method": R.TITLES.get(row, row)}
        for d in N.DATASETS:
            ref = paper(row, d)
            prow[R.DATASET_TITLES[d]] = (f"{ref[0]:.2f}{_paper_stars(paper, row, d)} ± {ref[1]}"
                                         if ref else "–")
        paper_rows.append(prow)
    table = pd.DataFrame(records)
    notes = ["Final accuracy (%) over all tasks' test sets, mean ± sd over seeds. * / ** : "
             "one-tailed paired t-test over the same seeds against the method without GMED, "
             "p < 0.05 / p < 1e-3 (p-values in the CSV). † task-aware: GEM and HAL receive the "
             "task boundaries, all other methods are task-free."]
    if not ctx.quick and len(table):
        judged = table["match"].dropna()
        notes.append(f"{int(judged.sum())} of {len(judged)} cells within max(2 sd, 1 point) of the paper.")
    return Rendered(table=table, display=pd.DataFrame(display), paper_table=pd.DataFrame(paper_rows),
                    notes=notes)


def render_table2(ctx: ArtifactContext) -> Rendered:
    return _results_table(ctx, [*R.TABLE2_METHODS, *ctx.yours], N.table2)


def render_table3(ctx: ArtifactContext) -> Rendered:
    return _results_table(ctx, ["er_gmed", "er_random_edit", "er_hindsight_edit"], N.table3)


def tuning_results(ctx: ArtifactContext) -> pd.DataFrame:
    """Mean validation accuracy over the first three tasks after the third, per grid cell."""
    rows = []
    for spec in ctx.runs.records:
        record = ctx.runs.record(spec)
        if record is None or not dict(spec.overrides).get("tune"):
            continue
        last = record["R"][-1]
        rows.append({"dataset": dataset_of(spec.benchmark), "method": spec.method,
                     "alpha": dict(spec.overrides)["gmed.alpha"],
                     "beta": dict(spec.overrides).get("gmed.beta"),
                     "val_acc": 100 * float(np.mean(last))})
    return pd.DataFrame(rows, columns=["dataset", "method", "alpha", "beta", "val_acc"])


def selections(ctx: ArtifactContext) -> dict[str, dict]:
    grid = tuning_results(ctx)
    out = {}
    for (dataset, method), part in grid.groupby(["dataset", "method"]):
        best = part.loc[part["val_acc"].idxmax()]
        out.setdefault(dataset, {})[method] = best.to_dict()
    return out


def render_table1(ctx: ArtifactContext) -> Rendered:
    chosen = selections(ctx)
    rows, display = [], []
    for d in N.DATASETS:
        if d not in chosen:
            continue
        g, r = chosen[d].get("er_gmed", {}), chosen[d].get("er_random_edit", {})
        used = ctx.paper.hyperparams(R.spec(d, "er_gmed", 0, ctx.scale), ctx.options)
        used_r = ctx.paper.hyperparams(R.spec(d, "er_random_edit", 0, ctx.scale), ctx.options)
        if is_tuned(used_r["gmed.alpha"]):  # Table 3 uses the selection of these runs
            used_r["gmed.alpha"] = r.get("alpha")
        paper_alpha, paper_beta = TABLE1[d]
        rows.append({"dataset": d, "selected_alpha": g.get("alpha"), "selected_beta": g.get("beta"),
                     "best_val_acc": g.get("val_acc"), "paper_alpha": paper_alpha,
                     "paper_beta": paper_beta, "used_alpha": used["gmed.alpha"],
                     "used_beta": used["gmed.beta"], "random_edit_selected_alpha": r.get("alpha"),
                     "random_edit_used_alpha": used_r["gmed.alpha"]})
        display.append({"dataset": R.dataset_title(d, ctx.scale),
                        "tuned α / β": f"{g['alpha']} / {g['beta']}" if g else "– (not tuned here)",
                        "val. acc (%)": fmt(g.get("val_acc", float("nan"))),
                        "paper α / β": f"{paper_alpha} / {paper_beta}",
                        "used α / β": f"{used['gmed.alpha']} / {used['gmed.beta']}",
                        "Random Edit α_r tuned / used": f"{r.get('alpha')} / {used_r['gmed.alpha']}"})
    grid = tuning_results(ctx)
    alphas, betas = TUNE_GRIDS["paper" if not ctx.quick else "quick"]
    notes = [f"Grid: α ∈ {alphas}, β ∈ {betas}; ER+GMED trained on the first three tasks (up to "
             f"3 passes each, early stopping on validation accuracy), one seed per cell; the cell "
             f"with the best mean validation accuracy after the third task is selected. The "
             f"Table 2 runs use the paper's values ('used'), not the selection, so that they "
             f"follow the published protocol; set options.gmed2021.gmed.alpha/beta to use yours. "
             f"Random Edit's stride α_r has no published value: its Table 3 runs use the "
             f"selected one (§4.5).",
             f"{len(grid)} tuning runs read."]
    return Rendered(table=pd.concat([pd.DataFrame(rows), grid.assign(kind="grid")], ignore_index=True)
                    if len(grid) else pd.DataFrame(rows), display=pd.DataFrame(display),
                    paper_table=pd.DataFrame([{"dataset": R.DATASET_TITLES[d], "α": a, "β": b}
                                              for d, (a, b) in TABLE1.items()]), notes=notes)


# ----------------------------------------------------------------------------- figures

def render_fig3(ctx: ArtifactContext) -> Rendered:
    setup_style()
    df = frame(ctx)
    df = df[df["row"] == "er_gmed"]
    df["β"] = np.where(df["variant"] == "", "tuned β", "β = 0")
    ok = df[df["status"] == "ok"].copy()
    ok["dataset"] = [R.dataset_title(d, ctx.scale) for d in ok["dataset"]]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    if len(ok):
        sns.barplot(data=ok, x="dataset", y="acc", hue="β", hue_order=["β = 0", "tuned β"],
                    errorbar="sd", ax=ax, palette=["#bbbbbb", "#2a7ab0"])
        low = ok["acc"].min()
        ax.set_ylim(max(0, low - 10), min(100, ok["acc"].max() + 5))
    ax.set_ylabel("final accuracy (%)")
    ax.set_xlabel("")
    ax.set_title("ER+GMED with and without the regulariser (GMED Fig. 3)")
    table = (df.groupby(["dataset", "β"], as_index=False)["acc"].agg(["mean", "std", "count"]))
    return Rendered(table=table, figure=fig)


def render_fig4(ctx: ArtifactContext) -> Rendered:
    setup_style()
    df = frame(ctx)
    df = df[df["row"].isin(["er", "er_gmed", *ctx.yours]) & (df["variant"] == "")]
    ok = df[df["status"] == "ok"].copy()
    ok["method"] = [R.TITLES.get(r, r) for r in ok["row"]]
    hue = ["ER", "ER + GMED", *ctx.yours]
    palette = dict(zip(hue, ["#777777", "#2a7ab0", *sns.color_palette("colorblind", 8)[1:]]))
    ds = [d for d in N.DATASETS if d in set(df["dataset"])]
    fig, axes = plt.subplots(1, max(len(ds), 1), figsize=(4.2 * max(len(ds), 1), 3.5), squeeze=False)
    for ax, d in zip(axes[0], ds):
        part = ok[ok["dataset"] == d]
        slots = part[part["memory"] > 0]
        if len(slots):
            sns.lineplot(data=slots, x="memory", y="acc", hue="method",
                         hue_order=[h for h in hue if h in set(slots["method"])],
                         marker="o", errorbar="sd", ax=ax, palette=palette)
        for name in ctx.yours:  # a user's method that keeps no memory: one level, dashed
            flat = part[(part["row"] == name) & (part["memory"] == 0)]
            if len(flat):
                ax.axhline(flat["acc"].mean(), ls="--", lw=1.4, color=palette[name], label=name)
        if ctx.yours and len(part):
            ax.legend()
        ax.set_xscale("log")
        sizes = sorted(slots["memory"].unique())
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
        ax.set_title(R.dataset_title(d, ctx.scale))
        ax.set_xlabel("memory size")
        ax.set_ylabel("final accuracy (%)" if ax is axes[0][0] else "")
    fig.suptitle("ER vs ER+GMED across memory sizes (GMED Fig. 4)", y=1.03)
    table = df.groupby(["dataset", "row", "memory"], as_index=False)["acc"].agg(["mean", "std", "count"])
    notes = [f"{name}: keeps no memory, drawn as a dashed level (memory 0 in the data)."
             for name in ctx.yours if (ok.loc[ok["row"] == name, "memory"] == 0).any()]
    return Rendered(table=table, figure=fig, notes=notes)


def edits(ctx: ArtifactContext) -> dict[str, torch.Tensor] | None:
    """The memory of the seed-0 ER+GMED Split MNIST run: original vs edited examples of the
    first two tasks' classes."""
    spec = min((s for s in ctx.runs.records if s.method == "er_gmed"), key=lambda s: s.seed,
               default=None)
    if spec is None or ctx.runs.record(spec) is None:
        return None
    path = ctx.runs.artifacts_path(spec)
    if not path.is_file():
        return None
    data = torch.load(path, weights_only=True)
    if not data:
        return None
    classes = ctx.runs.record(spec)["benchmark"]["tasks"]
    first_two = torch.tensor(classes[0]["classes"] + classes[1]["classes"])
    keep = torch.isin(data["label"], first_two)
    return {k: v[keep] for k, v in data.items()}


def render_fig5(ctx: ArtifactContext) -> Rendered:
    setup_style()
    data = edits(ctx)
    if data is None:
        fig = plt.figure(figsize=(6, 1))
        fig.text(0.5, 0.5, "no edit log (the seed-0 ER+GMED run is missing or failed)", ha="center")
        return Rendered(table=pd.DataFrame(), figure=fig)
    labels = sorted(set(data["label"].tolist()))
    diff = data["edited"] - data["original"]
    edited = diff.flatten(1).norm(dim=1) > 0  # show examples that were edited
    picks = [int(i) for c in labels
             for i in torch.nonzero((data["label"] == c) & edited).flatten()[:3]][:12]
    if not picks:
        picks = list(range(min(12, len(diff))))
    fig, axes = plt.subplots(3, len(picks), figsize=(1.05 * len(picks), 3.4), squeeze=False)
    bound = float(diff[picks].abs().max()) or 1.0
    for col, i in enumerate(picks):
        for row, (img, cmap, lim) in enumerate(((data["original"][i], "gray", (0, 1)),
                                                (data["edited"][i], "gray", (0, 1)),
                                                (diff[i], "RdBu_r", (-bound, bound)))):
            ax = axes[row][col]
            ax.imshow(img.reshape(img.shape[-2], img.shape[-1]), cmap=cmap, vmin=lim[0], vmax=lim[1])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"{col + 1} (y={int(data['label'][i])})", fontsize=7)
        for row, name in enumerate(("x before", "x after", "Δx")):
            axes[row][0].set_ylabel(name, fontsize=8)
    fig.suptitle("Edited memory examples of the first two tasks (GMED Fig. 5)", y=1.02)
    table = pd.DataFrame({"example": range(1, len(picks) + 1), "slot": picks,
                          "label": [int(data["label"][i]) for i in picks],
                          "l2_edit": [float(diff[i].norm()) for i in picks],
                          "l2_image": [float(data["original"][i].norm()) for i in picks]})
    return Rendered(table=table, figure=fig)


def tsne_of_edits(ctx: ArtifactContext) -> tuple[pd.DataFrame, dict[str, float]] | None:
    data = edits(ctx)
    if data is None:
        return None
    delta = (data["edited"] - data["original"]).flatten(1)
    moved = delta.norm(dim=1) > 0  # examples that were edited at least once
    vectors, labels = delta[moved].numpy(), data["label"][moved].numpy()
    if len(labels) < 6:
        return None
    coords = tsne(vectors)
    stats = label_structure(vectors, labels)
    return pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "label": labels}), stats


def render_fig6(ctx: ArtifactContext) -> Rendered:
    setup_style()
    result = tsne_of_edits(ctx)
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    if result is None:
        ax.text(0.5, 0.5, "not enough edited examples", ha="center", transform=ax.transAxes)
        return Rendered(table=pd.DataFrame(), figure=fig)
    points, stats = result
    sns.scatterplot(data=points, x="x", y="y", hue="label", palette="colorblind", s=18, ax=ax,
                    edgecolor="none")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_title(f"t-SNE of edit vectors Δx (GMED Fig. 6)\nsilhouette {stats['silhouette']:.2f}, "
                 f"5-NN accuracy {stats['knn_accuracy']:.2f} (chance {stats['chance']:.2f})",
                 fontsize=9)
    per_label = points.groupby("label").size().rename("edited examples").reset_index()
    summary = per_label.assign(**{k: round(v, 3) for k, v in stats.items()})
    return Rendered(table=points.assign(**stats), figure=fig, display=summary)
