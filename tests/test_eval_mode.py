"""Evaluation, herding, imprinting, nearest-mean and exemplar selection run every method's
network in eval mode: no BatchNorm or dropout layer runs in training mode (BatchNorm would
normalise with a batch's own statistics) and no running statistic is overwritten with test or exemplar images.

Every method in the registry is trained for one short pass on a tiny stream with a network
that has BatchNorm (the online methods' MLPs are swapped for a narrow reduced ResNet-18),
while every forward made inside a watched call -- the evaluator, the class-incremental
methods' `features` (herding, LUCIR's imprinting, iCaRL's class means) and the online
iCaRL's `end_task` (herding) -- is checked."""

import pytest
import torch
import torch.nn as nn

from clrepro.methods import METHODS
from clrepro.models import build_model
from clrepro.phases import train_phases
from clrepro.loop import Evaluator
from clrepro.train import train_run

from conftest import tiny_benchmark
from test_methods import HP as ONLINE_HP, TASK_AWARE
from test_mnemonics import HP as PHASE_HP, bench as phase_bench

CPU = torch.device("cpu")
BN_NET = {"name": "resnet18_reduced", "nf": 4}
OWN_NET = {"multimodal": {"name": "multimodal_mlp", "hidden": 16},  # no BatchNorm variant of
           "replay_drl": {"name": "small_cnn", "hidden": 16}}      # these: flags only
PHASE_EXTRA = {"lwf_cil": {"kd.lambda": 0.5, "kd.tau": 2.0, "kd.form": "soft_targets_eq5"},
               "bic": {"kd.tau": 2.0, "bic.val_fraction": 0.1, "bic.epochs": 2, "bic.lr": 0.01}}


MODE_DEPENDENT = (nn.modules.batchnorm._BatchNorm, nn.Dropout)


def running_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.detach().clone() for n, b in model.named_buffers()
            if "running" in n or "num_batches" in n}


class Watch:
    """Eval-mode violations made inside the watched calls."""

    def __init__(self, monkeypatch):
        self.found: list[str] = []
        self.depth = 0
        self.monkeypatch = monkeypatch
        self.handle = nn.modules.module.register_module_forward_pre_hook(self.hook)

    def hook(self, module, args):
        if self.depth and module.training and isinstance(module, MODE_DEPENDENT):
            self.found.append(f"{type(module).__name__} ran in training mode")

    def wrap(self, cls, attr: str, method_of) -> None:
        """Inside cls.attr, the method's model runs in eval mode and keeps its statistics."""
        real, watch = getattr(cls, attr), self

        def checked(obj, *args, **kwargs):
            model = method_of(obj, args).model
            before = running_stats(model)
            watch.depth += 1
            try:
                return real(obj, *args, **kwargs)
            finally:
                watch.depth -= 1
                after = running_stats(model)
                changed = [n for n in before if n not in after or not torch.equal(before[n], after[n])]
                if changed:
                    watch.found.append(f"{attr} changed running statistics: {changed[:3]}")

        self.monkeypatch.setattr(cls, attr, checked)


@pytest.fixture
def watch(monkeypatch):
    w = Watch(monkeypatch)
    w.wrap(Evaluator, "__call__", lambda evaluator, args: args[0])
    yield w
    w.handle.remove()


ONLINE = sorted(n for n, c in METHODS.items() if c.trainer == "online")
PHASES = sorted(n for n, c in METHODS.items() if c.trainer == "phases")
# GEM's official iCaRL code herds and stores its distillation targets with the network in
# training mode (BatchNorm on each class's batch, running statistics updated); the gem_code
# variant follows it there
CODE_TRAIN_MODE = {"icarl": "gem_code herds in training mode, as GEM's official code does"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(reason=CODE_TRAIN_MODE[n],
                                                                          strict=True))
                                  if n in CODE_TRAIN_MODE else n for n in ONLINE])
def test_online_methods_evaluate_and_select_in_eval_mode(name, watch):
    cls = METHODS[name]
    if name == "icarl":  # the online method that selects exemplars with its network
        watch.wrap(cls, "end_task", lambda method, args: method)
    kind, scenario = (("split", "task_incremental") if name in TASK_AWARE
                      else ("permuted", "domain_incremental"))
    bench = tiny_benchmark(kind, scenario, n_tasks=2, train_per_task=30, test_per_task=20)
    hp = {**ONLINE_HP, "model": OWN_NET.get(name, BN_NET), "batch_size": 10, "eval_every": 4}
    out = train_run(bench, cls, hp, 0, 1, CPU)
    assert out["status"] == "ok"
    assert watch.found == []


@pytest.mark.parametrize("name", PHASES)
def test_class_incremental_methods_evaluate_and_select_in_eval_mode(name, watch):
    """Evaluation, herding (features), LUCIR's imprinting, iCaRL's class means."""
    from clrepro.methods import cil

    watch.wrap(cil.ClassIncremental, "features", lambda method, args: method)
    hp = {**PHASE_HP, **PHASE_EXTRA.get(name, {}), "exemplars.kind": "herding",
          "mnemonics.adjust_old": False, "finetune.epochs": 1, "log.artifacts": True,
          "model": {**PHASE_HP["model"], "normalize": True}}
    out = train_phases(phase_bench(), METHODS[name], hp, 0, 1, CPU)
    assert out["status"] == "ok"
    assert watch.found == []


def test_eval_reaches_the_wrapper_of_a_normalised_network():
    model = build_model({"name": "resnet32_lucir", "blocks_per_stage": 1, "normalize": True},
                        (1, 14, 14), 5, input_norm=([0.5], [0.2]))
    model.eval()
    assert not model.training and not any(m.training for m in model.modules())
    model.train()
    assert model.training and all(m.training for m in model.modules())
