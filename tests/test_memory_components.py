"""Memory as components (clrepro.memory): the replay methods are combinations of a storage,
an update and a retrieval, so a method is its components and a new replay variant is a new
combination -- no new method class."""

import copy

import pytest
import torch
import torch.nn.functional as F

from clrepro.memory import GradientDiverse, MaximallyInterfered, Reservoir, uniform_slots
from clrepro.methods import METHODS
from clrepro.methods.gss import per_example_gradients

from conftest import tiny_benchmark
from test_methods import HP, context


def _stream(bench, batches: int = 4):
    for t, task in enumerate(bench.tasks):
        for i in range(batches):
            rows = slice(i * 10, (i + 1) * 10)
            y = task.train_y[rows]
            yield task.train_x[rows].float() / 255, y, torch.full_like(y, t)


def _gss_update(method):
    return GradientDiverse(method.hp["memory"], method.hp["gss.compare"],
                           lambda x, y: per_example_gradients(method.model, x, y))


def _mir_retrieval(method):
    return MaximallyInterfered(method.hp["mir.candidates"], method.hp["lr"])


@pytest.mark.parametrize("name, swap", [
    ("mir", lambda er: setattr(er, "retrieval", _mir_retrieval(er))),
    ("gss", lambda er: setattr(er.memory, "update", _gss_update(er))),
])
def test_mir_and_gss_are_er_with_one_component_swapped(name, swap):
    """ER given MIR's retrieval (or GSS's update) trains bit for bit as the MIR (GSS)
    method: the method class adds nothing but the component."""
    bench = tiny_benchmark(n_tasks=2)
    torch.manual_seed(0)
    er = METHODS["er"](context(bench), HP)
    torch.manual_seed(0)
    reference = METHODS[name](context(bench), HP)
    swap(er)
    for x, y, t in _stream(bench):
        er.observe(x, y, t)
        reference.observe(x, y, t)
    assert er.memory.size == reference.memory.size > 0
    assert torch.equal(er.memory.x, reference.memory.x) and torch.equal(er.memory.y, reference.memory.y)
    for a, b in zip(er.model.parameters(), reference.model.parameters()):
        assert torch.equal(a, b)


def test_a_new_replay_variant_is_a_combination_of_components():
    """GSS's update with MIR's retrieval -- a variant none of the papers runs -- composed in
    ER's loop without a method class. The update keeps gradient-diverse examples: an
    example whose gradient points as a stored one's (c = 2) never enters, where a
    reservoir takes some of the same offers (the update's gradients are one-hot label
    vectors here, so that c is exact). Each step replays the most interfered candidates
    (brute force: a real SGD step on a copy of the network)."""
    bench = tiny_benchmark(n_tasks=2)
    hp = {**HP, "memory": 20, "mir.candidates": 8, "replay.batch_size": 4}
    torch.manual_seed(0)
    method = METHODS["er"](context(bench), hp)
    method.memory.update = GradientDiverse(20, 20, lambda x, y: F.one_hot(y, 10).float())
    method.retrieval = MaximallyInterfered(hp["mir.candidates"], hp["lr"])
    stream = list(_stream(bench))
    for x, y, t in stream[:4]:
        method.observe(x, y, t)
    mem = method.memory
    assert mem.size == mem.capacity and mem.update.scores.sum() > 0

    # the update: more examples of the classes in memory (every slot is compared)
    held = mem.x.clone()
    stored = set(mem.y.tolist())
    offers = [(x[keep], y[keep], t[keep]) for x, y, t in stream[4:]
              for keep in [torch.tensor([c in stored for c in y.tolist()])]]
    assert sum(len(y) for _, y, _ in offers) >= 20
    for x, y, t in offers:
        mem.add(x, y, t)
    assert torch.equal(mem.x, held)
    reservoir = copy.deepcopy(mem)
    reservoir.update = Reservoir()
    for x, y, t in offers:
        reservoir.add(x, y, t)
    assert not torch.equal(reservoir.x, held)  # the same offers do enter a reservoir

    # the retrieval, through the method's own replay step
    x, y, _ = stream[6]
    state = method.ctx.generator.get_state()
    chosen = method.replay_indices(x, y)
    method.ctx.generator.set_state(state)
    cand = uniform_slots(mem, 8)
    with torch.no_grad():
        before = F.cross_entropy(method.model(mem.x[cand]), mem.y[cand], reduction="none")
    twin = copy.deepcopy(method.model)
    opt = torch.optim.SGD(twin.parameters(), lr=hp["lr"])
    F.cross_entropy(twin(x), y).backward()
    opt.step()
    with torch.no_grad():
        after = F.cross_entropy(twin(mem.x[cand]), mem.y[cand], reduction="none")
    expected = cand[(after - before).topk(4).indices]
    assert len(chosen) == 4 and sorted(chosen.tolist()) == sorted(expected.tolist())
