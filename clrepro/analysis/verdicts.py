"""One verdict engine for the claims of every paper.

A claim is decided from per-seed values, never from one number. Each comparison below
returns an `Evidence` that names its rule, the seeds it used (n), the effect, a 95 %
confidence interval and a p-value; `combine` turns the parts of a claim into its verdict.

Rules (ALPHA = 0.05, tests one-tailed, runs paired by seed: same seed = same stream and
initialisation):

- ``paired``   "A > B" (or "A < B"): the per-seed differences d = A - B. Holds when mean(d)
  has the claimed sign and a paired t-test rejects "no difference" at ALPHA (or at the
  paper's own level, when the claim states one); does not hold when the opposite one-tailed
  test rejects at ALPHA; inconclusive otherwise. Fewer than two seeds: inconclusive, since
  the seed-to-seed spread is then unknown and can be as large as the effect.
- ``at_least`` "A is similar to or higher than B" (non-inferiority): as ``paired`` on
  d + margin, i.e. holds when A > B - margin is supported.
- ``equivalent`` "A and B reach the same value": two one-sided tests (TOST) with ±margin;
  holds when both reject, does not hold when |d| > margin is supported, else inconclusive.
- ``not_significant`` the paper's "no significant improvement": holds when the paired test
  of A > B does not reach ALPHA, does not hold when it does.
- ``trend``    "Y rises/falls with X": every consecutive step is a ``paired`` comparison
  (all must hold; one supported reversal makes the trend fail).
- ``best``     "X is best": X against every other entry with ``paired`` (all must hold).
- ``binomial`` a rate over the examples of one run is above chance (one-sided binomial).
- ``match``    a value claim at full scale: the spec's §1.4 tolerance for its kind.
- ``exact``    analytic values (parameter counts, bytes): equality.

A claim may name preconditions (the regime it presumes); when the same runs contradict one,
the claim is "not checkable at this scale" and says which precondition failed.

Stability: every test-based comparison carries the chance that independent runs of the same
seeds reproduce its status (`stability`). Numerical differences between machines (CPU kernels,
thread counts, reduction order) change a trajectory the way another draw of the seed's noise
would (measured: README, "Determinism"), so a rerun is treated as a replication: n new
differences from the same normal distribution, whose mean and spread are both uncertain given
the n observed ones (the posterior predictive under the usual flat prior: true sd ~ s
sqrt((n-1)/chi2_{n-1}), true mean ~ N(mean, sd^2/n), the rerun's mean and sd drawn from those).
Its status is the rule applied to each predicted rerun, over DRAWS draws of a fixed generator,
so the number is deterministic. The spread matters: with 3 seeds a tight interval is often luck
(a 3-seed comparison at t = -7.3 flipped on a thread-count change; a model that keeps the sd
fixed called it 0.999 stable). A comparison below FRAGILE is marked fragile: a rerun on another
machine may give another status, so its verdict is reported as fragile. `clrepro verify` calls
a status change borderline when no claim reverses and no effect moves beyond seed noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

from clrepro.analysis.status import FAILS, HOLDS, INCONCLUSIVE, NOT_CHECKABLE, Verdict

ALPHA = 0.05
# stability below this: at least a one-in-four chance a rerun changes the status. Not 0.8: with
# the two one-tailed 5 % tests of a paired rule, a rerun of a null effect (an honest
# "inconclusive") leaves it inconclusive only about 80 % of the time.
FRAGILE = 0.75
DRAWS = 20000  # predicted reruns per comparison: the stability's Monte Carlo error is < 0.01

# spec README §1.4: tolerances of value claims (full scale only)
TOLERANCES = {"percent": 3.0, "fraction": 0.03, "forgetting": 3.0,
              # §1.4 names none for correlation coefficients (DRL Fig. 1): suite default
              "correlation": 0.10}

Values = Mapping[int, float]  # seed -> value


@dataclass
class Evidence:
    """One decided comparison; `effect` is oriented so that > 0 favours the claim."""

    what: str
    rule: str
    status: str
    n: int = 0
    effect: float = float("nan")
    ci: tuple[float, float] | None = None
    p: float | None = None
    note: str = ""
    stability: float | None = None  # chance a rerun of the same seeds gives the same status
    # the effect's size depends on the machine (e.g. seconds of training), not only on seeds:
    # verify compares its status, not its size
    machine_dependent: bool = False

    @property
    def fragile(self) -> bool:
        return self.stability is not None and self.stability < FRAGILE

    def text(self) -> str:
        parts = [f"{self.what}: {self.status}"]
        stats_ = [f"n={self.n}"]
        if not math.isnan(self.effect):
            stats_.append(f"effect {self.effect:+.4g}")
        if self.ci is not None:
            stats_.append(f"95% CI [{self.ci[0]:+.4g}, {self.ci[1]:+.4g}]")
        if self.p is not None and not math.isnan(self.p):
            stats_.append(f"p={self.p:.2g}")
        if self.stability is not None:
            stats_.append(("FRAGILE, " if self.fragile else "") + f"stability {self.stability:.2f}")
        parts.append(f" ({', '.join(stats_)}; rule {self.rule})")
        if self.note:
            parts.append(f" — {self.note}")
        return "".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "rule": self.rule, "status": self.status, "n": self.n,
                "effect": _finite(self.effect), "ci": list(self.ci) if self.ci else None,
                "p": _finite(self.p), "note": self.note,
                "stability": self.stability, "fragile": self.fragile,
                "machine_dependent": self.machine_dependent}


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _pairs(a: Values | float, b: Values | float) -> tuple[list[int], np.ndarray]:
    """Seeds with a finite value on both sides and the differences a - b (a float stands for
    the same value at every seed)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        raise ValueError("at least one side must hold per-seed values")
    seeds = sorted(set(b if isinstance(a, (int, float)) else a)
                   & set(a if isinstance(b, (int, float)) else b))
    get = lambda v, s: float(v) if isinstance(v, (int, float)) else float(v[s])  # noqa: E731
    seeds = [s for s in seeds if math.isfinite(get(a, s)) and math.isfinite(get(b, s))]
    return seeds, np.array([get(a, s) - get(b, s) for s in seeds], dtype=float)


def _t(d: np.ndarray, shift, spread=1.0) -> tuple[np.ndarray, np.ndarray]:
    """One-tailed p-values for mean(d) + shift > 0 and < 0, with the sd of d scaled by
    `spread` (shift and spread may be arrays: one p per predicted rerun)."""
    n = len(d)
    mean = float(d.mean()) + np.asarray(shift, dtype=float)
    sd = float(d.std(ddof=1))
    if sd == 0.0:  # identical differences at every seed: the sign is certain
        return np.where(mean > 0, 0.0, 1.0), np.where(mean < 0, 0.0, 1.0)
    t = mean / (sd * np.asarray(spread, dtype=float) / math.sqrt(n))
    return stats.t.sf(t, n - 1), stats.t.cdf(t, n - 1)


def _replication(decide, d: np.ndarray) -> float:
    """The chance that a rerun keeps the status `decide(0, 1)`, where `decide(shift, spread)`
    is the rule's status (arrays in, array out) with the mean difference moved by `shift` and
    the sd scaled by `spread`; reruns from the posterior predictive (module docstring)."""
    n, se = len(d), _se(d)
    if se == 0.0:  # identical differences at every seed: noise that keeps them keeps the status
        return 1.0
    rng = np.random.default_rng(0)
    sigma = np.sqrt((n - 1) / rng.chisquare(n - 1, DRAWS))  # true sd / observed sd
    shift = math.sqrt(2.0) * se * sigma * rng.standard_normal(DRAWS)  # rerun mean - mean
    spread = sigma * np.sqrt(rng.chisquare(n - 1, DRAWS) / (n - 1))  # rerun sd / observed sd
    return round(float(np.mean(decide(shift, spread) == decide(0.0, 1.0))), 3)


def _stability(decide, se: float) -> float:
    """For a count (binomial rule): the chance that a rerun keeps the status `decide(0)`,
    where `decide(shift)` is the status with the count moved by `shift`, predicted as
    N(0, 2 se^2). The shifts where the status changes are found on a grid and refined by
    bisection; the normal mass of the intervals with the same status is the answer."""
    if se == 0.0:  # identical differences at every seed: noise that keeps them keeps the status
        return 1.0
    scale = math.sqrt(2.0) * se
    at = lambda z: decide(z * scale)  # noqa: E731
    grid = np.linspace(-8.0, 8.0, 33)
    statuses = [at(z) for z in grid]
    edges = [-math.inf]
    for lo, hi, s_lo, s_hi in zip(grid, grid[1:], statuses, statuses[1:]):
        if s_lo != s_hi:
            for _ in range(20):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if at(mid) == s_lo else (lo, mid)
            edges.append((lo + hi) / 2)
    edges.append(math.inf)
    status = at(0.0)
    same = 0.0
    for a, b in zip(edges, edges[1:]):
        inside = 0.0 if math.isinf(a) and math.isinf(b) else (
            b - 1.0 if math.isinf(a) else a + 1.0 if math.isinf(b) else (a + b) / 2)
        if at(inside) == status:
            same += float(stats.norm.cdf(b) - stats.norm.cdf(a))
    return round(same, 4)


def _se(d: np.ndarray) -> float:
    return float(d.std(ddof=1)) / math.sqrt(len(d))


def _ci(d: np.ndarray) -> tuple[float, float] | None:
    n = len(d)
    if n < 2:
        return None
    half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return float(d.mean() - half), float(d.mean() + half)


def _few(what: str, rule: str, d: np.ndarray) -> Evidence | None:
    if len(d) == 0:
        return Evidence(what, rule, INCONCLUSIVE, 0, note="no seed has both values (runs missing "
                                                         "or unusable)")
    if len(d) == 1:
        side = "favours" if d[0] > 0 else "goes against"
        return Evidence(what, rule, INCONCLUSIVE, 1, float(d[0]),
                        note=f"the single seed {side} the claim, but one seed cannot show whether "
                             f"the seed-to-seed spread is smaller than the effect")
    return None


def paired(a: Values | float, b: Values | float, what: str, *, less: bool = False,
           level: float | None = None, margin: float = 0.0,
           machine_dependent: bool = False) -> Evidence:
    """'A > B' (less=True: 'A < B'); `margin` turns it into 'A > B - margin' (at_least);
    `level`: the paper's significance level the claim states (default ALPHA);
    `machine_dependent`: the values are machine properties (seconds), see Evidence."""
    rule = ("at_least" if margin else "paired") + (f" (p < {level:g})" if level else "")
    seeds, d = _pairs(a, b)
    if less:
        d = -d
    if (few := _few(what, rule, d)) is not None:
        few.machine_dependent = machine_dependent
        return few
    def decide(shift, spread):
        p_claim, p_opposite = _t(d, margin + shift, spread)
        return np.where(p_claim < (level or ALPHA), HOLDS,
                        np.where(p_opposite < ALPHA, FAILS, INCONCLUSIVE))

    status = str(decide(0.0, 1.0))
    p_claim = float(_t(d, margin)[0])
    note = f"margin {margin:g}" if margin else ""
    if level and status == INCONCLUSIVE and p_claim < ALPHA:
        note = f"significant at {ALPHA:g} but not at the paper's {level:g}"
    return Evidence(what, rule, status, len(d), float(d.mean()), _ci(d), p_claim, note,
                    _replication(decide, d), machine_dependent)


def at_least(a: Values | float, b: Values | float, margin: float, what: str) -> Evidence:
    return paired(a, b, what, margin=margin)


def equivalent(a: Values | float, b: Values | float, margin: float, what: str) -> Evidence:
    rule = "equivalent"
    seeds, d = _pairs(a, b)
    if (few := _few(what, rule, d)) is not None:
        return few
    def decide(shift, spread):
        above_low, below_low = _t(d, margin + shift, spread)  # mean(d) > -margin ?
        above_high, below_high = _t(d, shift - margin, spread)  # mean(d) < +margin ?
        return np.where(np.maximum(above_low, below_high) < ALPHA, HOLDS,
                        np.where(np.minimum(below_low, above_high) < ALPHA, FAILS, INCONCLUSIVE))

    above_low, _ = _t(d, margin)
    _, below_high = _t(d, -margin)
    return Evidence(what, rule, str(decide(0.0, 1.0)), len(d), float(d.mean()), _ci(d),
                    float(max(above_low, below_high)), f"equivalence margin ±{margin:g}",
                    _replication(decide, d))


def not_significant(a: Values, b: Values, what: str) -> Evidence:
    seeds, d = _pairs(a, b)
    if (few := _few(what, "not_significant", d)) is not None:
        return few
    def decide(shift, spread):
        return np.where(_t(d, shift, spread)[0] >= ALPHA, HOLDS, FAILS)

    return Evidence(what, "not_significant", str(decide(0.0, 1.0)), len(d), float(d.mean()),
                    _ci(d), float(_t(d, 0.0)[0]), stability=_replication(decide, d))


def trend(series: Sequence[tuple[Any, Values]], what: str, *, falling: bool = False) -> list[Evidence]:
    """Consecutive settings (label, per-seed values) must rise (or fall) step by step."""
    word = "falls" if falling else "rises"
    return [paired(vb, va, f"{what} {word} {la} → {lb}", less=falling)
            for (la, va), (lb, vb) in zip(series, series[1:])]


def best(target: str, entries: Mapping[str, Values], what: str, *, lowest: bool = False) -> list[Evidence]:
    """`target` beats every other entry (lowest=True: is below every other)."""
    word = "below" if lowest else "above"
    return [paired(entries[target], values, f"{what}: {target} {word} {other}", less=lowest)
            for other, values in entries.items() if other != target]


def match(ours: float, paper: float, kind: str, what: str, paper_sd: float | None = None) -> Evidence:
    """§1.4: mean ± sd claims within max(2 sd, 1 point); single numbers within the kind's
    tolerance (percent 3 points, fractions 0.03, forgetting 3 points)."""
    if kind == "mean_sd":
        tol, rule = max(2 * (paper_sd or 0.0), 1.0), "match (max(2 sd, 1 point))"
    else:
        tol, rule = TOLERANCES[kind], f"match (±{TOLERANCES[kind]:g})"
    if ours is None or not math.isfinite(ours):
        return Evidence(what, rule, INCONCLUSIVE, note="no usable value")
    ok = abs(ours - paper) <= tol
    return Evidence(what, rule, HOLDS if ok else FAILS, effect=ours - paper,
                    note=f"ours {ours:.4g} vs paper {paper:.4g}")


def exact(ours: Any, paper: Any, what: str) -> Evidence:
    return Evidence(what, "exact", HOLDS if ours == paper else FAILS,
                    note=f"ours {ours} vs paper {paper}")


def above_chance(hits: int, n: int, chance: float, what: str) -> Evidence:
    """A rate measured over n examples of one run (e.g. k-NN label agreement) exceeds
    chance: one-sided binomial test at ALPHA."""
    if n == 0:
        return Evidence(what, "binomial", INCONCLUSIVE, note="no examples")
    def decide(shift: float) -> str:
        k = min(max(round(hits + shift), 0), n)
        if stats.binomtest(k, n, chance, alternative="greater").pvalue < ALPHA:
            return HOLDS
        return FAILS if stats.binomtest(k, n, chance, alternative="less").pvalue < ALPHA \
            else INCONCLUSIVE

    p = float(stats.binomtest(hits, n, chance, alternative="greater").pvalue)
    rate = hits / n
    return Evidence(what, "binomial", decide(0.0), n, rate - chance, None, p,
                    f"{hits}/{n} vs chance {chance:.2f}",
                    _stability(decide, math.sqrt(n * rate * (1 - rate))))


def not_checkable(what: str, why: str) -> Evidence:
    return Evidence(what, "scale", NOT_CHECKABLE, note=why)


@dataclass
class Precondition:
    """A regime the claim presumes, checked on the same runs (e.g. 'the iid oracle is an
    upper bound'). It counts as violated only when the evidence supports the violation."""

    name: str
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def violated(self) -> bool:
        return any(e.status == FAILS for e in self.evidence)


def combine(parts: Iterable[Evidence], preconditions: Iterable[Precondition] = (),
            summary: str = "") -> Verdict:
    """All parts hold -> holds; any part fails -> does not hold; otherwise inconclusive.
    Parts not checkable at this scale are listed but do not decide; a violated precondition
    makes the whole claim not checkable."""
    parts, preconditions = list(parts), list(preconditions)
    broken = [p for p in preconditions if p.violated]
    checked = [e for e in parts if e.status != NOT_CHECKABLE]
    pre_evidence = [e for p in preconditions for e in p.evidence]
    if broken:
        status = NOT_CHECKABLE
        head = "not checkable at this scale: " + "; ".join(
            f"precondition '{p.name}' fails" for p in broken)
    elif not checked:
        status = NOT_CHECKABLE
        head = "not checkable at this scale"
    elif any(e.status == FAILS for e in checked):
        status, head = FAILS, ""
    elif any(e.status == INCONCLUSIVE for e in checked):
        status, head = INCONCLUSIVE, "the seeds cannot tell"
    else:
        status, head = HOLDS, ""
    fragile = _fragile(status, checked, preconditions)
    if fragile:
        head = "; ".join(x for x in (head, "FRAGILE: a rerun on another machine may change it ("
                                     + ", ".join(e.what for e in fragile) + ")") if x)
    lines = [x for x in (head, summary) if x]
    lines += [e.text() for e in parts]
    if pre_evidence:
        lines += ["precondition " + e.text() for e in pre_evidence]
    rules = sorted({e.rule.split(" ")[0] for e in parts + pre_evidence})
    return Verdict(status, "\n".join(lines), evidence=[e.to_json() for e in parts],
                   preconditions=[{"name": p.name, "violated": p.violated,
                                   "evidence": [e.to_json() for e in p.evidence]}
                                  for p in preconditions],
                   rule=", ".join(rules), fragile=bool(fragile))


def _fragile(status: str, checked: list[Evidence],
             preconditions: list[Precondition]) -> list[Evidence]:
    """The fragile comparisons whose change alone could change the claim's status: any part
    of a claim that holds or is inconclusive; a claim that does not hold only when every
    failing part is fragile (one firm failure keeps it failing); precondition evidence
    always (a precondition that breaks or recovers makes the claim (not) checkable)."""
    pre = [e for p in preconditions for e in p.evidence if e.fragile]
    if status == FAILS:
        failing = [e for e in checked if e.status == FAILS]
        parts = failing if all(e.fragile for e in failing) else []
    else:
        parts = [e for e in checked if e.fragile]
    return parts + pre


def inconclusive(what: str, why: str) -> Verdict:
    return Verdict(INCONCLUSIVE, f"{what}: {why}", rule="missing")
