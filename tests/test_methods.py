"""Method-level properties on tiny synthetic streams."""

import pytest
import torch
import torch.nn.functional as F

from clrepro.methods import METHODS, Context
from clrepro.methods.ewc import EWC
from clrepro.methods.gem import GEM
from clrepro.methods.grads import flat_grad, group_gradients
from clrepro.memory.exemplars import herding
from clrepro.models import build_model

from conftest import tiny_benchmark

MLP = {"name": "mlp", "hidden": [16, 16], "init": "xavier"}
HP = {"lr": 0.05, "model": MLP, "memory": 30, "gem.margin": 0.5, "gem.margin_mode": "additive",
      "gem.qp_eps": 1e-3, "gem.memory_policy": "last_m", "ewc.strength": 3.0,
      "ewc.fisher_samples": 10, "ewc.fisher": "squared_mean_grad", "icarl.strength": 1.0,
      "icarl.trim_old": True, "independent.clone": True, "replay.batch_size": 10,
      "replay.iterations": 1, "er.loss": "union_mean", "mir.candidates": 25, "gmed.alpha": 1.0,
      "gmed.beta": 0.01, "gmed.reg_sign": "paper", "gmed.edit_reduction": "mean",
      "gmed.clip": False, "gmed.edit_schedule": "per_iteration", "agem.reference_size": 64,
      "gss.compare": 10, "random_edit.variant": "paper", "bgd.eta": 1.0, "bgd.std_init": 0.02, "bgd.mc_samples": 3,
      "hal.lambda": 0.1, "hal.gamma": 0.1, "hal.anchor_steps": 5, "hal.anchor_lr": 0.1,
      "augment": {"views": 2, "crop_pad": 2, "rotate": 10.0}, "bld.batch_reduction": "sum",
      "bld.batch_views": False, "bld.lambda": 2.0, "bld.tau": 2.0, "bld.lr_warmup": 1e-3,
      "bld.joint_steps": 2, "bld.norm_granularity": "tensor", "l2.mu": 1.0, "finetune.steps": 2,
      "lwf.weight": 1.0, "lwf.tau": 2.0, "replay.strategy": "ber", "replay.per_class": 5,
      "drl.lambda": 0.01, "drl.form": "paper", "drl.norm": "pairs", "drl.layers": "default",
      "ber.unit": "class"}


def context(bench, seed=0):
    mask = bench.class_mask() if bench.task_incremental else None
    return Context(bench.input_shape, bench.n_classes, bench.n_tasks, mask, torch.device("cpu"),
                   torch.Generator().manual_seed(seed))


def feed(method, bench, batches=3, batch_size=10):
    for t, task in enumerate(bench.tasks):
        method.begin_task(t)
        for i in range(batches):
            x = task.train_x[i * batch_size:(i + 1) * batch_size].float() / 255
            y = task.train_y[i * batch_size:(i + 1) * batch_size]
            method.observe(x, y, torch.full_like(y, t))
        method.end_task(t)


TASK_AWARE = {"icarl", "mc_finetune", "batch_l2", "bld", "bld_alternated", "bld_no_balancing", "lwf"}


ONLINE = sorted(name for name, cls in METHODS.items() if cls.trainer == "online")


@pytest.mark.parametrize("name", ONLINE)  # the phase trainer's methods: test_mnemonics.py
def test_every_method_trains_and_predicts(name):
    kind, scenario = (("split", "task_incremental") if name in TASK_AWARE
                      else ("permuted", "domain_incremental"))
    bench = tiny_benchmark(kind, scenario)
    model = {"name": "multimodal_mlp", "hidden": 16} if name == "multimodal" else MLP
    method = METHODS[name](context(bench), {**HP, "model": model})
    feed(method, bench)
    method.model.eval()
    method.prepare_eval()
    x = bench.tasks[1].test_x[:7].float() / 255
    pred = method.predict(x, torch.full((7,), 1))
    assert pred.shape == (7,) and pred.dtype == torch.long
    assert method.parameters_finite()


def test_gem_keeps_the_last_m_examples_of_each_task():
    bench = tiny_benchmark(n_tasks=2)
    gem = GEM(context(bench), {**HP, "memory": 30})  # 15 slots per task
    feed(gem, bench, batches=4)  # 40 examples per task
    for t, task in enumerate(bench.tasks):
        last = task.train_x[25:40].float() / 255
        stored = gem.memory.x[t]
        assert sorted(map(tuple, stored.flatten(1).tolist())) == sorted(map(tuple, last.flatten(1).tolist()))
    ring = GEM(context(bench), {**HP, "memory": 30, "gem.memory_policy": "ring_shared_pointer"})
    feed(ring, bench, batches=4)
    torch.testing.assert_close(ring.memory.x.sum(1), gem.memory.x.sum(1))  # same sets once tasks >= m


def test_gem_step_never_increases_a_memory_loss_to_first_order():
    torch.manual_seed(0)
    bench = tiny_benchmark(n_tasks=3)
    gem = GEM(context(bench), {**HP, "lr": 0.1, "memory": 60, "gem.margin": 0.0, "gem.qp_eps": 1e-10})
    applied = []
    original_step = gem.opt.step

    def recording_step(*a, **k):
        applied.append(flat_grad(gem.params).clone())
        return original_step(*a, **k)

    gem.opt.step = recording_step
    feed(gem, bench, batches=1)
    gem.begin_task(2)
    task = bench.tasks[2]
    for i in range(4):
        mem_grads = gem.memory_gradients()
        x, y = task.train_x[i * 10:(i + 1) * 10].float() / 255, task.train_y[i * 10:(i + 1) * 10]
        gem.observe(x, y, torch.full_like(y, 2))
        dots = mem_grads @ applied[-1]
        assert torch.all(dots >= -1e-4), dots
    assert gem.counters.get("projections", 0) >= 1


def test_group_gradients_vectorised_equals_one_backward_per_group():
    torch.manual_seed(0)
    model = build_model(MLP, (1, 28, 28), 10)
    xs, ys = torch.rand(3, 5, 1, 28, 28), torch.randint(0, 10, (3, 5))
    ws = torch.full((3, 5), 0.2)
    got = group_gradients(model, model, xs, ys, ws, None)
    for k in range(3):
        model.zero_grad()
        F.cross_entropy(model(xs[k]), ys[k]).backward()
        torch.testing.assert_close(got[k], flat_grad(list(model.parameters())), rtol=1e-5, atol=1e-6)


def test_ewc_penalty_equals_autograd_of_the_per_task_loss():
    """One step of our EWC == one step on CE + sum_k s sum F_k (theta - theta*_k)^2."""
    torch.manual_seed(0)
    bench = tiny_benchmark(n_tasks=3)
    ewc = EWC(context(bench), HP)
    fishers, anchors = [], []
    for t in range(2):
        ewc.begin_task(t)
        task = bench.tasks[t]
        for i in range(2):
            x, y = task.train_x[i * 10:(i + 1) * 10].float() / 255, task.train_y[i * 10:(i + 1) * 10]
            ewc.observe(x, y, torch.full_like(y, t))
        fishers.append(ewc._fisher(torch.cat(ewc.fisher_x), torch.cat(ewc.fisher_y),
                                   torch.full((10,), t)))
        anchors.append([p.detach().clone() for p in ewc.model.parameters()])
        ewc.end_task(t)
    ewc.begin_task(2)
    task = bench.tasks[2]
    x, y = task.train_x[:10].float() / 255, task.train_y[:10]
    ref = build_model(MLP, (1, 28, 28), 10)
    ref.load_state_dict(ewc.model.state_dict())
    loss = F.cross_entropy(ref(x), y)
    for f_k, a_k in zip(fishers, anchors):
        loss = loss + sum((3.0 * f * (p - a) ** 2).sum() for f, p, a in zip(f_k, ref.parameters(), a_k))
    loss.backward()
    expected = [p.detach() - 0.05 * p.grad for p in ref.parameters()]
    ewc.observe(x, y, torch.full_like(y, 2))
    for got, want in zip(ewc.model.parameters(), expected):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)


def test_herding_picks_the_mean_first_and_never_repeats():
    torch.manual_seed(0)
    feats = torch.randn(40, 5)
    order = herding(feats, 10)
    assert len(set(order.tolist())) == 10
    assert int(order[0]) == int((feats - feats.mean(0)).norm(dim=1).argmin())
    assert torch.equal(herding(feats, 4), order[:4])  # a prefix is the smaller set
    assert len(herding(feats, 100)) == 40


def test_independent_clones_the_previous_network():
    bench = tiny_benchmark(n_tasks=2)
    ind = METHODS["independent"](context(bench), HP)
    init = [p.clone() for p in ind.model[0].parameters()]
    feed(ind, bench.first_tasks(1), batches=3)  # train the first network only
    trained = [p.clone() for p in ind.model[0].parameters()]
    assert not all(torch.equal(a, b) for a, b in zip(init, trained))
    ind.begin_task(1)  # the second network starts as the *trained* first one
    assert all(torch.equal(a, b) for a, b in zip(trained, ind.model[1].parameters()))
    x, y = bench.tasks[1].train_x[:10].float() / 255, bench.tasks[1].train_y[:10]
    ind.observe(x, y, torch.ones_like(y))  # learning task 1 leaves task 0's network alone
    assert all(torch.equal(a, b) for a, b in zip(trained, ind.model[0].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(trained, ind.model[1].parameters()))
    fresh = METHODS["independent"](context(bench), HP)
    fresh.begin_task(0)
    fresh.begin_task(1)
    assert all(torch.equal(a, b) for a, b in zip(fresh.model[0].parameters(), fresh.model[1].parameters()))
    assert fresh.model[0].body[1].out_features == 16 // 2  # T times fewer hidden units


def test_task_incremental_heads_hide_other_tasks():
    bench = tiny_benchmark("split", "task_incremental", n_tasks=3)
    single = METHODS["single"](context(bench), HP)
    logits = single.logits(torch.rand(4, 1, 28, 28), torch.tensor([1, 1, 2, 2]))
    assert torch.isinf(logits[0, 0]) and torch.isfinite(logits[0, 2]) and torch.isfinite(logits[2, 5])
    ind = METHODS["independent"](context(bench), HP)
    out = ind.forward(torch.rand(2, 1, 28, 28), torch.tensor([2, 2]))
    assert torch.isfinite(out[:, 4:6]).all() and torch.isinf(out[:, :4]).all()


@pytest.mark.parametrize("mode", ["squared_mean_grad", "empirical"])
def test_ewc_fisher_against_a_float64_recomputation_over_the_first_stream_examples(mode):
    """F_0 (read from the penalty, pen_a = s F_0) uses the first n_F *stream* examples, which
    with two passes over a 20-example task repeat the first pass's examples as GEM's code
    (model/ewc.py, memx) does, and equals the square of the mean gradient (or the mean of
    per-example squared gradients) at the end of the task, recomputed here in float64."""
    torch.manual_seed(0)
    bench = tiny_benchmark(n_tasks=2)
    hp = {**HP, "ewc.fisher_samples": 30, "ewc.fisher": mode}
    ewc = EWC(context(bench), hp)
    task = bench.tasks[0]
    x, y = task.train_x[:20].float() / 255, task.train_y[:20]
    ewc.begin_task(0)
    for _ in range(2):  # two epochs of two mini-batches
        for i in (0, 1):
            ewc.observe(x[i * 10:(i + 1) * 10], y[i * 10:(i + 1) * 10], torch.zeros(10, dtype=torch.long))
    ewc.end_task(0)
    ref = build_model(MLP, (1, 28, 28), 10).double()
    ref.load_state_dict(ewc.model.state_dict())
    xs, ys = torch.cat([x, x[:10]]).double(), torch.cat([y, y[:10]])  # the first 30 seen

    def squared_grads(xb, yb):
        ref.zero_grad()
        F.cross_entropy(ref(xb), yb).backward()
        return [p.grad.detach().clone() ** 2 for p in ref.parameters()]

    if mode == "squared_mean_grad":
        want = squared_grads(xs, ys)
    else:
        per = [squared_grads(xs[i:i + 1], ys[i:i + 1]) for i in range(30)]
        want = [sum(g) / 30 for g in zip(*per)]
    for a, w in zip(ewc.pen_a, want):
        torch.testing.assert_close(a.double(), 3.0 * w, rtol=1e-4, atol=1e-9)
