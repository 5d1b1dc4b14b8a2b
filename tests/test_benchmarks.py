import pytest
import torch

from clrepro.data.benchmarks import BenchmarkDef, materialize, prepare
from clrepro.data.sources import synthetic


@pytest.fixture(scope="module")
def raw():
    return synthetic("mnist", (1, 28, 28), 10, train_per_class=60, test_per_class=20)


def perm(**kw):
    return BenchmarkDef("perm@test", "mnist", "permuted", 4, "domain_incremental",
                        **{"train_per_task": 50, "test_per_task": 60, **kw})


def rot(**kw):
    return BenchmarkDef("rot@test", "mnist", "rotated", 4, "domain_incremental",
                        **{"train_per_task": 50, "test_per_task": 60, **kw})


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_prepare_is_deterministic_and_depends_on_data_seed(raw):
    assert same(prepare(perm(), raw), prepare(perm(), raw))
    assert not same(prepare(perm(), raw), prepare(perm(data_seed=1), raw))
    assert same(prepare(rot(), raw), prepare(rot(), raw))
    assert not same(prepare(rot(), raw), prepare(rot(data_seed=1), raw))


def test_run_draws_are_seeded(raw):
    prepared = prepare(perm(), raw)
    a, b, c = (materialize(prepared, perm(), s) for s in (0, 0, 1))
    assert all(torch.equal(x.train_x, y.train_x) for x, y in zip(a.tasks, b.tasks))
    assert not torch.equal(a.tasks[0].train_x, c.tasks[0].train_x)
    # permutations and test sets are fixed by the data seed, not the run seed
    assert torch.equal(a.tasks[2].test_x, c.tasks[2].test_x)
    assert a.tasks[1].info == c.tasks[1].info


def test_every_permuted_task_is_a_distinct_permutation(raw):
    b = materialize(prepare(perm(), raw), perm(), 0)
    hashes = {t.info["permutation_sha256"] for t in b.tasks}
    assert len(hashes) == 4 and not any(t.info["identity"] for t in b.tasks)
    b = materialize(prepare(perm(identity_first=True), raw), perm(identity_first=True), 0)
    assert b.tasks[0].info["identity"] and not b.tasks[1].info["identity"]


def test_permutation_moves_pixels_but_keeps_them(raw):
    defn = perm(train_draw="data")
    b = materialize(prepare(defn, raw), defn, 0)
    x = b.tasks[0].test_x.reshape(len(b.tasks[0].test_x), -1)
    ref = raw.test_x.reshape(len(raw.test_x), -1)
    assert sorted(x[0].tolist()) in [sorted(r.tolist()) for r in ref]


def test_rotation_angles_fall_in_their_bins(raw):
    b = materialize(prepare(rot(), raw), rot(), 0)
    width = 180 / 4
    for k, task in enumerate(b.tasks):
        assert k * width <= task.info["angle"] < (k + 1) * width


def test_explicit_angles_and_run_seeded_transforms(raw):
    fixed = rot(angles=(10.0, 20.0, 30.0, 40.0))
    b = materialize(prepare(fixed, raw), fixed, 0)
    assert [t.info["angle"] for t in b.tasks] == [10.0, 20.0, 30.0, 40.0]
    run_seeded = rot(transform_seed="run", interpolation="cubic", test_draw="run")
    prepared = prepare(run_seeded, raw)
    a, c = materialize(prepared, run_seeded, 0), materialize(prepared, run_seeded, 1)
    assert a.tasks[0].info["angle"] != c.tasks[0].info["angle"]
    assert a.tasks[0].test_x.dtype == torch.uint8 and a.tasks[0].test_x.float().std() > 0


def test_split_tasks_hold_their_classes(raw):
    defn = BenchmarkDef("split@test", "mnist", "split", 5, "task_incremental", classes_per_task=2,
                        train_per_class=20)
    b = materialize(prepare(defn, raw), defn, 0)
    for t, task in enumerate(b.tasks):
        assert task.classes.tolist() == [2 * t, 2 * t + 1]
        assert set(task.train_y.tolist()) == {2 * t, 2 * t + 1}
        assert len(task.train_y) == 40
        assert set(task.test_y.tolist()) <= {2 * t, 2 * t + 1}
        assert len(task.test_y) == int(torch.isin(raw.test_y, task.classes).sum())
    mask = b.class_mask()
    assert mask.sum(1).tolist() == [2] * 5 and mask[1, 2] and not mask[1, 0]


def test_validation_split_is_disjoint_from_training(raw):
    defn = perm(val_fraction=0.1, train_per_task=None, shared_subset=100, identity_first=True)
    b = materialize(prepare(defn, raw), defn, 0)
    assert len(b.tasks[0].val_y) == 10 and len(b.tasks[0].train_y) == 90


def test_bad_definitions_are_refused():
    with pytest.raises(ValueError, match="kind"):
        BenchmarkDef("x@t", "mnist", "shuffled", 2, "domain_incremental")
    with pytest.raises(ValueError, match="classes_per_task"):
        BenchmarkDef("x@t", "mnist", "split", 2, "class_incremental")


def test_fresh_validation_part_per_run(raw):
    defn = rot(train_per_task=40, val_per_task=5, interpolation="cubic", transform_seed="run",
               test_draw="run", test_per_task=30)
    prepared = prepare(defn, raw)
    a, b = materialize(prepared, defn, 0), materialize(prepared, defn, 1)
    task = a.tasks[0]
    assert len(task.train_y) == 40 and len(task.val_y) == 5 and len(task.test_y) == 30
    assert not torch.equal(a.tasks[0].val_x, b.tasks[0].val_x)


def test_stratified_validation_parts(raw):
    defn = BenchmarkDef("split@test", "mnist", "split", 5, "class_incremental", classes_per_task=2,
                        val_fraction=0.1)
    task = materialize(prepare(defn, raw), defn, 0).tasks[0]
    assert sorted(task.val_y.tolist()) == [0] * 6 + [1] * 6  # 10% of each class's 60
    assert len(task.train_y) == 108
