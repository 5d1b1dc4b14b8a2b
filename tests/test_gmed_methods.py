"""Properties of GMED's building blocks: reservoir, MIR, the edit step, A-GEM, the t-tests."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from clrepro.analysis.stats import paired_greater, stars
from clrepro.memory import SlotMemory, uniform_slots
from clrepro.methods import METHODS
from clrepro.methods.agem import agem_project
from clrepro.methods.gmed import gmed_direction
from clrepro.models import build_model

from conftest import tiny_benchmark
from test_methods import HP, context


def test_reservoir_keeps_every_example_with_probability_capacity_over_n():
    n_stream, capacity, trials = 60, 12, 3000
    counts = np.zeros(n_stream)
    gen = torch.Generator().manual_seed(1234)
    for _ in range(trials):
        mem = SlotMemory(capacity, (1,), torch.device("cpu"), gen)
        for start in range(0, n_stream, 10):
            ids = torch.arange(start, start + 10, dtype=torch.float).view(-1, 1)
            mem.add(ids, torch.zeros(10, dtype=torch.long), torch.zeros(10, dtype=torch.long))
        counts[mem.x[:, 0].long().numpy()] += 1
    # each example's count is Binomial(trials, capacity / n_stream): a chi-square test of
    # uniformity over the 60 stream positions must not reject at the 1% level
    expected = trials * capacity / n_stream
    assert counts.sum() == trials * capacity
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert stats.chi2.sf(chi2, df=n_stream - 1) > 0.01
    # and the early examples are not favoured (a classic off-by-one of reservoir sampling)
    assert abs(counts[:10].mean() - counts[-10:].mean()) < 4 * np.sqrt(expected)


def _gmed_method(name, **hp):
    bench = tiny_benchmark(n_tasks=2)
    method = METHODS[name](context(bench), {**HP, **hp})
    task = bench.tasks[0]
    for i in range(4):  # fill some memory
        x, y = task.train_x[i * 10:(i + 1) * 10].float() / 255, task.train_y[i * 10:(i + 1) * 10]
        method.observe(x, y, torch.zeros_like(y))
    return method, bench


def test_mir_replays_the_most_interfered_candidates():
    torch.manual_seed(0)
    mir, bench = _gmed_method("mir", **{"mir.candidates": 20})
    x = bench.tasks[1].train_x[:10].float() / 255
    y = bench.tasks[1].train_y[:10]
    state = mir.ctx.generator.get_state()
    chosen = mir.replay_indices(x, y)
    mir.ctx.generator.set_state(state)
    cand = uniform_slots(mir.memory, 20)
    # brute force: a real copy of the model, one real SGD step on the stream batch
    mx, my = mir.memory.x[cand], mir.memory.y[cand]
    with torch.no_grad():
        before = F.cross_entropy(mir.model(mx), my, reduction="none")
    twin = copy.deepcopy(mir.model)
    opt = torch.optim.SGD(twin.parameters(), lr=HP["lr"])
    F.cross_entropy(twin(x), y).backward()
    opt.step()
    with torch.no_grad():
        after = F.cross_entropy(twin(mx), my, reduction="none")
    expected = cand[(after - before).topk(10).indices]
    assert sorted(chosen.tolist()) == sorted(expected.tolist())


@pytest.mark.parametrize("reg_sign", ["paper", "code"])
def test_one_gmed_edit_step_increases_its_objective(reg_sign):
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [32, 32]}, (1, 28, 28), 10)
    mx, my = torch.rand(10, 1, 28, 28), torch.randint(0, 10, (10,))
    sx, sy = torch.rand(10, 1, 28, 28), torch.randint(0, 10, (10,))
    lr, beta, alpha = 0.05, 0.01, 0.5
    twin = copy.deepcopy(model)
    opt = torch.optim.SGD(twin.parameters(), lr=lr)
    F.cross_entropy(twin(sx), sy).backward()
    opt.step()
    coef = 1 + beta if reg_sign == "paper" else 1 - beta

    def objective(x):  # d - beta * l_before (paper); l_after - (1 - beta) l_before (code)
        with torch.no_grad():
            return (F.cross_entropy(twin(x), my) - coef * F.cross_entropy(model(x), my)).item()

    params_before = [p.clone() for p in model.parameters()]
    direction = gmed_direction(model, mx, my, sx, sy, lr, beta, reg_sign)
    assert all(torch.equal(a, b) for a, b in zip(params_before, model.parameters()))
    edited = mx + alpha * direction
    gain = objective(edited) - objective(mx)
    assert gain > 0
    # first order: the gain matches alpha * |grad|^2 for a small step
    small = 1e-3
    predicted = small * direction.pow(2).sum().item()
    assert objective(mx + small * direction) - objective(mx) == pytest.approx(predicted, rel=0.05)


def test_er_gmed_replays_and_stores_the_edited_examples():
    torch.manual_seed(0)
    er_gmed, bench = _gmed_method("er_gmed", **{"gmed.log_edits": True})
    before = er_gmed.memory.x.clone()
    x, y = bench.tasks[1].train_x[:10].float() / 255, bench.tasks[1].train_y[:10]
    er_gmed.observe(x, y, torch.ones_like(y))
    changed = (er_gmed.memory.x != before).flatten(1).any(1)
    assert changed.sum() >= 10  # the 10 edited slots (plus any reservoir writes)
    art = er_gmed.artifacts()
    assert set(art) == {"original", "edited", "label", "task"}
    assert (art["edited"] - art["original"]).abs().sum() > 0
    assert er_gmed.counters["edits"] >= 10


def test_agem_projection_matches_its_closed_form():
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        g, g_ref = torch.randn(20, generator=gen), torch.randn(20, generator=gen)
        out, violated = agem_project(g, g_ref)
        assert bool(violated) == bool(torch.dot(g, g_ref) < 0)
        if torch.dot(g, g_ref) >= 0:
            assert torch.equal(out, g)
            continue
        expected = g - torch.dot(g, g_ref) / torch.dot(g_ref, g_ref) * g_ref
        torch.testing.assert_close(out, expected)
        assert torch.dot(out, g_ref) >= -1e-5  # never leaves a negative dot product
        # the smallest change that satisfies the constraint: the change is along g_ref only
        change = out - g
        assert torch.allclose(change - torch.dot(change, g_ref) / torch.dot(g_ref, g_ref) * g_ref,
                              torch.zeros(20), atol=1e-5)


def test_star_logic_matches_scipy_paired_one_tailed():
    # hand-made paired results over 6 seeds
    control = {0: 80.1, 1: 79.5, 2: 81.0, 3: 80.4, 4: 79.9, 5: 80.7}
    cases = {"strong": {s: v + 2.0 + 0.05 * s for s, v in control.items()},
             "weak": {s: v + (0.6 if s % 2 else 0.1) for s, v in control.items()},
             "none": {s: v - 0.3 + 0.1 * (s % 3) for s, v in control.items()}}
    for name, treated in cases.items():
        test = paired_greater(treated, control)
        seeds = sorted(control)
        ref = stats.ttest_rel([treated[s] for s in seeds], [control[s] for s in seeds],
                              alternative="greater")
        assert test.p == pytest.approx(ref.pvalue) and test.t == pytest.approx(ref.statistic)
        assert test.stars == ("**" if ref.pvalue < 1e-3 else "*" if ref.pvalue < 0.05 else "")
    assert paired_greater(cases["strong"], control).stars == "**"
    assert paired_greater(cases["weak"], control).stars == "*"
    assert paired_greater(cases["none"], control).stars == ""
    # unpaired seeds are left out; one pair is not a test
    assert paired_greater({0: 1.0, 9: 5.0}, {0: 0.0}).n == 1
    assert np.isnan(paired_greater({0: 1.0}, {0: 0.0}).p) and stars(float("nan")) == ""
