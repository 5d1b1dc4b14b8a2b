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
