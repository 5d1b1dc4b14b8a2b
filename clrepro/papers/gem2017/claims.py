"""GEM claims C1-C11 (spec §2), each checked from run records.

Quick and smoke runs use stand-in data, so there a verdict is about the *direction* of a
claim only (spec §1.3); exact numbers are compared only at full scale.
"""

from __future__ import annotations

import math

from clrepro.models import build_model, n_parameters
from clrepro.papers.base import FAILS, HOLDS, INCONCLUSIVE, Context, Verdict
from clrepro.papers.gem2017 import numbers as N
from clrepro.papers.gem2017 import runs as R
from clrepro.papers.gem2017.artifacts import first_task_curves

SIMILAR = 0.02  # "similar" accuracy: within 2 points (suite default)
NEARLY_FLAT = 0.05  # task-1 accuracy may drop at most this much to count as "nearly constant"
FWT_NEAR_ZERO = -0.02  # FWT "negligible or positive"


def _m(ctx: Context, fam: str, label: str, metric: str = "acc", **where) -> float:
    return ctx.runs.mean(metric, benchmark=R.bench(ctx.scale, fam), label=label, **where)


def _missing(*values: float) -> bool:
    return any(math.isnan(v) for v in values)


def _inconclusive(ctx: Context, what: str) -> Verdict:
    bad = ctx.runs.problems()
    listed = "; ".join(f"{r.label} on {r.benchmark} (m{r.memory}, e{r.epochs}, s{r.seed}): {r.status}"
                       for r in bad.itertuples())
    return Verdict(INCONCLUSIVE, f"{what}: a needed run is not usable" + (f" — {listed}" if listed else ""))


def _verdict(ok: bool, detail: str) -> Verdict:
    return Verdict(HOLDS if ok else FAILS, detail)


def c1(ctx: Context) -> Verdict:
    parts, ok = [], True
    for fam in ("perm", "rot"):
        gem = _m(ctx, fam, "gem")
        others = {m: _m(ctx, fam, m) for m in R.methods(fam) if m != "gem"}
        if _missing(gem, *others.values()):
            return _inconclusive(ctx, R.FAMILY_TITLES[fam])
        best = max(others, key=others.get)
        ok &= gem >= others[best] - SIMILAR
        parts.append(f"{R.FAMILY_TITLES[fam]}: GEM {gem:.3f} vs best baseline {best} {others[best]:.3f}")
    return _verdict(ok, "; ".join(parts) + f" (similar = within {SIMILAR})")


def c2(ctx: Context) -> Verdict:
    parts, ok = [], True
    for fam in R.FAMILIES:
        gem, ewc, single = (_m(ctx, fam, m) for m in ("gem", "ewc", "single"))
        if _missing(gem, ewc, single):
            return _inconclusive(ctx, R.FAMILY_TITLES[fam])
        ok &= gem > ewc and gem > single
        parts.append(f"{R.FAMILY_TITLES[fam]}: GEM {gem:.3f}, EWC {ewc:.3f}, single {single:.3f}")
    return _verdict(ok, "; ".join(parts))


def c3(ctx: Context) -> Verdict:
    parts, ok = [], True
    for fam in R.FAMILIES:
        bwt = {m: _m(ctx, fam, m, "bwt") for m in R.methods(fam)}
        fwt = _m(ctx, fam, "gem", "fwt")
        if _missing(fwt, *bwt.values()):
            return _inconclusive(ctx, R.FAMILY_TITLES[fam])
        best_other = max((m for m in bwt if m != "gem"), key=bwt.get)
        ok &= bwt["gem"] >= bwt[best_other] and fwt >= FWT_NEAR_ZERO
        parts.append(f"{R.FAMILY_TITLES[fam]}: GEM BWT {bwt['gem']:+.3f} vs best other "
                     f"{best_other} {bwt[best_other]:+.3f}, GEM FWT {fwt:+.3f}")
    return _verdict(ok, "; ".join(parts))


def c4(ctx: Context) -> Verdict:
    curves = first_task_curves(ctx)
    parts, ok = [], True
    for fam in R.FAMILIES:
        b = R.bench(ctx.scale, fam)
        drops = {}
        for m in ("gem", "single", "ewc"):
            c = curves[(curves["benchmark"] == b) & (curves["label"] == m)]
            if c.empty:
                return _inconclusive(ctx, f"{R.FAMILY_TITLES[fam]} {m}")
            mean = c.groupby("progress")["acc_task1"].mean()
            after_first = mean[mean.index >= 1.0].iloc[0]
            drops[m] = after_first - mean.iloc[-1]
        flat = drops["gem"] <= NEARLY_FLAT and drops["gem"] <= min(drops["single"], drops["ewc"])
        if fam == "cifar" and not ctx.quick:
            flat &= drops["gem"] < 0  # ends above its value after task 1
        ok &= flat
        parts.append(f"{R.FAMILY_TITLES[fam]}: drop of task-1 accuracy after task 1 -> end: "
                     + ", ".join(f"{m} {d:+.3f}" for m, d in drops.items()))
    return _verdict(ok, "; ".join(parts) + f" (nearly constant = drop <= {NEARLY_FLAT})")


def c5(ctx: Context) -> Verdict:
    parts, ok = [], True
    for fam in ("perm", "rot"):
        t = {m: _m(ctx, fam, m, "train_s") for m in R.methods(fam)}
        if _missing(*t.values()):
            return _inconclusive(ctx, R.FAMILY_TITLES[fam])
        parts.append(f"{R.FAMILY_TITLES[fam]}: " + ", ".join(f"{m} {s:.1f}s" for m, s in t.items()))
        if ctx.quick:
            ok &= t["gem"] > t["single"]
        else:
            cheap = max(t["single"], t["independent"], t["multimodal"])
            ok &= t["gem"] < t["ewc"] and cheap < t["gem"]
    rule = ("quick: only 'GEM is slower than single' is asserted; EWC vs GEM depends on the "
            "hardware and on our O(p) EWC penalty, and is reported only" if ctx.quick else
            "GEM faster than EWC, both slower than the memory-free methods; note our EWC "
            "penalty costs O(p) per step instead of the official code's O(T p)")
    return _verdict(ok, "; ".join(parts) + f" ({rule})")


def _table2_series(ctx: Context, method: str) -> list[float]:
    b = R.bench(ctx.scale, "cifar")
    return [ctx.runs.mean("acc", benchmark=b, label=method,
                          memory=R.table2_memory(ctx.scale, method, size))
            for size in R.SCALE[ctx.scale]["table2_sizes"]]


def c6(ctx: Context) -> Verdict:
    gem = _table2_series(ctx, "gem")
    if _missing(*gem):
        return _inconclusive(ctx, "GEM")
    ok = all(a < b for a, b in zip(gem, gem[1:]))
    return _verdict(ok, "GEM ACC by memory size: " + " -> ".join(f"{a:.3f}" for a in gem)
                    + f" (paper: {' -> '.join(str(v) for v in N.TABLE2_ACC['gem'].values())})")


def c7(ctx: Context) -> Verdict:
    gem, icarl = _table2_series(ctx, "gem"), _table2_series(ctx, "icarl")
    if _missing(*gem, *icarl):
        return _inconclusive(ctx, "GEM/iCaRL")
    ok = all(g > i for g, i in zip(gem, icarl))
    return _verdict(ok, ", ".join(f"{s}: GEM {g:.3f} vs iCaRL {i:.3f}" for s, g, i in
                                  zip(R.SCALE[ctx.scale]["table2_sizes"], gem, icarl)))


def _epoch_series(ctx: Context, method: str, metric: str) -> list[float]:
    return [_m(ctx, "rot", method, metric, epochs=e) for e in R.SCALE[ctx.scale]["epochs"]]


def c8(ctx: Context) -> Verdict:
    parts, ok = [], True
    for m in ("single", "multimodal"):
        bwt, acc = _epoch_series(ctx, m, "bwt"), _epoch_series(ctx, m, "acc")
        if _missing(*bwt, *acc):
            return _inconclusive(m)
        ok &= all(a > b for a, b in zip(bwt, bwt[1:])) and all(a > b for a, b in zip(acc, acc[1:]))
        parts.append(f"{m}: BWT {' -> '.join(f'{v:+.3f}' for v in bwt)}, "
                     f"ACC {' -> '.join(f'{v:.3f}' for v in acc)}")
    return _verdict(ok, "; ".join(parts))


def c9(ctx: Context) -> Verdict:
    acc = {m: _epoch_series(ctx, m, "acc") for m in ("ewc", "gem")}
    bwt = {m: _epoch_series(ctx, m, "bwt") for m in ("ewc", "gem")}
    if _missing(*acc["ewc"], *acc["gem"], *bwt["ewc"], *bwt["gem"]):
        return _inconclusive(ctx, "EWC/GEM")
    rising = all(all(a < b for a, b in zip(s, s[1:])) for s in acc.values())
    gem_better = all(g > e for g, e in zip(bwt["gem"], bwt["ewc"]))
    return _verdict(rising and gem_better, "; ".join(
        f"{m}: ACC {' -> '.join(f'{v:.3f}' for v in acc[m])}, BWT "
        f"{' -> '.join(f'{v:+.3f}' for v in bwt[m])}" for m in ("ewc", "gem")))


def c10(ctx: Context) -> Verdict:
    epochs = R.SCALE[ctx.scale]["epochs"]
    gem, iid = _epoch_series(ctx, "gem", "acc"), _epoch_series(ctx, "iid", "acc")
    if _missing(*gem, *iid):
        return _inconclusive(ctx, "GEM/iid")
    ok = gem[0] >= iid[0] and abs(gem[-1] - iid[-1]) <= N.TOLERANCE_FRACTION
    return _verdict(ok, f"{epochs[0]} epoch: GEM {gem[0]:.3f} vs shuffled {iid[0]:.3f}; "
                        f"{epochs[-1]} epochs: GEM {gem[-1]:.3f} vs shuffled {iid[-1]:.3f} "
                        f"(both reach the same = within {N.TOLERANCE_FRACTION})")


def c11(ctx: Context) -> Verdict:
    p = n_parameters(build_model({"name": "resnet18_reduced", "nf": 20}, (3, 32, 32), 100))
    return _verdict(p == N.RESNET_PARAMETERS,
                    f"reduced ResNet-18 (nf=20, 3x32x32, 100 outputs) has {p:,} parameters; "
                    f"paper: {N.RESNET_PARAMETERS:,}")
