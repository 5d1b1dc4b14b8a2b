"""The training loop: determinism, evaluation schedule, iid rows, divergence, resume."""

import numpy as np
import pytest
import torch

from clrepro import metrics
from clrepro.methods import METHODS
from clrepro.papers import strategies
from clrepro.train import build_phases, train_run

from conftest import tiny_benchmark

HP = {"lr": 0.05, "model": {"name": "mlp", "hidden": [16, 16], "init": "xavier"}, "memory": 30,
      "batch_size": 10, "eval_every": 4, "checkpoint_every": 3, "gem.margin": 0.5,
      "gem.margin_mode": "additive", "gem.qp_eps": 1e-3, "gem.memory_policy": "last_m"}
CPU = torch.device("cpu")


def run(method="gem", seed=0, epochs=1, hp=None, checkpoint=None, bench=None):
    bench = bench or tiny_benchmark(n_tasks=3, seed=seed)
    hp = {**HP, **(hp or {})}
    return train_run(bench, METHODS[method], hp, seed, epochs, CPU, checkpoint,
                     **strategies.for_run(hp))


def test_same_run_twice_gives_identical_results():
    a, b = run(), run()
    assert a["R"] == b["R"] and a["b"] == b["b"] and a["curve"] == b["curve"]
    c = run(seed=1)
    assert c["R"] != a["R"]


def test_evaluation_schedule_and_r_shape():
    out = run()  # 3 tasks x 6 batches, eval every 4 batches
    assert np.array(out["R"]).shape == (3, 3) and len(out["b"]) == 3
    batches = out["curve"]["batch"]
    assert batches[0] == 0  # before training: the random-init baseline
    assert {6, 12, 18} <= set(batches)  # every task end
    assert {4, 8, 16} <= set(batches)  # every eval_every batches
    assert out["curve"]["acc"][batches.index(6)] == out["R"][0]
    assert out["timings"]["batches"] == 18 and out["timings"]["train_s"] > 0


def test_epochs_repeat_each_task_before_the_next():
    bench = tiny_benchmark(n_tasks=2)
    phases = build_phases(bench, "tasks", 3, seed=0)
    n = len(bench.tasks[0].train_y)
    assert [(p.task, p.epoch, p.last) for p in phases] == [
        (0, 0, False), (0, 1, False), (0, 2, True), (1, 0, False), (1, 1, False), (1, 2, True)]
    assert all(sorted(p.order.tolist()) == list(range(n * p.task, n * (p.task + 1))) for p in phases)
    assert not torch.equal(phases[0].order, phases[1].order)  # each pass reshuffled
    iid = build_phases(bench, "iid", 2, seed=0)
    assert len(iid) == 1 and iid[0].task is None and len(iid[0].order) == 4 * n


def test_iid_oracle_rows_and_chunks():
    out = run("iid")
    assert out["R"][0] == out["R"][-1]
    assert metrics.bwt(np.array(out["R"])) == 0.0
    chunks = run("iid", hp={"iid.eval": "chunks"})
    assert len(chunks["R"]) == 3 and chunks["R"][0] != chunks["R"][2]
    assert chunks["R"][2] == out["R"][2]  # same stream, same final state


class Oracle:
    """A 'method' that predicts every test label correctly (all labels of the test set are
    made 3), so that only the evaluation protocol can lower its accuracy."""

    model = torch.nn.Identity()

    def prepare_eval(self):
        pass

    def predict(self, x, tasks):
        return torch.full((len(x),), 3)


def test_drop_last_quirk_skips_one_example_but_divides_by_all():
    from clrepro.loop import Evaluator

    bench = tiny_benchmark(n_tasks=2)
    for task in bench.tasks:
        task.test_y = torch.full_like(task.test_y, 3)
    n = len(bench.tasks[0].test_y)
    plain = Evaluator(bench, CPU, 7, drop_last_quirk=False)(Oracle())
    quirk = Evaluator(bench, CPU, 7, drop_last_quirk=True)(Oracle())
    assert plain == [1.0, 1.0]
    assert quirk == [(n - 1) / n] * 2  # GEM's code (spec D5) caps a perfect task below 1


def test_divergence_is_recorded_not_averaged():
    out = run("single", hp={"lr": 1e30})
    assert out["status"] == "diverged"


class Crash(RuntimeError):
    pass


def test_resume_after_a_crash_gives_identical_metrics(tmp_path, monkeypatch):
    reference = run()
    ckpt = tmp_path / "run.ckpt.pt"
    original = METHODS["gem"].observe
    calls = {"n": 0}

    def crashing(self, *args):
        calls["n"] += 1
        if calls["n"] == 11:
            raise Crash
        return original(self, *args)

    monkeypatch.setattr(METHODS["gem"], "observe", crashing)
    with pytest.raises(Crash):
        run(checkpoint=ckpt)
    assert ckpt.is_file()
    monkeypatch.setattr(METHODS["gem"], "observe", original)
    resumed = run(checkpoint=ckpt)
    assert resumed["timings"]["resumed"] == 1
    assert resumed["R"] == reference["R"] and resumed["curve"] == reference["curve"]


def test_checkpoint_from_another_protocol_is_ignored(tmp_path):
    ckpt = tmp_path / "run.ckpt.pt"
    first = run(checkpoint=ckpt)
    other = run(checkpoint=ckpt, hp={"lr": 0.01})  # ckpt of the finished lr=0.05 run exists
    assert other["timings"]["resumed"] == 0 and other["R"] != first["R"]


def test_tuning_mode_uses_first_tasks_validation_and_early_stopping():
    bench = tiny_benchmark(n_tasks=4, val_fraction=0.2, train_per_task=None, test_per_task=None)
    out = run("single", epochs=3, bench=bench,
              hp={"tasks_limit": 3, "eval_split": "val", "early_stopping": True})
    assert np.array(out["R"]).shape == (3, 3)
    assert out["test_sizes"] == [len(t.val_y) for t in bench.tasks[:3]]
    full = 3 * 3 * len(range(0, len(bench.tasks[0].train_y), 10))
    assert out["timings"]["batches"] <= full
    lr0 = run("single", epochs=3, bench=bench,
              hp={"lr": 0.0, "tasks_limit": 3, "eval_split": "val", "early_stopping": True})
    per_pass = len(range(0, len(bench.tasks[0].train_y), 10))
    # with nothing learnt, accuracy never improves after the first pass: every task stops at 2
    assert lr0["timings"]["batches"] == 3 * 2 * per_pass


def test_last_row_only_evaluates_once_and_matches_the_full_run():
    full = run("single")
    last = run("single", hp={"eval.rows": "last"})
    assert last["R"] == full["R"][-1:] and last["b"] == [None] * 3
    assert last["timings"]["eval_s"] < full["timings"]["eval_s"]
    assert np.isnan(metrics.bwt(np.array(last["R"]))) and metrics.acc(np.array(last["R"])) == \
        metrics.acc(np.array(full["R"]))
