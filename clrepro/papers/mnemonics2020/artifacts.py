"""Render functions of the Mnemonics artifacts (spec §3): Tables 1-2 (average incremental
accuracy and forgetting), Fig. 4 (phase-wise accuracy with 95 % CI ribbons and the joint
upper bound) and Figs. 1 / 5 (t-SNE of exemplars among their class's real images)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from clrepro import metrics
from clrepro.analysis.collect import mean_sd
from clrepro.analysis.embed import tsne
from clrepro.analysis.plots import setup_style
from clrepro.analysis.tables import fmt_mean_sd
from clrepro.papers.base import ArtifactContext, Rendered
from clrepro.papers.mnemonics2020 import numbers as N
from clrepro.papers.mnemonics2020 import protocol as P
from clrepro.papers.mnemonics2020 import runs as R
from clrepro.spec import RunSpec

# why LwF sits below independent implementations that use the common CE + KD form
LWF_NOTE = ("LwF rows minimise the paper's Eq. 5, L = λ·L_c + (1 − λ)·L_d with λ = "
            f"{P.KD_LAMBDA} (soft targets at τ = {P.KD_TAU}), i.e. 0.5·CE + 0.5·KD; FACIL's LwF "
            "(github mmasana/FACIL, an independent implementation) minimises CE + 1·KD. The ratio of "
            "the two terms is the same, but the paper's form halves their gradient against an "
            "unchanged weight decay (half the effective learning rate), so LwF can score below "
            "FACIL's on identical data. (Option kd.form: code is the Mnemonics code's form, spec D7.)")
QUICK_NOTE = ("Quick stand-in (spec §6, shrunk to fit the quick budget): Fashion-MNIST at 14x14 "
              "with 250 training images per class, 5 base classes then 5 phases of one class, "
              f"ResNet-32 with one block per stage, {P.EPOCHS['fmnist']} epochs per phase, "
              f"mnemonics with {P.MNEMONICS['quick'][0]} outer epochs of "
              f"{P.MNEMONICS['quick'][1]} inner steps. Values are not comparable with the paper's.")


def frame(ctx: ArtifactContext) -> pd.DataFrame:
    """One row per run: dataset, N, row (Table 1 row / Table 2 variant / joint_cil), seed,
    status, Ā and F in %, the phase accuracies A_i and, for the upper bound, its class count."""
    rows = []
    for entry in ctx.runs.df.itertuples():
        spec = RunSpec.from_path(entry.path)
        dataset, n = R.setting_of(spec)
        row = {"dataset": dataset, "n": n, "row": R.row_of(spec), "seed": spec.seed,
               "status": entry.status, "merge": dict(spec.overrides).get("phases.merge")}
        record = ctx.runs.record(spec)
        if record is not None:
            r = np.array(record["R"], dtype=float)
            sizes = record["test_sizes"]
            if spec.method == "joint_cil":
                row["upper"] = 100 * r[-1, 0]
                merged = record["benchmark"]["tasks"][:row["merge"]]  # the first k phases
                row["classes"] = sum(len(t["classes"]) for t in merged)
            else:
                row["acc"] = 100 * metrics.average_incremental_accuracy(r, sizes)
                row["forgetting"] = 100 * metrics.forgetting_rate(r)
                row["phase_accs"] = [100 * a for a in metrics.incremental_accuracies(r, sizes)]
                bounds = np.cumsum([len(t["classes"]) for t in record["benchmark"]["tasks"]])
                row["classes_seen"] = bounds.tolist()
            row.update(movement(record))
        rows.append(row)
    return pd.DataFrame(rows)


def movement(record: dict) -> dict:
    """Evidence that a run's exemplar optimisation happened (spec §4.5, amended): over its
    phases and exemplar sets, the largest mean |dE| (grey levels), the largest relative fall
    of the bilevel objective, and whether any set was flagged as not moved."""
    log = (record.get("details") or {}).get("exemplar_optimisation") or []
    if not log:
        return {}
    return {"moved_grey": max(e["moved_grey_levels"] for e in log),
            "objective_fell": max(e["objective_fell_rel"] for e in log),
            "optimised_sets": len(log), "flagged_sets": sum(e["not_moved"] for e in log),
            "not_moved": any(e["not_moved"] for e in log)}


def not_moved(df: pd.DataFrame, row: str, dataset: str, n: int) -> bool:
    """Some run of the row (setting, any seed) optimised exemplars that did not move."""
    if "not_moved" not in df:
        return False
    part = df[(df["row"] == row) & (df["dataset"] == dataset) & (df["n"] == n) & (df["status"] == "ok")]
    return bool(part["not_moved"].fillna(False).astype(bool).any())


def movement_notes(df: pd.DataFrame, rows) -> list[str]:
    """Per optimised row: movement and objective change, and the flag."""
    if "optimised_sets" not in df:
        return []
    out = []
    for row in rows:
        part = df[(df["row"] == R.run_row(row)) & (df["status"] == "ok") & df["optimised_sets"].notna()]
        for r in part.itertuples():
            out.append(f"{R.TITLES[row]} ({R.DATASET_TITLES[r.dataset]} N={r.n}, seed {r.seed}): "
                       f"{int(r.optimised_sets)} optimised exemplar sets, largest mean |ΔE| "
                       f"{r.moved_grey:.3g} grey levels, largest fall of the bilevel objective "
                       f"{100 * r.objective_fell:.3g} %; {int(r.flagged_sets)} flagged as not moved")
    if not out:
        return []
    return ["Exemplar optimisation (spec §4.5, amended; per phase and set in each run's record "
            "under details.exemplar_optimisation): a set is flagged when its exemplars moved by "
            "less than one grey level (1/255) on average and the bilevel objective (validation "
            "loss of the temporary model trained on them) fell by less than 1 %; claims comparing "
            "them with random or herding exemplars are not checkable on flagged runs. "
            + "; ".join(out) + "."]


def values(df: pd.DataFrame, row: str, dataset: str, n: int, metric: str = "acc") -> dict[int, float]:
    part = df[(df["row"] == row) & (df["dataset"] == dataset) & (df["n"] == n) & (df["status"] == "ok")]
    if metric not in part:
        return {}
    return {int(s): float(v) for s, v in zip(part["seed"], part[metric]) if v == v}


def _shown(df, row, d, n, metric) -> str:
    row = R.run_row(row)
    mean, sd, k = mean_sd(pd.Series(list(values(df, row, d, n, metric).values()), dtype=float))
    bad = df[(df["row"] == row) & (df["dataset"] == d) & (df["n"] == n) & (df["status"] != "ok")]
    note = ", ".join(f"{c} {s}" for s, c in bad["status"].value_counts().items())
    text = fmt_mean_sd(mean, sd, k) if k else "–"
    return f"{text} ({note})" if note else text


def _table(ctx: ArtifactContext, rows, paper_acc, paper_f, settings) -> Rendered:
    df = frame(ctx)
    present = [(d, n) for d, n in settings
               if len(df) and ((df["dataset"] == d) & (df["n"] == n)
                               & df["row"].isin([R.run_row(r) for r in rows])).any()]
    records, display, paper = [], [], []
    for metric, table, label in (("acc", paper_acc, "Ā"), ("forgetting", paper_f, "F")):
        for row in rows:
            shown = {"metric": label, "method": R.TITLES.get(row, row)}
            pshown = dict(shown)
            for d, n in present:
                col = f"{R.DATASET_TITLES[d]}{'' if ctx.scale == 'full' else ' (stand-in)'} N={n}"
                shown[col] = _shown(df, row, d, n, metric)
                ref = N.cell(table, row if row in table else _paper_row(row), (d, n))
                pshown[col] = f"{ref:.2f}" if ref is not None else "–"
                mean, sd, k = mean_sd(pd.Series(list(values(df, R.run_row(row), d, n, metric).values()),
                                                dtype=float))
                records.append({"metric": metric, "row": row, "dataset": d, "n": n, "mean": mean,
                                "sd": sd, "runs": k, "paper": ref})
            display.append(shown)
            paper.append(pshown)
    notes = ["Ā: average over phases 0..N of the accuracy on all classes seen so far (%); F: "
             "accuracy on the phase-0 classes after phase 0 minus after the last phase (%, "
             "lower is better; spec D4). Mean ± sd over seeds."]
    if ctx.quick:
        notes.append(QUICK_NOTE)
    return Rendered(pd.DataFrame(records), display=pd.DataFrame(display),
                    paper_table=pd.DataFrame(paper), notes=notes)


def _paper_row(row: str) -> str:
    return {"lwf_cil": "lwf", "icarl_cil": "icarl", "lwf_cil_ours": "lwf_ours",
            "icarl_cil_ours": "icarl_ours"}.get(row, row)


def render_table1(ctx: ArtifactContext) -> Rendered:
    rendered = _table(ctx, [*R.ROWS, *ctx.yours], N.TABLE1_ACC, N.TABLE1_F, N.SETTINGS)
    rendered.notes.insert(1, LWF_NOTE)
    return rendered


def render_table2(ctx: ArtifactContext) -> Rendered:
    rendered = _table(ctx, R.TABLE2_ROWS, N.TABLE2_ACC, N.TABLE2_F, N.TABLE2_SETTINGS)
    rendered.notes.insert(1, "Every row is LUCIR with weight transfer and balanced fine-tuning; "
                             "'w/o adj.' keeps the old exemplars fixed, the others adjust them "
                             "with the A/B halves of §4.5.")
    rendered.notes += movement_notes(frame(ctx), R.TABLE2_ROWS)
    return rendered


# ----------------------------------------------------------------------------- Fig. 4

CURVES = ("lwf_cil", "icarl_cil", "bic", "lucir", "lucir_ours")


def curves(ctx: ArtifactContext) -> pd.DataFrame:
    """Per phase: classes seen, mean accuracy, its 95 % CI half-width (1.96 sd / sqrt n)."""
    df = frame(ctx)
    rows = []
    if not len(df):
        return pd.DataFrame(columns=["dataset", "n", "row", "classes", "mean", "ci", "runs"])
    for (d, n, row), part in df[df["row"].isin([*CURVES, *ctx.yours]) & (df["status"] == "ok")].groupby(
            ["dataset", "n", "row"]):
        accs = np.array(part["phase_accs"].tolist())
        for i, classes in enumerate(part["classes_seen"].iloc[0]):
            k = accs.shape[0]
            sd = accs[:, i].std(ddof=1) if k > 1 else float("nan")
            rows.append({"dataset": d, "n": n, "row": row, "classes": classes,
                         "mean": accs[:, i].mean(), "ci": 1.96 * sd / math.sqrt(k) if k > 1 else 0.0,
                         "runs": k})
    upper = df[(df["row"] == "joint_cil") & (df["status"] == "ok")]
    for (d, classes), part in upper.groupby(["dataset", "classes"]):
        k = len(part)
        sd = part["upper"].std(ddof=1) if k > 1 else float("nan")
        for n in sorted(set(df.loc[df["dataset"] == d, "n"])):
            rows.append({"dataset": d, "n": n, "row": "joint_cil", "classes": classes,
                         "mean": part["upper"].mean(), "ci": 1.96 * sd / math.sqrt(k) if k > 1 else 0.0,
                         "runs": k})
    return pd.DataFrame(rows)


def render_fig4(ctx: ArtifactContext) -> Rendered:
    setup_style()
    table = curves(ctx)
    panels = sorted({(d, n) for d, n in zip(table["dataset"], table["n"])}) if len(table) else []
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.3 * max(len(panels), 1), 3.6),
                             squeeze=False)
    lines = (*CURVES, *ctx.yours)  # a user's method: one more line, named by its config key
    palette = dict(zip((*lines, "joint_cil"), sns.color_palette("colorblind", len(lines) + 1)))
    for ax, (d, n) in zip(axes[0], panels):
        part = table[(table["dataset"] == d) & (table["n"] == n)]
        for row in ("joint_cil", *lines):
            c = part[part["row"] == row].sort_values("classes")
            if c.empty:
                continue
            label = "Ours (LUCIR w/ ours)" if row == "lucir_ours" else R.TITLES.get(row, row)
            ax.plot(c["classes"], c["mean"], marker="o", ms=3, lw=1.6, color=palette[row],
                    label=label, ls="--" if row == "joint_cil" else "-")
            ax.fill_between(c["classes"], c["mean"] - c["ci"], c["mean"] + c["ci"],
                            color=palette[row], alpha=0.18, lw=0)
        ax.set_title(f"{R.DATASET_TITLES[d]}{'' if ctx.scale == 'full' else ' (stand-in)'}, N={n}",
                     fontsize=9)
        ax.set_xlabel("number of classes")
        ax.set_ylabel("accuracy (%)" if ax is axes[0][0] else "")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(handles), bbox_to_anchor=(0.5, -0.12))
    fig.suptitle("Phase-wise accuracy with 95 % CI ribbons (Mnemonics Fig. 4)", y=1.03)
    notes = ["Upper bound: a network trained jointly on all data of the classes seen so far, "
             "one run per class count. Ribbons: mean ± 1.96 sd / sqrt(runs) over seeds; none "
             "where one seed ran."]
    check = []
    df = frame(ctx)
    for (d, n, row), part in table[table["row"].isin(lines)].groupby(["dataset", "n", "row"]):
        acc = float(np.mean(list(values(df, row, d, n).values()) or [np.nan]))
        check.append(f"{R.TITLES.get(row, row)} {d} N={n}: curve mean {part['mean'].mean():.2f} vs Ā {acc:.2f}")
    notes.append("Consistency (the curve's mean is Table 1's Ā): " + "; ".join(check))
    if ctx.quick:
        notes.append(QUICK_NOTE)
    display = table.assign(curve=[R.TITLES.get(r, r) for r in table["row"]]).round(2) if len(table) else table
    return Rendered(table=table, figure=fig, display=display, notes=notes)


# ----------------------------------------------------------------------------- Figs. 1, 5

def exemplar_features(ctx: ArtifactContext) -> dict[tuple[str, int], dict[str, torch.Tensor]]:
    """(row, phase) -> {"exemplars"/"real": features, "exemplar_labels"/"real_labels"} from
    the logged runs (first seed, N = 5)."""
    out: dict[tuple[str, int], dict[str, list]] = {}
    for spec in ctx.runs.records:
        record = ctx.runs.record(spec)
        path = ctx.runs.artifacts_path(spec)
        if record is None or not path.is_file() or spec.method == "joint_cil":
            continue
        data = torch.load(path, weights_only=True)
        for key, value in data.items():
            phase, cls, kind = key.split("/")
            entry = out.setdefault((R.row_of(spec), int(phase[1:])), {})
            entry.setdefault(kind, []).append(value)
            entry.setdefault(f"{kind}_labels", []).append(torch.full((len(value),), int(cls[1:])))
    return {k: {kind: torch.cat(v) for kind, v in entry.items()} for k, entry in out.items()}


def placement(entry: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Per class: mean distance of its exemplars to the class's mean real feature, relative
    to the real images' own mean distance (< 1: nearer the centre than a typical image), and
    the share of exemplars whose 5 nearest real images are mostly of their class."""
    real, real_y = entry["real"], entry["real_labels"]
    ex, ex_y = entry["exemplars"], entry["exemplars_labels"]
    rows = []
    for c in sorted(set(ex_y.tolist())):
        centre = real[real_y == c].mean(0)
        spread = (real[real_y == c] - centre).norm(dim=1).mean()
        d = (ex[ex_y == c] - centre).norm(dim=1).mean() / spread.clamp(min=1e-12)
        nearest = torch.cdist(ex[ex_y == c], real).topk(min(5, len(real)), largest=False).indices
        agree = (real_y[nearest] == c).float().mean(1) > 0.5
        rows.append({"class": c, "relative_distance": float(d), "knn_agreement": float(agree.float().mean())})
    return pd.DataFrame(rows)


def _tsne_panels(ctx: ArtifactContext, rows_phases: list[tuple[str, int]], title: str, max_classes: int):
    setup_style()
    data = exemplar_features(ctx)
    panels = [(r, p) for r, p in rows_phases if (r, p) in data]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(3.4 * max(len(panels), 1), 3.4),
                             squeeze=False)
    table = []
    for ax, (row, phase) in zip(axes[0], panels):
        entry = data[(row, phase)]
        classes = sorted(set(entry["exemplars_labels"].tolist()))[:max_classes]
        keep_r = torch.isin(entry["real_labels"], torch.tensor(classes))
        keep_e = torch.isin(entry["exemplars_labels"], torch.tensor(classes))
        vecs = torch.cat([entry["real"][keep_r], entry["exemplars"][keep_e]]).numpy()
        coords = tsne(vecs) if len(vecs) > 5 else np.zeros((len(vecs), 2))
        n_real = int(keep_r.sum())
        colours = sns.color_palette("colorblind", len(classes))
        for i, c in enumerate(classes):
            r_mask = entry["real_labels"][keep_r].numpy() == c
            e_mask = entry["exemplars_labels"][keep_e].numpy() == c
            ax.scatter(*coords[:n_real][r_mask].T, s=6, color=colours[i], alpha=0.25, lw=0)
            ax.scatter(*coords[n_real:][e_mask].T, s=16, color=colours[i], edgecolor="black", lw=0.4)
        stats = placement(entry)
        ax.set_title(f"{R.TITLES.get(row, row)}, phase {phase}\nrel. distance "
                     f"{stats['relative_distance'].mean():.2f}, 5-NN agreement "
                     f"{stats['knn_agreement'].mean():.2f}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        table.append(stats.assign(row=row, phase=phase))
    fig.suptitle(title, y=1.04)
    out = pd.concat(table, ignore_index=True) if table else pd.DataFrame()
    notes = ["Light points: real images of a class; dark points: its exemplars (features of the "
             "network of that phase). Relative distance: exemplars' mean distance to the class's "
             "mean real feature divided by the real images' own mean distance (< 1: nearer the "
             "centre than a typical image); 5-NN agreement: share of exemplars whose 5 nearest "
             "real images are mostly of their own class."]
    if ctx.quick:
        notes.append(QUICK_NOTE)
    return Rendered(table=out, figure=fig, notes=notes,
                    display=out.groupby(["row", "phase"], as_index=False)[
                        ["relative_distance", "knn_agreement"]].mean().round(3) if len(out) else out)


def render_fig1(ctx: ArtifactContext) -> Rendered:
    last = max((p for _, p in exemplar_features(ctx)), default=0)
    return _tsne_panels(ctx, [(r, p) for p in (0, last) for r in ("random", "herding", "lucir_ours")],
                        "Random, herding and mnemonics exemplars in feature space (Mnemonics Fig. 1)",
                        max_classes=5)


def render_fig5(ctx: ArtifactContext) -> Rendered:
    return _tsne_panels(ctx, [(r, p) for r in ("lucir", "lucir_ours") for p in (0, 2, 4)],
                        "Herding (LUCIR) vs mnemonics (LUCIR w/ ours) exemplars, phases 0, 2, 4 "
                        "(Mnemonics Fig. 5)", max_classes=7)
