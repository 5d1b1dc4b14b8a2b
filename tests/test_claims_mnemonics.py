"""Mnemonics claims on hand-built run sets (quick scale: one setting, Fashion-MNIST N = 5)."""

import pytest

from clrepro.papers.base import FAILS, HOLDS, INCONCLUSIVE, NOT_CHECKABLE
from clrepro.papers.mnemonics2020 import numbers as N
from clrepro.papers.mnemonics2020.runs import row_of

from claim_worlds import check, jitter

PHASES = 6  # base phase + 5


def world(change=None):
    def build(spec):
        row = row_of(spec)
        if row == "joint_cil":
            return {"R": [[0.9]], "benchmark": {"tasks": [{"classes": list(range(5 + k))}
                                                          for k in range(1)]}}
        paper_row = {"lwf_cil": "lwf", "icarl_cil": "icarl", "lwf_cil_ours": "lwf_ours",
                     "icarl_cil_ours": "icarl_ours"}.get(row, row)
        table_acc = N.TABLE1_ACC if paper_row in N.TABLE1_ACC else N.TABLE2_ACC
        table_f = N.TABLE1_F if paper_row in N.TABLE1_F else N.TABLE2_F
        acc, f = table_acc[paper_row][0], table_f[paper_row][0]
        if change:
            acc, f = change(row, acc, f)
        if acc is None:
            return None
        acc, f = acc + jitter(spec, 0.1), f + jitter(spec, 0.1)
        r = [[acc / 100 if j <= i else None for j in range(PHASES)] for i in range(PHASES)]
        r[-1][0] = (acc - f) / 100
        return {"R": r, "benchmark": {"tasks": [{"classes": [0] * (5 if t == 0 else 1)}
                                                for t in range(PHASES)]}}
    return build


def setting(target, acc=None, f=None):
    return lambda row, a, ff: (acc if acc is not None else a, f if f is not None else ff) \
        if row == target else (a, ff)


@pytest.mark.parametrize("claim", ["C1", "C2", "C3", "C8", "C9"])
def test_the_papers_numbers_make_each_claim_hold(claim, tmp_path):
    verdict = check(tmp_path, "mnemonics2020", claim, world(), seeds=[0, 1, 2, 3])
    assert verdict.status == HOLDS, verdict.detail


@pytest.mark.parametrize("claim,change", [("C1", setting("bic", acc=80.0)),
                                          ("C2", setting("icarl_cil", f=1.0)),
                                          ("C3", setting("lwf_cil_ours", acc=40.0)),
                                          ("C8", setting("random", acc=90.0)),
                                          ("C9", setting("herding", acc=50.0))])
def test_a_contradiction_makes_it_fail(claim, change, tmp_path):
    verdict = check(tmp_path, "mnemonics2020", claim, world(change), seeds=[0, 1, 2, 3])
    assert verdict.status == FAILS, verdict.detail


@pytest.mark.parametrize("claim", ["C1", "C3", "C8"])
def test_the_specs_single_quick_seed_is_inconclusive(claim, tmp_path):
    assert check(tmp_path, "mnemonics2020", claim, world(), seeds=[0]).status == INCONCLUSIVE


@pytest.mark.parametrize("claim", ["C4", "C5", "C7"])
def test_claims_about_other_datasets_or_n_are_not_checkable_in_quick(claim, tmp_path):
    assert check(tmp_path, "mnemonics2020", claim, world(), seeds=[0, 1, 2]).status == NOT_CHECKABLE


def test_exemplar_placement_needs_the_logged_features(tmp_path):
    assert check(tmp_path, "mnemonics2020", "C11", world()).status == INCONCLUSIVE


def test_table2s_ours_row_shows_the_lucir_w_ours_runs(tmp_path):
    from claim_worlds import context
    from clrepro.papers.mnemonics2020.artifacts import render_table2

    table = render_table2(context(tmp_path, "mnemonics2020", "mnemonics.table2", world())).display
    ours = table[table["method"] == "ours"].iloc[0]
    assert abs(float(ours.iloc[-1].split(" ")[0]) - N.TABLE1_ACC["lucir_ours"][0]) < 0.5, table


def test_fig4s_upper_bound_has_a_point_per_class_count(tmp_path):
    """A joint run's record lists every phase of the benchmark; phases.merge = k trains on the
    first k, so its class count is theirs (5, 6, ..., 10), not the benchmark's 10."""
    from claim_worlds import context
    from clrepro.papers.mnemonics2020.artifacts import curves

    def full_benchmark(spec):
        metrics = world()(spec)
        if row_of(spec) == "joint_cil":
            metrics["benchmark"] = {"tasks": [{"classes": list(range(5))}]
                                    + [{"classes": [5 + k]} for k in range(PHASES - 1)]}
        return metrics

    upper = curves(context(tmp_path, "mnemonics2020", "mnemonics.fig4", full_benchmark))
    assert sorted(upper[upper["row"] == "joint_cil"]["classes"]) == list(range(5, 11))


def optimisation(not_moved: bool) -> dict:
    """A record's exemplar-optimisation log: one set that moved 0.001 or 5 grey levels."""
    return {"exemplar_optimisation": [{
        "phase": 0, "set": "new", "exemplars": 100, "meta_updates": 30,
        "moved_grey_levels": 0.001 if not_moved else 5.0, "objective_before": 1.0,
        "objective_after": 1.0 if not_moved else 0.9, "objective_fell_rel": 0.0 if not_moved else 0.1,
        "not_moved": not_moved}]}


def optimised_world(not_moved: bool, artifacts=None):
    base = world()

    def build(spec):
        metrics = base(spec)
        row = row_of(spec)
        if metrics is not None and (row.endswith("ours") or row in ("ours_noadj", "random", "herding")):
            metrics["details"] = optimisation(not_moved)
        if metrics is not None and artifacts and row in artifacts and spec.seed == 0:
            metrics["artifacts"] = artifacts[row]
        return metrics
    return build


@pytest.mark.parametrize("claim", ["C1", "C2", "C3", "C8", "C9"])
def test_unmoved_exemplars_make_the_ablation_claims_not_checkable(claim, tmp_path):
    """Spec §4.5 (amended): the paper's numbers would make these claims hold, but on runs
    whose mnemonics exemplars did not move 'w/ ours' is 'w/ random exemplars' (C1-C3: the
    quick runs' 3 seeds said 'does not hold' for C1 and C2 about exemplars that never moved)."""
    moved = check(tmp_path / "a", "mnemonics2020", claim, optimised_world(False), seeds=[0, 1, 2, 3])
    assert moved.status == HOLDS, moved.detail
    verdict = check(tmp_path / "b", "mnemonics2020", claim, optimised_world(True), seeds=[0, 1, 2, 3])
    assert verdict.status == NOT_CHECKABLE and "did not move" in verdict.detail, verdict.detail


def features(spread_ours: float, spread_initial: float, spread_herding: float = 0.1):
    """Logged features of 6 classes (phase 0): real images around class centres; exemplars
    at the given spread relative to the real images' (1)."""
    import torch

    g = torch.Generator().manual_seed(0)
    out = {"lucir_ours": {}, "lucir": {}}
    for c in range(6):
        centre = torch.zeros(8)
        centre[c] = 20.0
        noise = lambda n, s: centre + s * torch.randn(n, 8, generator=g)  # noqa: E731
        out["lucir_ours"].update({f"p0/c{c}/real": noise(50, 1.0), f"p0/c{c}/exemplars": noise(20, spread_ours),
                                  f"p0/c{c}/initial": noise(20, spread_initial)})
        out["lucir"].update({f"p0/c{c}/real": noise(50, 1.0), f"p0/c{c}/exemplars": noise(20, spread_herding)})
    return out


def test_c11_compares_mnemonics_exemplars_with_their_own_initialisation(tmp_path):
    """Random exemplars lie farther from the centre than herding ones without any
    optimisation: C11 must not hold for them. Exemplars that stayed where their random
    initialisation put them cannot pass; ones moved outward can; unmoved runs are not
    checkable."""
    unchanged = check(tmp_path / "a", "mnemonics2020", "C11",
                      optimised_world(False, features(1.0, 1.0)))
    assert unchanged.status != HOLDS, unchanged.detail
    outward = check(tmp_path / "b", "mnemonics2020", "C11", optimised_world(False, features(2.0, 1.0)))
    assert outward.status == HOLDS, outward.detail
    flagged = check(tmp_path / "c", "mnemonics2020", "C11", optimised_world(True, features(2.0, 1.0)))
    assert flagged.status == NOT_CHECKABLE and "did not move" in flagged.detail, flagged.detail
