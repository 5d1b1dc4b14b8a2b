"""DRL + BER: the loss by hand, balanced replay, the similarity study, the CORe50 path."""

import hashlib

import numpy as np
import pytest
import torch
from core50_tree import MTNC_TASKS, N_OBJECTS, TRAIN_SESSIONS, build_core50_tree
from scipy import stats

from clrepro import plan
from clrepro.analysis.similarity import cosine_matrix, pair_similarities, per_example_gradients
from clrepro.data import store
from clrepro.data.benchmarks import materialize, prepare
from clrepro.data.definitions import BenchmarkDef, DataSettings
from clrepro.data.sources import load_source
from clrepro.data.tracks import materialize_track
from clrepro.memory import ClassBalancedMemory
from clrepro.memory.retrieval import balanced as ber_draw, uniform_with_replacement
from clrepro.methods import METHODS, Context
from clrepro.methods.base import TaskStream
from clrepro.methods.drl import drl_loss
from clrepro.models import build_model
from clrepro.models.pretrained import PretrainedBackbone, weights_loader
from clrepro.papers.drl2020 import protocol
from clrepro.spec import RunSpec
from clrepro.papers import strategies
from clrepro.train import train_run

CPU = torch.device("cpu")


def test_drl_loss_by_hand_over_two_layers():
    y = torch.tensor([0, 0, 1])
    h1 = torch.tensor([[1.0, 0.0], [2.0, 1.0], [0.0, 3.0]])
    h2 = torch.tensor([[1.0], [-1.0], [2.0]])
    # ordered pairs: different class (0,2),(2,0),(1,2),(2,1); same class (0,1),(1,0)
    # layer 1 dots: <0,1> = 2, <0,2> = 0, <1,2> = 3; layer 2: -1, 2, -2
    between = 2 * (0 + 3) + 2 * (2 - 2)  # = 6
    within = 2 * 2 + 2 * (-1)  # = 2
    paper = drl_loss([h1, h2], y)
    assert paper.item() == pytest.approx(between / 4 - within / 2)
    code = drl_loss([h1, h2], y, form="code", norm="b_squared", within_weight=2.0)
    assert code.item() == pytest.approx(between / 9 + 2 * within / 9)


def test_drl_loss_without_same_class_pairs_has_no_within_term():
    y = torch.tensor([0, 1, 2])
    h = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, 1.0]])
    assert drl_loss([h], y).item() == pytest.approx(2 * (3 + 2 + 0) / 6)


def test_drl_loss_gradient_pushes_classes_apart():
    y = torch.tensor([0, 1])
    h = torch.tensor([[1.0, 0.5], [0.5, 1.0]], requires_grad=True)
    drl_loss([h], y).backward()
    step = h - 0.1 * h.grad
    assert (step[0] @ step[1]).item() < (h[0] @ h[1]).item()


def test_the_memory_keeps_its_quota_per_class_and_its_latest_examples():
    mem = ClassBalancedMemory(3, 2, (1, 1, 1), CPU, torch.Generator().manual_seed(0))
    y = torch.tensor([0] * 10 + [1] * 2)
    x = torch.arange(12, dtype=torch.float).view(-1, 1, 1, 1)
    mem.add(x, y, torch.zeros_like(y))
    held_x, held_y, _ = mem.contents()
    assert torch.bincount(held_y).tolist() == [3, 2] and len(mem) == 5
    assert set(held_x[held_y == 0].flatten().tolist()) == {7.0, 8.0, 9.0}
    assert set(held_x[held_y == 1].flatten().tolist()) == {10.0, 11.0}


def test_ber_draws_equally_from_every_class_in_memory():
    mem = ClassBalancedMemory(40, 4, (1, 1, 1), CPU, torch.Generator().manual_seed(1))
    sizes = [40, 25, 5, 12]  # unbalanced holdings
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    mem.add(torch.zeros(len(y), 1, 1, 1), y, torch.zeros_like(y))
    balanced = torch.cat([mem.y[ber_draw(mem, 10, "class")] for _ in range(400)])
    uniform = torch.cat([mem.y[uniform_with_replacement(mem, 10)] for _ in range(400)])
    counts = torch.bincount(balanced, minlength=4).numpy()
    assert counts.sum() == 4000 and stats.chisquare(counts).pvalue > 0.01
    # the same test rejects plain uniform replay, whose draws follow the holdings
    assert stats.chisquare(torch.bincount(uniform, minlength=4).numpy()).pvalue < 1e-6
    assert mem.valid()[ber_draw(mem, 10, "class")].all()


def test_ber_with_fewer_slots_than_classes_keeps_the_current_one():
    mem = ClassBalancedMemory(5, 8, (1, 1, 1), CPU, torch.Generator().manual_seed(2))
    y = torch.arange(8).repeat(2)
    mem.add(torch.zeros(16, 1, 1, 1), y, torch.zeros_like(y))
    current = torch.arange(8) == 6
    for _ in range(20):
        drawn = mem.y[ber_draw(mem, 3, "class", current)].tolist()
        assert 6 in drawn and len(set(drawn)) == 3


@pytest.mark.parametrize("variant,pairs", [("even", 0), ("ber1", 1), ("ber2", 3)])
def test_ber_variants_give_the_official_code_s_same_class_pairs(variant, pairs):
    """D5: with 6 slots and 8 classes, BER0/even draws 6 distinct classes, BER1 5 classes
    (one twice), BER2 3 classes twice each; the current class is always drawn."""
    mem = ClassBalancedMemory(5, 8, (1, 1, 1), CPU, torch.Generator().manual_seed(3))
    y = torch.arange(8).repeat(3)
    mem.add(torch.zeros(24, 1, 1, 1), y, torch.zeros_like(y))
    for _ in range(10):
        drawn = mem.y[ber_draw(mem, 6, "class", torch.arange(8) == 5, variant)]
        counts = torch.bincount(drawn, minlength=8)
        assert len(drawn) == 6 and counts[5] >= 1
        assert int((counts == 2).sum()) == pairs and int(counts.max()) <= 2


def test_ber_balances_over_tasks_when_asked():
    mem = ClassBalancedMemory(30, 4, (1, 1, 1), CPU, torch.Generator().manual_seed(4), n_tasks=2)
    y = torch.tensor([0] * 30 + [1] * 30 + [2] * 30 + [3] * 6)
    t = (y >= 3).long()  # task 0 holds classes 0-2 (90 examples), task 1 class 3 (6)
    mem.add(torch.zeros(len(y), 1, 1, 1), y, t)
    drawn = torch.cat([mem.t[ber_draw(mem, 8, "task")] for _ in range(100)])
    assert torch.bincount(drawn).tolist() == [400, 400]


def test_per_pair_gradient_similarities_match_a_loop_over_single_examples():
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [7, 5]}, (1, 2, 3), 3)
    x, y = torch.rand(6, 1, 2, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    grads = per_example_gradients(model, x, y, chunk=4)
    for i in range(6):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        single = torch.cat([p.grad.flatten() for p in model.parameters()])
        torch.testing.assert_close(grads[i], single, rtol=1e-5, atol=1e-6)
    pairs = pair_similarities(model, x, y)
    reference = torch.nn.functional.cosine_similarity(grads[2], grads[4], dim=0)
    k = [(int(a), int(b)) for a, b in zip(pairs["i"], pairs["j"])].index((2, 4))
    assert pairs["grad"][k].item() == pytest.approx(reference.item(), abs=1e-6)
    assert pairs["same"].sum().item() == 3 and len(pairs["grad"]) == 15
    assert torch.allclose(cosine_matrix(x).diagonal(), torch.ones(6, dtype=torch.float64))


def _context(n_classes=4, mask=None, n_tasks=2):
    return Context((1, 4, 4), n_classes, n_tasks, mask, CPU, torch.Generator().manual_seed(0))


HP = {"lr": 0.1, "model": {"name": "mlp", "hidden": [8]}, "replay.batch_size": 4,
      "replay.per_class": 3, "drl.lambda": 0.5, "drl.form": "paper", "drl.norm": "pairs",
      "drl.layers": "default", "ber.unit": "class"}


def test_shuffle_visits_the_old_memory_and_the_task_once_in_minibatches():
    method = METHODS["replay_drl"](_context(), {**HP, "replay.strategy": "shuffle"})
    seen = []
    method.train_on = lambda x, y, t: seen.append(x.flatten(1)[:, 0].clone())
    first = torch.arange(6, dtype=torch.float).view(-1, 1, 1, 1).expand(-1, 1, 4, 4) / 100
    labels = torch.tensor([0, 0, 1, 1, 0, 1])
    method.begin_task(0, TaskStream(first, labels))
    for lo in range(0, 6, 3):
        method.observe(first[lo:lo + 3], labels[lo:lo + 3], torch.zeros(3, dtype=torch.long))
    method.end_task(0)
    assert sorted(torch.cat(seen).tolist()) == pytest.approx(first[:, 0, 0, 0].tolist())
    old = sorted(method.memory.contents()[0][:, 0, 0, 0].tolist())
    seen.clear()
    second = first + 0.5
    method.begin_task(1, TaskStream(second, labels + 2))
    for lo in range(0, 6, 2):
        method.observe(second[lo:lo + 2], labels[lo:lo + 2] + 2, torch.ones(2, dtype=torch.long))
    method.end_task(1)
    visited = sorted(torch.cat(seen).tolist())
    assert visited == pytest.approx(sorted(old + second[:, 0, 0, 0].tolist()))
    assert [len(b) for b in seen[:-1]] == [4] * (len(seen) - 1)


@pytest.mark.parametrize("strategy", ["none", "shuffle", "er", "ber"])
def test_every_strategy_trains_with_drl_on_a_multi_head_stream(strategy):
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)
    method = METHODS["replay_drl"](_context(mask=mask), {**HP, "replay.strategy": strategy})
    gen = torch.Generator().manual_seed(3)
    seen = []
    for t in range(2):
        x = torch.rand(8, 1, 4, 4, generator=gen)
        y = torch.randint(2 * t, 2 * t + 2, (8,), generator=gen)
        seen.append(y)
        method.begin_task(t, TaskStream(x, y))
        for lo in range(0, 8, 4):
            method.observe(x[lo:lo + 4], y[lo:lo + 4], torch.full((4,), t))
        method.end_task(t)
    assert method.parameters_finite()
    held = torch.bincount(method.memory.contents()[1], minlength=4).tolist()
    offered = torch.bincount(torch.cat(seen), minlength=4).tolist()
    assert held == ([0] * 4 if strategy == "none" else [min(3, n) for n in offered])


def test_the_quick_stand_ins_have_the_spec_shapes():
    defs = protocol.benchmarks("quick", protocol.OPTION_DEFAULTS)
    settings = DataSettings()
    ni = materialize(prepare(defs["ni_fmnist@drl2020.quick"],
                             load_source("fashion_mnist", settings)), defs["ni_fmnist@drl2020.quick"], 0)
    assert [len(t.train_y) for t in ni.tasks] == [500] * 8
    assert [t.info["angle"] for t in ni.tasks] == [(k - 4) * 5.0 for k in range(8)]
    assert [t.info["brightness"] for t in ni.tasks] == pytest.approx([0.8 + 0.05 * k for k in range(8)])
    assert len(ni.eval_sets()) == 1 and len(ni.eval_sets()[0][1]) == 10000
    pair = defs["fmnist79@drl2020.quick"]
    bench = materialize(prepare(pair, load_source("fashion_mnist", settings)), pair, 0)
    assert bench.n_classes == 2 and set(bench.tasks[0].train_y.tolist()) == {0, 1}
    assert bench.input_shape == (1, 28, 28) and len(bench.tasks[0].train_y) == 1000
    nic = defs["nic_fmnist@drl2020.quick"]
    b = materialize(prepare(nic, load_source("fashion_mnist", settings)), nic, 0)
    classes = [int(t.classes[0]) for t in b.tasks]
    assert len(b.tasks) == 40 and min(np.bincount(classes, minlength=10)) >= 2


def test_the_full_plan_has_three_figure_seeds_and_the_quick_one_too():
    full = plan.build({"scale": "full", "papers": ["drl2020"]})
    # spec §7's 2 + 2 figure runs with 3 seeds (issue 20) + 3 x 12, + the lambda sweep: 3 tracks
    # x 2 backbones x 3 values (tuning runs)
    assert len(full.runs) == 48 + 18
    gpu = [r for r in full.runs.values() if r.resources["gpu"]]
    assert len(gpu) == 36 + 18 and {r.hp["model"]["backbone"] for r in gpu} == {"resnet50", "resnest50d"}
    assert all(r.hp["lr"] == 0.01 and "optimizer" not in r.hp for r in gpu)
    quick = plan.build({"scale": "quick", "papers": ["drl2020"]})
    assert len(quick.runs) == 30 + 9  # 12 figure runs (3 seeds) + 18 track runs + 9 tuning runs
    er = quick.run_job("results/runs/ni_fmnist@drl2020.quick/replay_drl/m200-e1+drl=true+replay=er/s0.json")
    assert er.hp["batch_size"] == er.hp["replay.batch_size"] == 32 and er.hp["drl.lambda"]["tuned_by"]
    assert er.hp["memory.update"] == "ring" and er.hp["ber.variant"] == "even"


# ----------------------------------------------------------------------------- CORe50 path

@pytest.fixture(scope="module")
def core50(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    build_core50_tree(base / "core50")
    return base


def _track_def(track: str, **kw) -> BenchmarkDef:
    n = {"ni": len(TRAIN_SESSIONS), "mtnc": len(MTNC_TASKS), "nic": len(TRAIN_SESSIONS) * N_OBJECTS}
    scenario = {"ni": "domain_incremental", "mtnc": "task_incremental", "nic": "class_incremental"}
    return BenchmarkDef(f"core50_{track}@test", "core50", kind="core50", track=track,
                        n_tasks=n[track], scenario=scenario[track], shared_test=track != "mtnc",
                        track_check_counts=False, **kw)


@pytest.mark.parametrize("track", ["ni", "mtnc", "nic"])
def test_a_prepared_track_decodes_into_its_batches_and_evaluation_sets(core50, tmp_path, track):
    settings = DataSettings(dir=core50, download=False)
    defn = _track_def(track)
    store.build(defn, settings, tmp_path / "t.pt")
    bench = materialize_track(store.load(defn, tmp_path / "t.pt"), defn, settings)
    assert bench.n_tasks == defn.n_tasks and bench.input_shape == (3, 8, 8)
    if track == "mtnc":
        assert [sorted(set(t.train_y.tolist())) for t in bench.tasks] == [[0, 1], [2, 3], [4, 5]]
        assert [sorted(set(y.tolist())) for _, y in bench.eval_sets()] == [[0, 1], [2, 3], [4, 5]]
    else:
        assert len(bench.eval_sets()) == 1 and len(bench.eval_sets()[0][1]) == 2 * N_OBJECTS * 2
    if track == "nic":
        assert all(len(set(t.train_y.tolist())) == 1 for t in bench.tasks)


def test_changed_lists_are_refused_by_the_job(tmp_path):
    base = tmp_path / "data"
    build_core50_tree(base / "core50")
    settings = DataSettings(dir=base, download=False)
    defn = _track_def("ni")
    store.build(defn, settings, tmp_path / "t.pt")
    lst = base / "core50" / "batches_filelists/NI_inc/run0/train_batch_00_filelist.txt"
    lst.write_text(lst.read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match="changed since"):
        materialize_track(store.load(defn, tmp_path / "t.pt"), defn, settings)


def test_a_pretrained_run_on_the_synthetic_track_uses_the_configured_weights(core50, tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "resnet50-random.pth"
    body = PretrainedBackbone("resnet50", 6).body.state_dict()
    torch.save({k: v for k, v in body.items() if not k.startswith("fc.")} | {
        "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}, weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    settings = DataSettings.from_config({"dir": str(core50), "download": False, "weights": {
        "resnet50": {"path": str(weights), "sha256": digest}}})
    defn = _track_def("ni")
    store.build(defn, settings, tmp_path / "t.pt")
    bench = materialize_track(store.load(defn, tmp_path / "t.pt"), defn, settings)
    spec = RunSpec(defn.name, "replay_drl", 0, 12, 1, (("backbone", "resnet50"), ("drl", True),
                                                       ("replay", "ber")))
    hp = {**protocol.hyperparams(RunSpec("core50_ni@drl2020", "replay_drl", 0, 12, 1,
                                         spec.overrides), {**protocol.OPTION_DEFAULTS, "drl.lambda": 1e-3}),
          "replay.per_class": 2}
    used = {}
    out = train_run(bench, METHODS["replay_drl"], hp, 0, 1, CPU, weights=weights_loader(settings, used),
                    **strategies.for_run(hp))
    assert out["status"] == "ok" and used["resnet50"]["sha256"] == digest
    wrong = DataSettings.from_config({"dir": str(core50), "weights": {
        "resnet50": {"path": str(weights), "sha256": "0" * 64}}})
    with pytest.raises(Exception, match="resnet50|sha256"):
        train_run(bench, METHODS["replay_drl"], hp, 0, 1, CPU, weights=weights_loader(wrong, {}))
