"""Host synchronisations per training step (clrepro.syncs): every method's step is held to a
budget, so that a new `.item()`, boolean mask or `.cpu()` in a hot loop fails a test on the
CPU instead of stalling a GPU run."""

import collections

import pytest
import torch

from clrepro.methods import METHODS
from clrepro.phases import train_phases
from clrepro.syncs import SyncCounter
from clrepro.loop import Evaluator
from clrepro.train import train_run

from conftest import tiny_benchmark
from test_methods import HP, MLP, ONLINE, TASK_AWARE, context
from test_mnemonics import HP as CIL_HP, bench as cil_bench

CPU = torch.device("cpu")

# Host synchronisations allowed per training step (the most of any step); 0 unless listed.
BUDGET = {
    "gem": 1,  # the dual QP (Eq. 11) is solved on the host (quadprog): one copy per step of
               # the constraint signs with the QP's Gram matrix and linear term
    "gss": 1,  # GSS-Greedy's replacement (Alg. 2) is a sequential per-example draw on the
               # host: one copy per step of the candidates' scores
    "lucir": 4,  # on the CPU (where this counter runs) LUCIR selects the old-class rows for
                 # its margin ranking loss, which costs nothing there; on an accelerator it
                 # scores every row and masks the new ones instead (no sync; the two forms
                 # agree: test_lucir_models / test_cil_methods)
}
PHASE_METHODS = sorted(name for name, cls in METHODS.items() if cls.trainer == "phases")
CIL_EXTRA = {"lwf_cil": {"kd.lambda": 0.5, "kd.tau": 2.0, "kd.form": "soft_targets_eq5"},
             "bic": {"kd.tau": 2.0, "bic.val_fraction": 0.1, "bic.epochs": 1, "bic.lr": 0.01}}


def counted(cls, counter: SyncCounter, per_step: list, where: collections.Counter):
    """`cls` with its observe counted: per_step gets each step's syncs, where their sources."""
    def observe(self, x, y, tasks):
        before, sources = counter.total, collections.Counter(counter.counts.where)
        cls.observe(self, x, y, tasks)
        per_step.append(counter.total - before)
        where.update(counter.counts.where - sources)
    return type(cls.__name__, (cls,), {"observe": observe})


def test_the_counter_counts_device_reads_and_not_host_work():
    x = torch.arange(6.0)  # made before the counter: data, as on the device
    gen = torch.Generator().manual_seed(0)
    with SyncCounter() as syncs:
        x.sum().item()
        bool((x > 1).any())
        int(x[2])
        x[x > 2]  # a boolean mask is a nonzero first
        x.nonzero()
        torch.unique(x)
        torch.masked_select(x, x > 1)
        x.tolist()
        x.cpu().numpy()  # one copy
        assert syncs.total == 9, dict(syncs.counts)
        # host work: a CPU generator's draws, factory tensors without a device, and what is
        # computed from them alone
        torch.rand(3, generator=gen, dtype=torch.float64).tolist()
        int(torch.randint(5, (1,), generator=gen))
        h = torch.zeros(3)
        h[1] = 2.0
        float(h.sum())
        torch.tensor([1.0, 2.0]).tolist()
        float(x.cpu()[0])  # the copy is on the host
        assert syncs.total == 10, dict(syncs.counts)
        torch.zeros(3, device=x.device).sum().item()  # made for the run's device
    assert syncs.total == 11 and syncs.counts["item"] == 4


@pytest.mark.parametrize("name", ONLINE)
def test_online_step_keeps_its_sync_budget(name):
    kind, scenario = (("split", "task_incremental") if name in TASK_AWARE
                      else ("permuted", "domain_incremental"))
    bench = tiny_benchmark(kind, scenario)
    model = {"name": "multimodal_mlp", "hidden": 16} if name == "multimodal" else MLP
    counter, per_step, where = SyncCounter(where=True), [], collections.Counter()
    with counter:  # from construction on, so the method's host tensors are known as such
        method = counted(METHODS[name], counter, per_step, where)(context(bench), {**HP, "model": model})
        for t, task in enumerate(bench.tasks):
            method.begin_task(t)
            for i in range(3):
                x = task.train_x[i * 10:(i + 1) * 10].float() / 255
                y = task.train_y[i * 10:(i + 1) * 10]
                method.observe(x, y, torch.full_like(y, t))
            method.end_task(t)
    assert len(per_step) == 9
    assert max(per_step) <= BUDGET.get(name, 0), f"{per_step}; from {dict(where)}"


@pytest.mark.parametrize("name", PHASE_METHODS)
def test_phase_trainer_step_keeps_its_sync_budget(name):
    hp = {**CIL_HP, **CIL_EXTRA.get(name, {}), "exemplars.kind": "herding",
          "mnemonics.adjust_old": False, "weight_transfer": False, "finetune.epochs": 0}
    counter, per_step, where = SyncCounter(where=True), [], collections.Counter()
    with counter:
        out = train_phases(cil_bench(), counted(METHODS[name], counter, per_step, where), hp, 0,
                           1, CPU)
    assert out["status"] == "ok" and per_step
    assert max(per_step) <= BUDGET.get(name, 0), f"{per_step}; from {dict(where)}"


def test_the_online_loop_adds_no_sync_per_step(monkeypatch):
    """Syncs of train_run outside the method's calls and the evaluations: a few per task
    boundary (checkpoint state, divergence check), none per step."""
    counter = SyncCounter(where=True)
    inside = collections.Counter()

    def excluded(fn):
        def wrapper(*args, **kwargs):
            before = counter.total
            try:
                return fn(*args, **kwargs)
            finally:
                inside["syncs"] += counter.total - before
        return wrapper

    cls = METHODS["single"]
    sub = type("Single", (cls,), {k: excluded(getattr(cls, k)) for k in
                                  ("observe", "begin_task", "end_task", "parameters_finite")})
    monkeypatch.setattr(Evaluator, "__call__", excluded(Evaluator.__call__))
    outside = []
    for batch_size in (5, 10):  # twice the steps, the same syncs
        counter.reset()
        inside.clear()
        hp = {**HP, "batch_size": batch_size, "eval_every": 1000}
        with counter:
            train_run(tiny_benchmark(), sub, hp, 0, 1, CPU)
        outside.append(counter.total - inside["syncs"])
    # none (the class lists the context reads stay on the host: the benchmark is made under
    # the counter here)
    assert outside == [0, 0], (outside, dict(counter.counts.where))
