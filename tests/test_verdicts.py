"""The verdict engine against hand-computed statistics."""

import math

import pytest
from scipy import stats

from clrepro.analysis import verdicts as V
from clrepro.papers.base import FAILS, HOLDS, INCONCLUSIVE, NOT_CHECKABLE

A = {0: 0.70, 1: 0.72, 2: 0.69, 3: 0.71, 4: 0.73}
B = {0: 0.60, 1: 0.61, 2: 0.62, 3: 0.58, 4: 0.60}


def test_paired_holds_with_the_hand_computed_t_test():
    e = V.paired(A, B, "A > B")
    d = [A[s] - B[s] for s in A]
    t = (sum(d) / 5) / (stats.tstd(d) / math.sqrt(5))
    assert e.status == HOLDS and e.n == 5 and e.rule == "paired"
    assert e.effect == pytest.approx(sum(d) / 5)
    assert e.p == pytest.approx(stats.t.sf(t, 4))
    lo, hi = e.ci
    half = stats.t.ppf(0.975, 4) * stats.tstd(d) / math.sqrt(5)
    assert (lo, hi) == pytest.approx((sum(d) / 5 - half, sum(d) / 5 + half))


def test_the_opposite_supported_does_not_hold_and_less_flips_the_claim():
    assert V.paired(B, A, "B > A").status == FAILS
    assert V.paired(B, A, "B < A", less=True).status == HOLDS


def test_one_seed_says_holds_five_seeds_say_inconclusive():
    """Seed 0 alone favours A by 0.05, but over five seeds the spread (±0.1) is as large as
    the effect: the engine must not call it."""
    noisy_a = {0: 0.65, 1: 0.50, 2: 0.72, 3: 0.55, 4: 0.66}
    noisy_b = {0: 0.60, 1: 0.61, 2: 0.58, 3: 0.66, 4: 0.57}
    assert noisy_a[0] > noisy_b[0]  # the single-seed comparison says "holds"
    single = V.paired({0: noisy_a[0]}, {0: noisy_b[0]}, "A > B")
    assert single.status == INCONCLUSIVE and single.n == 1 and "one seed" in single.note
    five = V.paired(noisy_a, noisy_b, "A > B")
    assert five.status == INCONCLUSIVE and five.n == 5
    assert five.ci[0] < 0 < five.ci[1]


def test_missing_seeds_are_left_out_and_nothing_is_inconclusive():
    e = V.paired({0: 1.0, 1: 1.1, 2: float("nan")}, {1: 0.5, 2: 0.4, 3: 0.3}, "x")
    assert e.n == 1  # only seed 1 has both values finite
    assert V.paired({}, B, "x").status == INCONCLUSIVE


def test_constants_and_zero_spread():
    assert V.paired({0: 2.0, 1: 2.0}, 1.0, "x").status == HOLDS  # identical differences
    assert V.paired({0: 1.0, 1: 1.0}, 1.0, "x").status == INCONCLUSIVE  # no difference at all
    assert V.paired(0.5, {0: 0.2, 1: 0.25, 2: 0.22}, "0.5 > drop").status == HOLDS


def test_at_least_is_a_shifted_test():
    close = {s: v - 0.01 for s, v in A.items()}  # 0.01 below A at every seed
    assert V.paired(close, A, "x").status == FAILS
    assert V.at_least(close, A, 0.02, "x").status == HOLDS
    assert V.at_least(close, A, 0.005, "x").status == FAILS


def test_paper_level_is_required_for_significance_claims():
    a = {0: 0.70, 1: 0.66, 2: 0.71, 3: 0.69, 4: 0.72}
    e = V.paired(a, B, "x")
    strict = V.paired(a, B, "x", level=1e-6)
    assert e.status == HOLDS and e.p > 1e-6
    assert strict.status == INCONCLUSIVE and "paper's" in strict.note


def test_equivalence_needs_both_one_sided_tests():
    near = {s: v + 0.002 * (-1) ** s for s, v in A.items()}
    assert V.equivalent(near, A, 0.03, "x").status == HOLDS
    assert V.equivalent(B, A, 0.03, "x").status == FAILS
    wide = {0: 0.75, 1: 0.66, 2: 0.70, 3: 0.74, 4: 0.68}
    assert V.equivalent(wide, A, 0.03, "x").status == INCONCLUSIVE


def test_trend_and_best_are_step_by_step():
    rising = [(1, B), (2, A), (5, {s: v + 0.1 for s, v in A.items()})]
    assert {e.status for e in V.trend(rising, "acc")} == {HOLDS}
    assert {e.status for e in V.trend(rising, "acc", falling=True)} == {FAILS}
    parts = V.best("a", {"a": A, "b": B, "c": {s: v - 0.05 for s, v in B.items()}}, "x")
    assert len(parts) == 2 and all(e.status == HOLDS for e in parts)


def test_not_significant_and_above_chance():
    assert V.not_significant(A, B, "x").status == FAILS
    assert V.not_significant({0: 0.61, 1: 0.59, 2: 0.63}, {0: 0.60, 1: 0.61, 2: 0.62}, "x").status == HOLDS
    assert V.above_chance(80, 100, 0.5, "x").status == HOLDS
    assert V.above_chance(20, 100, 0.5, "x").status == FAILS
    assert V.above_chance(52, 100, 0.5, "x").status == INCONCLUSIVE


def test_match_uses_the_spec_tolerances():
    assert V.match(0.65, 0.654, "fraction", "x").status == HOLDS
    assert V.match(0.60, 0.654, "fraction", "x").status == FAILS
    assert V.match(82.0, 80.96, "mean_sd", "x", paper_sd=0.2).status == FAILS  # |Δ| > 1 point
    assert V.match(82.0, 80.96, "mean_sd", "x", paper_sd=2.3).status == HOLDS  # 2 sd = 4.6
    assert V.exact(1_109_240, 1_109_240, "p").status == HOLDS


def test_combine_precedence_and_preconditions():
    h, f, i = (V.Evidence("x", "paired", s) for s in (HOLDS, FAILS, INCONCLUSIVE))
    skip = V.not_checkable("CIFAR", "not run")
    assert V.combine([h, h, skip]).status == HOLDS
    assert V.combine([h, i]).status == INCONCLUSIVE
    assert V.combine([h, i, f]).status == FAILS
    assert V.combine([skip]).status == NOT_CHECKABLE
    broken = V.Precondition("the oracle is an upper bound", [f])
    verdict = V.combine([h], [broken])
    assert verdict.status == NOT_CHECKABLE
    assert "precondition 'the oracle is an upper bound' fails" in verdict.detail
    assert verdict.preconditions[0]["violated"] and verdict.evidence[0]["status"] == HOLDS
    undecided = V.Precondition("fits", [i])  # not contradicted: the claim is judged
    assert V.combine([h], [undecided]).status == HOLDS
