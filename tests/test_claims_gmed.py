"""GMED claims on hand-built run sets (quick scale: the three MNIST stand-ins)."""

import pytest

from clrepro.papers.base import FAILS, HOLDS, INCONCLUSIVE, NOT_CHECKABLE
from clrepro.papers.gmed2021 import numbers as N
from clrepro.papers.gmed2021.protocol import dataset_of

from claim_worlds import T, check, jitter

FIG4 = {100: 70.0, 200: 75.0, 1000: 85.0}  # ER at the other memory sizes; ER+GMED +1.5


def row_of(spec):
    if spec.method == "iid":
        return "iid_offline" if spec.epochs > 1 else "iid_online"
    return spec.method


def accuracy(spec) -> float:
    row, d = row_of(spec), dataset_of(spec.benchmark)
    overrides = dict(spec.overrides)
    if overrides.get("tune"):
        return 50.0 + overrides.get("gmed.alpha", 0)
    if overrides.get("gmed.beta") == 0.0:  # Fig. 3: beta = 0 is worse than the tuned beta
        return N.table2("er_gmed", d)[0] - 1.0
    if spec.memory in FIG4 and row in ("er", "er_gmed"):
        return FIG4[spec.memory] + (1.5 if row == "er_gmed" else 0.0)
    table = N.table3 if row in ("er_random_edit", "er_hindsight_edit") else N.table2
    return table(row, d)[0]


def world(change=None):
    def build(spec):
        acc = accuracy(spec)
        if change:
            acc = change(spec, acc)
        if acc is None:
            return None
        acc += jitter(spec, 0.05)
        return {"R": [[acc / 100] * T for _ in range(T)]}
    return build


def setting(row, dataset, value):
    return lambda spec, acc: value if (row_of(spec), dataset_of(spec.benchmark)) == (row, dataset) else acc


CONTRADICTIONS = {
    "C1": setting("er_gmed", "split_mnist", 79.0),
    "C2": setting("er_gmed", "rot_mnist", 75.0),
    "C3": setting("er_gmed", "perm_mnist", 85.0),
    "C4": setting("mir_gmed", "split_mnist", 80.0),
    "C6": setting("er", "split_mnist", 95.0),
    "C7": setting("finetune", "perm_mnist", 95.0),
    "C8": setting("er_random_edit", "split_mnist", 90.0),
    "C9": setting("er_hindsight_edit", "rot_mnist", 90.0),
    "C10": lambda spec, acc: 85.0 if dict(spec.overrides).get("gmed.beta") == 0.0 else acc,
    "C11": lambda spec, acc: 95.0 if spec.memory == 1000 and spec.method == "er" else acc,
}
DECIDED = sorted(CONTRADICTIONS, key=lambda c: int(c[1:]))
NEEDS = {"C1": "er", "C2": "er", "C3": "er", "C4": "mir", "C6": "mir_gmed", "C7": "iid",
         "C8": "er_random_edit", "C9": "er_hindsight_edit", "C10": "er_gmed", "C11": "er"}


@pytest.mark.parametrize("claim", DECIDED)
def test_the_papers_numbers_make_each_claim_hold(claim, tmp_path):
    verdict = check(tmp_path, "gmed2021", claim, world())
    assert verdict.status == HOLDS, verdict.detail


@pytest.mark.parametrize("claim", DECIDED)
def test_a_contradiction_makes_it_fail(claim, tmp_path):
    verdict = check(tmp_path, "gmed2021", claim, world(CONTRADICTIONS[claim]))
    assert verdict.status == FAILS, verdict.detail


@pytest.mark.parametrize("claim", DECIDED)
def test_one_seed_is_inconclusive(claim, tmp_path):
    assert check(tmp_path, "gmed2021", claim, world(), seeds=[0]).status == INCONCLUSIVE


@pytest.mark.parametrize("claim", DECIDED)
def test_a_missing_method_is_inconclusive(claim, tmp_path):
    gone = world(lambda spec, acc: None if spec.method == NEEDS[claim] else acc)
    assert check(tmp_path, "gmed2021", claim, gone).status == INCONCLUSIVE


def test_datasets_the_scale_lacks_are_listed_not_judged(tmp_path):
    verdict = check(tmp_path, "gmed2021", "C2", world())
    assert verdict.status == HOLDS
    skipped = [e for e in verdict.evidence if e["status"] == NOT_CHECKABLE]
    assert {e["what"] for e in skipped} == {"Split CIFAR-10", "Split mini-ImageNet"}


def test_quick_only_claims(tmp_path):
    assert check(tmp_path, "gmed2021", "C5", world()).status == NOT_CHECKABLE
    assert check(tmp_path / "b", "gmed2021", "C14", world()).status == NOT_CHECKABLE
    # Figs. 5-6 read the edit log the seed-0 run saves; without it the claims cannot be judged
    assert check(tmp_path / "c", "gmed2021", "C13", world()).status == INCONCLUSIVE
