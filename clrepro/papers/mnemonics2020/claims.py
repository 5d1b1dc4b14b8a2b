"""Mnemonics claims C1-C11 (spec §2), decided by the verdict engine from per-seed values.

The quick stand-in runs one setting (Fashion-MNIST for CIFAR-100, N = 5); claims about other
datasets, other N or the paper's values list those parts as not checkable at this scale.
"""

from __future__ import annotations

from clrepro.analysis import verdicts as V
from clrepro.papers.base import ArtifactContext
from clrepro.papers.mnemonics2020 import numbers as N
from clrepro.papers.mnemonics2020 import runs as R
from clrepro.papers.mnemonics2020.artifacts import (exemplar_features, frame, not_moved, placement,
                                                    values)

BASES = ("lwf_cil", "icarl_cil", "bic", "lucir")


def _setting(d: str, n: int) -> str:
    return f"{R.DATASET_TITLES[d]} N={n}"


def _present(ctx: ArtifactContext, settings, rows) -> tuple:
    df = frame(ctx)
    have = [(d, n) for d, n in settings
            if len(df) and ((df["dataset"] == d) & (df["n"] == n) & df["row"].isin(rows)).any()]
    skipped = [V.not_checkable(_setting(d, n), "not run at this scale") for d, n in settings
               if (d, n) not in have]
    return df, have, skipped


def _ours_unmoved(df, d, n, ours: str = "lucir_ours") -> list:
    """A comparison of a 'w/ ours' row is about optimised exemplars: where they did not move
    it compares unoptimised ones, so it is not checkable (as in C8-C11)."""
    if not not_moved(df, ours, d, n):
        return []
    return [V.not_checkable(f"{_setting(d, n)}: {R.TITLES[ours]}", NOT_MOVED)]


def c1(ctx):
    df, have, parts = _present(ctx, N.SETTINGS, R.ROWS)
    for d, n in have:
        if unmoved := _ours_unmoved(df, d, n):
            parts += unmoved
            continue
        parts += V.best("lucir_ours", {r: values(df, r, d, n) for r in R.ROWS}, f"{_setting(d, n)} Ā")
    return V.combine(parts)


def c2(ctx):
    df, have, parts = _present(ctx, N.SETTINGS, R.ROWS)
    for d, n in have:
        if unmoved := _ours_unmoved(df, d, n):
            parts += unmoved
            continue
        parts += V.best("lucir_ours", {r: values(df, r, d, n, "forgetting") for r in R.ROWS},
                        f"{_setting(d, n)} F", lowest=True)
    return V.combine(parts)


def c3(ctx):
    df, have, parts = _present(ctx, N.SETTINGS, R.ROWS)
    for d, n in have:
        for m in BASES:
            ours = f"{m}_ours"
            if unmoved := _ours_unmoved(df, d, n, ours):
                parts += unmoved
                continue
            parts.append(V.paired(values(df, ours, d, n), values(df, m, d, n),
                                  f"{_setting(d, n)}: {R.TITLES[ours]} Ā > {R.TITLES[m]}"))
            parts.append(V.paired(values(df, ours, d, n, "forgetting"), values(df, m, d, n, "forgetting"),
                                  f"{_setting(d, n)}: {R.TITLES[ours]} F < {R.TITLES[m]}", less=True))
    return V.combine(parts)


def _gain(df, d, n) -> dict[int, float]:
    ours, base = values(df, "lucir_ours", d, n), values(df, "lucir", d, n)
    return {s: ours[s] - base[s] for s in set(ours) & set(base)}


def c4(ctx):
    df, have, parts = _present(ctx, [("cifar100", n) for n in (5, 10, 25)], R.ROWS)
    if len(have) < 2:
        return V.combine(parts + [V.not_checkable("the gain across N", "needs at least two N")])
    parts += V.trend([(f"N={n}", _gain(df, d, n)) for d, n in have], "LUCIR w/ ours − LUCIR Ā")
    return V.combine(parts, summary="paper: +1.78, +3.11, +6.16 (N = 5, 10, 25)")


def c5(ctx):
    if ctx.quick:
        return V.combine([V.not_checkable("ImageNet N=25 values", "needs ImageNet (full scale)")])
    df, have, parts = _present(ctx, [("imagenet", 25)], R.ROWS)
    for d, n in have:
        mean = lambda r, m="acc": sum(values(df, r, d, n, m).values()) / max(len(values(df, r, d, n, m)), 1)  # noqa: E731
        parts += [V.match(mean("lucir_ours"), 63.08, "percent", "LUCIR w/ ours Ā"),
                  V.match(mean("lucir_ours", "forgetting"), 14.40, "forgetting", "LUCIR w/ ours F"),
                  V.paired(values(df, "lucir_ours", d, n), values(df, "icarl_cil", d, n),
                           "LUCIR w/ ours Ā > iCaRL (paper: about +20)"),
                  V.paired(values(df, "lucir_ours", d, n), values(df, "lucir", d, n),
                           "LUCIR w/ ours Ā > LUCIR (paper: about +6.5)")]
    return V.combine(parts)


def c6(ctx):
    df, have, parts = _present(ctx, [("cifar100", 25), ("imagenet", 25)], R.ROWS)
    for d, n in have:
        parts.append(V.paired(values(df, "lucir_ours", d, n, "forgetting"), values(df, "lucir", d, n, "forgetting"),
                              f"{_setting(d, n)}: LUCIR w/ ours F < LUCIR F", less=True))
    return V.combine(parts, summary="paper: 26.46 → 9.96 (CIFAR-100), 30.30 → 14.40 (ImageNet)")


def _final(df, row, d, n) -> dict[int, float]:
    part = df[(df["row"] == row) & (df["dataset"] == d) & (df["n"] == n) & (df["status"] == "ok")]
    return {int(s): float(a[-1]) for s, a in zip(part["seed"], part["phase_accs"])} if len(part) else {}


def c7(ctx):
    df = frame(ctx)
    parts = []
    for d in ("cifar100", "imagenet_subset", "imagenet"):
        have = {n for n in (5, 25) if len(df) and ((df["dataset"] == d) & (df["n"] == n)).any()}
        if have != {5, 25}:
            parts.append(V.not_checkable(R.DATASET_TITLES[d], "needs N = 5 and N = 25 runs"))
            continue
        parts += [V.paired(_final(df, m, d, 25), _final(df, m, d, 5),
                           f"{R.DATASET_TITLES[d]}: {R.TITLES[m]} ends lower at N=25 than N=5", less=True)
                  for m in BASES]
        if d == "cifar100":
            parts.append(V.paired(_final(df, "lucir_ours", d, 25), _final(df, "lucir_ours", d, 5),
                                  "CIFAR-100: LUCIR w/ ours ends higher at N=25 (56.52) than N=5 (56.19)"))
    return V.combine(parts)


NOT_MOVED = "the optimised exemplars did not move (spec §4.5: < 1 grey level and < 1 % of the " \
            "bilevel objective), so the comparison is between unoptimised exemplars"


def _unmoved(df, rows, d, n) -> list[str]:
    return [r for r in rows if not_moved(df, R.run_row(r), d, n)]


def c8(ctx):
    df, have, parts = _present(ctx, N.TABLE2_SETTINGS, R.TABLE2_ROWS)
    for d, n in have:
        flagged = _unmoved(df, R.TABLE2_ROWS, d, n)
        if flagged:
            parts.append(V.not_checkable(f"{_setting(d, n)}", f"{', '.join(flagged)}: {NOT_MOVED}"))
            continue
        rows = {r: values(df, R.run_row(r), d, n) for r in R.TABLE2_ROWS}
        parts += V.best("ours", rows, f"{_setting(d, n)} Ā")
        rows = {r: values(df, R.run_row(r), d, n, "forgetting") for r in R.TABLE2_ROWS}
        parts += V.best("ours", rows, f"{_setting(d, n)} F", lowest=True)
    return V.combine(parts)


def c9(ctx):
    """Adjusting old exemplars raises Ā by about a point on average (+1.10 / +1.06): per seed,
    the mean over exemplar kinds and N of Ā(adjusted) - Ā(not adjusted)."""
    df, have, parts = _present(ctx, N.TABLE2_SETTINGS, R.TABLE2_ROWS)
    for d in sorted({d for d, _ in have}):
        per_seed: dict[int, list[float]] = {}
        for _, n in [(dd, n) for dd, n in have if dd == d]:
            for kind in ("random", "herding", "ours"):
                unmoved = _unmoved(df, [kind, f"{kind}_noadj"], d, n)
                if unmoved:
                    parts.append(V.not_checkable(f"{_setting(d, n)} {kind}",
                                                 f"{', '.join(unmoved)}: {NOT_MOVED}"))
                    continue
                adj = values(df, "lucir_ours" if kind == "ours" else kind, d, n)
                raw = values(df, f"{kind}_noadj", d, n)
                for s in set(adj) & set(raw):
                    per_seed.setdefault(s, []).append(adj[s] - raw[s])
        gain = {s: sum(v) / len(v) for s, v in per_seed.items()}
        if gain:
            parts.append(V.paired(gain, 0.0, f"{R.DATASET_TITLES[d]}: mean Ā gain of adjusting old exemplars > 0"))
    return V.combine(parts, summary="paper: +1.10 (CIFAR-100), +1.06 (ImageNet-Subset)")


def c10(ctx):
    """Random exemplars forget less than herding ones in most cells (paper: 10 of 12): a
    sign test over the cells (adjusted and not, every setting) of the seed-mean difference."""
    df, have, parts = _present(ctx, N.TABLE2_SETTINGS, R.TABLE2_ROWS)
    favour, cells = 0, 0
    for d, n in have:
        for suffix in ("", "_noadj"):
            unmoved = _unmoved(df, [f"random{suffix}", f"herding{suffix}"], d, n)
            if unmoved:  # the adjusted cells' exemplars were optimised
                parts.append(V.not_checkable(f"{_setting(d, n)} cell{suffix or ' adjusted'}",
                                             f"{', '.join(unmoved)}: {NOT_MOVED}"))
                continue
            r = values(df, f"random{suffix}", d, n, "forgetting")
            h = values(df, f"herding{suffix}", d, n, "forgetting")
            seeds = set(r) & set(h)
            if seeds:
                cells += 1
                favour += sum(h[s] - r[s] for s in seeds) / len(seeds) > 0
    if cells:
        parts.append(V.above_chance(favour, cells, 0.5, "cells where random exemplars forget less "
                                                        "than herding (sign test)"))
    return V.combine(parts, summary=f"{favour} of {cells} cells favour random (paper: 10 of 12)")


def c11(ctx):
    """Mnemonics exemplars lie farther from their class centre than before they were
    optimised (their own random initialisation: random exemplars cannot pass this) and
    than herding exemplars (which sit near it): per class and logged phase of the
    first-seed N = 5 runs, LUCIR w/ ours against its initialisation and LUCIR (herding).
    Not checkable where the mnemonics exemplars did not move."""
    data = exemplar_features(ctx)
    df = frame(ctx)
    parts = []
    unmoved = [(d, n) for d, n in N.TABLE2_SETTINGS + N.SETTINGS if not_moved(df, "lucir_ours", d, n)]
    if unmoved:  # the claim is about optimised exemplars: herding's placement alone cannot decide it
        return V.combine([V.not_checkable("mnemonics exemplars", NOT_MOVED)])
    for phase in sorted({p for r, p in data if r == "lucir_ours"}):
        entry = data[("lucir_ours", phase)]
        ours = placement(entry).set_index("class")["relative_distance"]
        if "initial" in entry:
            start = placement({**entry, "exemplars": entry["initial"],
                               "exemplars_labels": entry["initial_labels"]}).set_index("class")["relative_distance"]
            parts.append(V.paired(ours.to_dict(), start.to_dict(),
                                  f"phase {phase}: mnemonics exemplars farther from the class centre "
                                  f"than their own initialisation (per class)"))
        else:
            parts.append(V.not_checkable(f"phase {phase}: mnemonics vs initialisation",
                                         "the run did not log the exemplars' initialisation"))
        if ("lucir", phase) not in data:
            continue
        herd = placement(data[("lucir", phase)]).set_index("class")["relative_distance"]
        parts.append(V.paired(ours.to_dict(), herd.to_dict(),
                              f"phase {phase}: mnemonics exemplars farther from the class centre "
                              f"than herding (per class)"))
        parts.append(V.paired(1.0, herd.to_dict(), f"phase {phase}: herding exemplars nearer the "
                                                    f"centre than a typical image (per class)"))
    if not parts:
        return V.inconclusive("exemplar features", "no logged features of the N = 5 runs")
    return V.combine(parts, summary="within one run per method: the comparisons are over classes, "
                                    "not seeds (the t-SNE of Figs. 1 and 5 shows them)")
