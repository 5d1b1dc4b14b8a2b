"""DRL + BER replay at the paper's scale (issue 20): the memory update, the step count of
every strategy, the shuffle batch of one, host synchronisation, uint8 storage."""

import io
import math

import numpy as np
import pytest
import torch
from scipy import stats

from clrepro.methods import METHODS, Context
from clrepro.methods.base import TaskStream
from clrepro.papers.drl2020 import protocol
from clrepro.spec import RunSpec
from clrepro.syncs import SyncCounter

CPU = torch.device("cpu")
HP = {"lr": 0.05, "model": {"name": "mlp", "hidden": [8]}, "replay.batch_size": 8,
      "replay.per_class": 5, "drl.lambda": 0.5, "drl.form": "paper", "drl.norm": "pairs",
      "drl.layers": "default", "ber.unit": "class"}


def _method(strategy="ber", n_classes=3, seed=0, shape=(1, 2, 2), **hp):
    ctx = Context(shape, n_classes, 2, None, CPU, torch.Generator().manual_seed(seed))
    return METHODS["replay_drl"](ctx, {**HP, "replay.strategy": strategy, **hp})


def _positions(n, shape=(1, 2, 2)):
    """Images that carry their stream position (exact in uint8: two base-256 digits)."""
    k = torch.arange(n)
    x = torch.zeros(n, *shape)
    x.view(n, -1)[:, 0], x.view(n, -1)[:, 1] = (k // 256).float() / 255, (k % 256).float() / 255
    return x


def _decode(x):
    flat = (x.reshape(len(x), -1)[:, :2] * 255).round().long()
    return (flat[:, 0] * 256 + flat[:, 1]).tolist()


# ------------------------------------------------------------------ 1. the memory update

def test_the_default_memory_keeps_each_class_s_latest_examples():
    """Amended §4.3 default (official models/buffer.py, per-class budget): a ring per class."""
    method = _method(n_classes=2)
    mem = method.memory
    y = torch.tensor([0, 1, 0, 0]).repeat(75)  # 225 of class 0, 75 of class 1
    x = _positions(len(y))
    for lo in range(0, len(y), 32):  # stream batches (a class repeats within one)
        mem.add(x[lo:lo + 32], y[lo:lo + 32], torch.zeros_like(y[lo:lo + 32]))
    held_x, held_y, _ = mem.contents()
    for c in (0, 1):
        latest = torch.nonzero(y == c).flatten()[-5:].tolist()
        assert sorted(_decode(held_x[held_y == c])) == latest


def test_reservoir_keeps_every_stream_position_equally_often():
    """memory.update = reservoir: after a long stream each position of a class survives
    with probability per_class / n_c. Chi-square over ten equal position bins, pooled over
    repeated streams; the same statistic rejects the ring (latest only)."""
    n, per_class, reps = 400, 5, 120
    counts = {"reservoir": np.zeros(10), "ring": np.zeros(10)}
    y = torch.zeros(n, dtype=torch.long)
    x = _positions(n)
    for update in counts:
        for r in range(reps):
            mem = _method(n_classes=1, seed=r, **{"memory.update": update}).memory
            for lo in range(0, n, 16):
                mem.add(x[lo:lo + 16], y[lo:lo + 16], y[lo:lo + 16])
            held = _decode(mem.contents()[0])
            assert len(held) == per_class
            counts[update] += np.bincount(np.array(held) * 10 // n, minlength=10)
    assert stats.chisquare(counts["reservoir"]).pvalue > 0.01
    assert stats.chisquare(counts["ring"]).pvalue < 1e-6


def test_an_unknown_memory_update_is_refused_by_name():
    with pytest.raises(ValueError, match="memory.update"):
        _method(**{"memory.update": "fifo"})


# ------------------------------------------------------ 2. one update per stream batch

def _count_steps(strategy, n=160, classes=4):
    """Optimiser steps and training-batch sizes of one strategy on the track protocol's
    batch sizes, over a stream of two tasks."""
    spec = RunSpec("ni_fmnist@drl2020.quick", "replay_drl", 0, 40, 1,
                   (("replay", strategy), ("drl", True)))
    hp = protocol.hyperparams(spec, {**protocol.OPTION_DEFAULTS, "drl.lambda": 1e-3})
    hp = {**hp, "model": {"name": "mlp", "hidden": [4]}, "optimizer": {"name": "sgd"}}
    ctx = Context((1, 2, 2), classes, 2, None, CPU, torch.Generator().manual_seed(0))
    method = METHODS["replay_drl"](ctx, hp)
    sizes = []
    step = method.opt.step
    method.opt.step = lambda *a, **k: (sizes.append(method._last), step(*a, **k))[1]
    train_on = method.train_on

    def record(x, y, t):
        method._last = len(y)
        train_on(x, y, t)
    method.train_on = record
    gen = torch.Generator().manual_seed(1)
    stream_batches = 0
    for t in range(2):
        x, y = torch.rand(n, 1, 2, 2, generator=gen), torch.randint(0, classes, (n,), generator=gen)
        method.begin_task(t, TaskStream(x, y))
        for lo in range(0, n, hp["batch_size"]):
            method.observe(x[lo:lo + hp["batch_size"]], y[lo:lo + hp["batch_size"]],
                           torch.full((len(y[lo:lo + hp["batch_size"]]),), t))
            stream_batches += 1
        method.end_task(t)
    return sizes, stream_batches, hp


def test_er_and_ber_make_one_update_per_stream_batch_on_equal_batches():
    er, er_batches, er_hp = _count_steps("er")
    ber, ber_batches, ber_hp = _count_steps("ber")
    assert er_hp["batch_size"] == ber_hp["batch_size"] == 32
    assert er_batches == ber_batches == 2 * math.ceil(160 / 32)
    assert len(er) == len(ber) == er_batches  # one update per stream batch, either strategy
    assert set(er) == set(ber) == {32}


def test_shuffle_makes_one_update_per_minibatch_of_memory_and_task():
    steps, _, hp = _count_steps("shuffle", classes=2)
    # task 0: 160 new examples, empty memory; task 1: the 2 x 20 held + 160 new
    expected = [32] * 5 + [32] * 6 + [8]
    assert steps == expected and hp["replay.batch_size"] == 32


# ----------------------------------------------------------- 3. a shuffle batch of one

def test_a_resnest_shuffle_run_survives_a_merged_set_of_one_more_than_a_batch():
    """|M| + |task| = 33 = 1 mod 32: the last mini-batch of one example joins the one before
    (timm's split-attention BatchNorm raises on a batch of one in training mode)."""
    pytest.importorskip("timm")
    from clrepro.models.pretrained import _make_body

    torch.manual_seed(0)
    ctx = Context((3, 32, 32), 2, 1, None, CPU, torch.Generator().manual_seed(0),
                  weights=lambda backbone: _make_body(backbone).state_dict())
    hp = {**HP, "model": {"name": "pretrained", "backbone": "resnest50d"},
          "replay.strategy": "shuffle", "replay.batch_size": 32, "drl.lambda": 0.0}
    method = METHODS["replay_drl"](ctx, hp)
    sizes = []
    train_on = method.train_on
    method.train_on = lambda x, y, t: (sizes.append(len(y)), train_on(x, y, t))
    x, y = torch.rand(33, 3, 32, 32), torch.arange(33) % 2
    method.begin_task(0, TaskStream(x, y))
    for lo in range(0, 33, 32):
        method.observe(x[lo:lo + 32], y[lo:lo + 32], torch.zeros(len(y[lo:lo + 32]), dtype=torch.long))
    method.end_task(0)
    assert sizes == [33] and method.parameters_finite()


# ------------------------------------------------------- 4. host synchronisation, uint8

@pytest.mark.parametrize("strategy", ["er", "ber", "shuffle"])
def test_replay_steps_with_drl_force_no_host_synchronisation(strategy):
    method = _method(strategy, n_classes=4, **{"replay.per_class": 3})
    gen = torch.Generator().manual_seed(2)
    x, y = torch.rand(40, 1, 2, 2, generator=gen), torch.randint(0, 4, (40,), generator=gen)
    t = torch.zeros(40, dtype=torch.long)
    # from the task's start, so that the counter knows the host-side bookkeeping tensors
    with SyncCounter(where=True) as counter:  # clrepro.syncs: what would stall a GPU
        method.begin_task(0, TaskStream(x, y))
        for lo in range(0, 16, 8):  # warm-up: fill part of the memory
            method.observe(x[lo:lo + 8], y[lo:lo + 8], t[lo:lo + 8])
        counter.reset()
        for lo in range(16, 40, 8):
            method.observe(x[lo:lo + 8], y[lo:lo + 8], t[lo:lo + 8])
    assert counter.total == 0, dict(counter.counts.where)


def test_uint8_images_are_stored_as_uint8_and_drawn_exactly():
    method = _method("ber", n_classes=3, shape=(1, 4, 4), **{"replay.per_class": 4})
    raw = torch.randint(0, 256, (12, 1, 4, 4), dtype=torch.uint8)
    y = torch.arange(12) % 3
    method.begin_task(0, TaskStream(raw, y))
    x = raw.float() / 255  # what the loop passes to observe
    method.observe(x, y, torch.zeros(12, dtype=torch.long))
    mem = method.memory
    assert mem.x.dtype == torch.uint8
    stored, labels, _ = mem.contents()
    assert sorted(map(tuple, stored.flatten(1).tolist())) == sorted(map(tuple, raw.flatten(1).tolist()))
    bx, _, _ = mem.batch(torch.arange(len(mem.x) - 1))
    assert bx.dtype == torch.float32
    valid = mem.valid()[:-1]
    assert torch.equal(bx[valid], mem.x[:-1][valid].float() / 255)
    # a checkpoint of the memory keeps uint8 (weights_only) and its contents
    buf = io.BytesIO()
    torch.save(method.state_dict(), buf)
    buf.seek(0)
    other = _method("ber", n_classes=3, shape=(1, 4, 4), **{"replay.per_class": 4})
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert other.memory.x.dtype == torch.uint8 and torch.equal(other.memory.x, mem.x)
    assert torch.equal(other.memory.contents()[1], labels)
    assert method.memory_bytes()["data_storage"] < 4 * 4 * 16 * 13 // 2  # not float32


# ------------------------------------------------------------- 7. tests that assert more

def test_drl_loss_by_hand_with_three_classes_and_both_terms():
    from clrepro.methods.drl import drl_loss

    y = torch.tensor([0, 0, 1, 1, 2])
    h1 = torch.tensor([[1.0], [2.0], [3.0], [-1.0], [2.0]])
    h2 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    # ordered pairs: 20 in all, 4 same-class ((0,1), (2,3) both ways), 16 different-class.
    # layer 1: all ordered pairs sum (sum h)^2 - sum h^2 = 49 - 19 = 30; same-class
    #   2 * (1*2) + 2 * (3*-1) = -2; different-class 32.
    # layer 2: (4, 2).(4, 2) - (1 + 1 + 2 + 4 + 0) = 12; same-class 2 * 0 + 2 * 2 = 4;
    #   different-class 8.
    # L_bt = (32 + 8) / 16 = 2.5, L_wi = (-2 + 4) / 4 = 0.5
    assert drl_loss([h1, h2], y).item() == pytest.approx(2.5 - 0.5)
    # official code form and normalisation: (40 + 2 * 2) / 25
    assert drl_loss([h1, h2], y, form="code", norm="b_squared").item() == pytest.approx(44 / 25)


def _recording(method):
    batches = []
    train_on = method.train_on
    method.train_on = lambda x, y, t: (batches.append((x.clone(), y.clone())), train_on(x, y, t))
    return batches


def _held_classes_then_new(method, n_old=3, per_class=5):
    x = torch.rand(n_old * per_class, 1, 2, 2) + 10  # old images: values above 10
    y = torch.arange(n_old).repeat_interleave(per_class)
    method.memory.add(x, y, torch.zeros_like(y))
    new_x = -torch.rand(4, 1, 2, 2)  # the stream batch: negative values, a new class 3
    return new_x, torch.full((4,), 3)


def test_er_trains_on_16_current_then_16_other_classes_after_adding_the_batch():
    method = _method("er", n_classes=4, **{"replay.batch_size": 32})
    batches = _recording(method)
    new_x, new_y = _held_classes_then_new(method)
    method.observe(new_x, new_y, torch.zeros(4, dtype=torch.long))
    (bx, by), = batches
    assert len(by) == 32 and by[:16].eq(3).all() and (by[16:] < 3).all()
    # class 3 had nothing stored: its 16 come from the stream batch, already in memory
    assert (bx[:16] < 0).all() and (bx[16:] > 10).all()
    assert len(method.memory) == 15 + 4


def test_ber_adds_the_stream_batch_before_its_balanced_draw():
    method = _method("ber", n_classes=4, **{"replay.batch_size": 8})
    batches = _recording(method)
    new_x, new_y = _held_classes_then_new(method)
    method.observe(new_x, new_y, torch.zeros(4, dtype=torch.long))
    (bx, by), = batches
    assert torch.bincount(by, minlength=4).tolist() == [2, 2, 2, 2]
    assert (bx[by == 3] < 0).all()  # drawn from the batch just added


def test_pretrained_weights_and_imagenet_normalisation_reach_the_model():
    """representations() of the suite's model equals torchvision's own ResNet-50 forward on
    the same weights with ImageNet-normalised input (pooled features and logits)."""
    from torchvision.models import resnet50

    from clrepro.models import build_model
    from clrepro.models.pretrained import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    reference = resnet50(weights=None).eval()
    state = reference.state_dict()
    model = build_model({"name": "pretrained", "backbone": "resnet50"}, (3, 32, 32), 1000,
                        weights=lambda backbone: state).eval()
    model.head.load_state_dict(reference.fc.state_dict())
    x = torch.rand(2, 3, 32, 32)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        reps = model.representations(x)
        logits = reference((x - mean) / std)
        reference.fc = torch.nn.Identity()
        features = reference((x - mean) / std)
        unnormalised = reference(x)
    torch.testing.assert_close(reps["features"], features, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(reps["logits"], logits, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(reps["features"], unnormalised, rtol=1e-3, atol=1e-4)


def test_a_state_dict_with_the_published_resnest50_key_set_loads_strictly():
    """The key set of timm's resnest50d, which timm defined to load the published file
    resnest50-528c19ca.pth (476 keys; 405 without BatchNorm's num_batches_tracked, which a
    file may lack), loads strictly; a missing or an extra key is refused."""
    timm = pytest.importorskip("timm")
    from clrepro.models.pretrained import PretrainedBackbone

    state = timm.create_model("resnest50d", pretrained=False).state_dict()
    assert len(state) == 476 and "fc.weight" in state
    assert "layer1.0.conv2.fc1.weight" in state and "layer1.0.conv2.bn0.weight" in state  # split attention
    model = PretrainedBackbone("resnest50d", 4, state_dict=state)
    assert torch.equal(model.body.layer4[2].conv3.weight, state["layer4.2.conv3.weight"])
    older = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert len(older) == 405
    PretrainedBackbone("resnest50d", 4, state_dict=older)
    missing = {k: v for k, v in state.items() if k != "layer1.0.conv2.fc1.weight"}
    with pytest.raises(RuntimeError, match="Missing key"):
        PretrainedBackbone("resnest50d", 4, state_dict=missing)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        PretrainedBackbone("resnest50d", 4, state_dict={**state, "extra.weight": torch.zeros(1)})


# ------------------------------------------------------------------ 6. peak memory per run

def test_a_run_s_peak_memory_is_its_own_not_the_process_s():
    """A batch job trains several runs in one process: the peak is reset at a run's start.
    Measured in a fresh process, whose resident set is small (in this test process, earlier
    tests may keep it near its peak)."""
    import subprocess
    import sys
    from pathlib import Path

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("resetting the resident-set peak needs Linux /proc")
    probe = ("import torch\n"
             "from clrepro.loop import peak_memory, reset_peak_memory\n"
             "cpu = torch.device('cpu')\n"
             "big = torch.ones(200 * 2**20 // 4)\n"
             "big += 1  # touch 200 MiB\n"
             "del big\n"
             "before = peak_memory(cpu)['host_rss_mib']\n"
             "reset_peak_memory(cpu)\n"
             "print(before, peak_memory(cpu)['host_rss_mib'])\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before, after = map(float, out.stdout.split())
    assert after < before - 150
