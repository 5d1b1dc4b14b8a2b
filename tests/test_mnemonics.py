"""Mnemonics (Liu et al. 2020): the bilevel meta-gradient, herding, metrics, class orders,
the phase trainer (resume), the class-incremental methods and the plan."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from clrepro import metrics, plan
from clrepro.data.benchmarks import BenchmarkDef, materialize, prepare
from clrepro.data.sources import synthetic
from clrepro import bilevel
from clrepro.bilevel import meta_gradient, unrolled
from clrepro.memory.exemplars import herding
from clrepro.methods import METHODS
from clrepro.papers.mnemonics2020 import classes
from clrepro.phases import train_phases
from clrepro.augment import crop_flip

CPU = torch.device("cpu")


def tiny_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def tiny_problem():
    g = torch.Generator().manual_seed(1)
    ex = torch.randn(4, 6, generator=g, dtype=torch.float64)
    ey = torch.tensor([0, 1, 2, 1])
    vx = torch.randn(9, 6, generator=g, dtype=torch.float64)
    vy = torch.randint(0, 3, (9,), generator=g)
    return ex, ey, vx, vy, [(vx[:5], vy[:5]), (vx[5:], vy[5:])]


def test_meta_gradient_matches_central_finite_differences():
    """d L_val(Theta_K(E)) / d E through K unrolled inner steps (Eqs. 8-9), float64, with
    the recomputed backward and inner mini-batches of 3 exemplars."""
    model = tiny_net().eval()
    ex, ey, vx, vy, batches = tiny_problem()

    def val_loss(e):
        params = unrolled(model, e, ey, steps=3, lr=0.3)
        return F.cross_entropy(torch.func.functional_call(model, params, (vx,)), vy).item()

    grad, loss = meta_gradient(model, ex, ey, batches, len(vy), steps=3, lr=0.3, inner_batch=3)
    assert loss.item() == pytest.approx(val_loss(ex), rel=1e-10)
    h = 1e-6
    for i, j in [(0, 0), (1, 3), (3, 5), (2, 2)]:
        up, down = ex.clone(), ex.clone()
        up[i, j] += h
        down[i, j] -= h
        numeric = (val_loss(up) - val_loss(down)) / (2 * h)
        assert grad[i, j].item() == pytest.approx(numeric, rel=1e-3, abs=1e-9)
    # truncation: only the last inner step stays in the graph -> a different gradient
    truncated, _ = meta_gradient(model, ex, ey, batches, len(vy), steps=3, lr=0.3, truncate_k=1)
    assert not torch.allclose(truncated, grad)


def tiny_conv_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                        nn.Flatten(), nn.Linear(3 * 4 * 4, 3)).double()
    with torch.no_grad():  # running statistics that are not the identity
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("net", ["mlp", "conv_bn"])
def test_recomputed_meta_gradient_equals_the_plain_one(net):
    """Gradient checkpointing of the unroll (and inner mini-batches) is exact: the same
    gradient as keeping the whole unrolled graph, float64, with and without truncation."""
    if net == "mlp":
        model, (ex, ey, _, _, batches) = tiny_net().eval(), tiny_problem()
    else:
        model, g = tiny_conv_net(), torch.Generator().manual_seed(2)
        ex = torch.rand(5, 1, 4, 4, generator=g, dtype=torch.float64)
        ey = torch.tensor([0, 1, 2, 0, 1])
        batches = [(torch.rand(7, 1, 4, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (7,), generator=g))]
    n_val = sum(len(y) for _, y in batches)
    for truncate in (None, 2):
        plain, plain_loss = meta_gradient(model, ex, ey, batches, n_val, steps=4, lr=0.5,
                                          truncate_k=truncate, recompute=False)
        assert plain.abs().max() > 1e-6
        for inner_batch in (None, 1, 3):
            rec, loss = meta_gradient(model, ex, ey, batches, n_val, steps=4, lr=0.5,
                                      truncate_k=truncate, inner_batch=inner_batch)
            torch.testing.assert_close(rec, plain, rtol=1e-10, atol=1e-13)
            assert loss.item() == pytest.approx(plain_loss.item(), rel=1e-12)


def test_meta_updates_lower_the_bilevel_objective():
    """A few meta-updates (Eq. 9) on the exemplars lower L_val(Theta_K(E)) -- the bilevel
    objective the record reports before and after."""
    model = tiny_net().eval()
    ex, ey, vx, vy, batches = tiny_problem()
    before = bilevel.objective(model, ex, ey, [(vx, vy)], len(vy), 3, 0.3)
    e = ex.clone()
    for _ in range(20):
        for batch in batches:  # one meta-update per validation mini-batch
            grad, _ = meta_gradient(model, e, ey, [batch], len(batch[1]), steps=3, lr=0.3)
            e -= 0.5 * grad
    after = bilevel.objective(model, e, ey, [(vx, vy)], len(vy), 3, 0.3)
    assert after < 0.99 * before


def test_saved_bytes_counted_on_the_meta_device_equal_real_tensors():
    """The memory plan's per-image count (meta device, nothing computed) is what autograd
    really saves for one inner step with its graph; ResNet-32 at 32x32 keeps 4.95 MB."""
    net = tiny_conv_net()
    for graph in (True, False):
        assert bilevel.saved_bytes_per_image(net, (1, 4, 4), 3, graph) == \
            bilevel.saved_bytes_per_image(net, (1, 4, 4), 3, graph, device="cpu") > 0
    from clrepro.papers.mnemonics2020 import memory

    for dataset, counted in memory.NETWORK_BYTES.items():  # the plan's kept counts are current
        assert memory.measure_network_bytes(dataset) == counted
    _, with_graph, plain = memory.NETWORK_BYTES["cifar100"]
    assert with_graph / 1e6 == pytest.approx(4.95, rel=0.01) and plain < with_graph


def test_every_full_scale_mnemonics_configuration_fits_80_gb():
    """Spec §4.5 (amended): CIFAR-100, ImageNet-Subset and ImageNet, N = 5/10/25, new and
    adjusted exemplars, all under 80 GB by the estimate -- where keeping the whole unroll
    would need hundreds of GB."""
    from clrepro.papers.mnemonics2020 import memory

    rows = memory.table(80)
    assert len(rows) == 18
    assert all(r["peak_gb"] <= 80 * memory.HEADROOM for r in rows)
    assert all(r["plain_unroll_gb"] > 200 for r in rows)
    imagenet = [r for r in rows if r["dataset"] == "imagenet"]
    assert all(r["inner_batch"] < r["exemplars"] for r in imagenet)  # mini-batched inner steps
    assert memory.inner_batch_plan("cifar100", 5, 80) is None  # CIFAR-100: full batch fits
    with pytest.raises(MemoryError, match="imagenet N=5"):
        memory.inner_batch_plan("imagenet", 5, 4)


def test_herding_follows_greedy_mean_matching_on_a_hand_checkable_case():
    feats = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 1.0], [1.0, -1.0], [5.0, 5.0]])
    # mean (1.8, 1.0): first the closest point (1, 1); then the one bringing the running mean
    # (of 2) closest to it: (1 + x) / 2 ~ (1.8, 1) -> x = (2.6, 1) -> (2, 0) at distance
    # |(1.5, 0.5) - (1.8, 1)| = 0.58 beats (5, 5) at 2.03 and (1, -1) at 1.14
    order = herding(feats, 5).tolist()
    assert order[:2] == [2, 1]
    assert sorted(order) == list(range(5)) and herding(feats, 2).tolist() == order[:2]


def test_average_incremental_accuracy_and_forgetting_by_hand():
    r = [[0.90, None, None], [0.70, 0.80, None], [0.50, 0.60, 0.90]]
    sizes = [200, 100, 100]
    a = metrics.incremental_accuracies(np.array(r, dtype=float), sizes)
    assert a == pytest.approx([0.90, (0.7 * 200 + 0.8 * 100) / 300, (0.5 * 200 + 60 + 90) / 400])
    assert metrics.average_incremental_accuracy(np.array(r, dtype=float), sizes) == pytest.approx(sum(a) / 3)
    assert metrics.forgetting_rate(np.array(r, dtype=float)) == pytest.approx(0.40)


def test_committed_class_orders_are_the_seed_1993_shuffles():
    for n, committed in ((10, classes.FMNIST_ORDER), (100, classes.CIFAR100_ORDER),
                         (1000, classes.IMAGENET_ORDER)):
        np.random.seed(1993)
        order = np.arange(n)
        np.random.shuffle(order)
        assert tuple(order.tolist()) == committed
    assert classes.CIFAR100_ORDER[:5] == (68, 56, 78, 8, 23)  # spec §4.1
    chosen = np.random.RandomState(1993).choice(1000, 100, replace=False)
    assert classes.IMAGENET_SUBSET_WNIDS == tuple(sorted(classes.IMAGENET_WNIDS[i] for i in chosen))
    assert list(classes.IMAGENET_WNIDS) == sorted(classes.IMAGENET_WNIDS)


def test_crop_flip_is_seeded_and_keeps_images_in_place():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    a = crop_flip(x, 2, True, torch.Generator().manual_seed(0))
    b = crop_flip(x, 2, True, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    assert torch.equal(crop_flip(x, 0, False, torch.Generator()), x)
    # each image is a 4x4 window of its zero-padded self at some offset; over 64 draws
    # the offsets vary (a crop that does nothing would always sit at (2, 2))
    many = x[:1].expand(64, 1, 4, 4)
    out = crop_flip(many, 2, False, torch.Generator().manual_seed(1))
    padded = F.pad(x[0], (2, 2, 2, 2))
    offsets = set()
    for img in out:
        hits = [(i, j) for i in range(5) for j in range(5) if torch.equal(img, padded[:, i:i + 4, j:j + 4])]
        assert hits
        offsets.add(hits[0])
    assert len(offsets) > 10 and (2, 2) in offsets


def bench():
    raw = synthetic("fmnist", (1, 28, 28), 10, train_per_class=12, test_per_class=6)
    defn = BenchmarkDef("cil@test", "fashion_mnist", "split", 3, "class_incremental",
                        classes_per_task=2, first_task_classes=4, class_order="list",
                        class_list=classes.FMNIST_ORDER, remap_labels=True)
    return materialize(prepare(defn, raw), defn, 0)


HP = {"lr": 0.05, "model": {"name": "resnet32_lucir", "blocks_per_stage": 1}, "batch_size": 32,
      "augment.crop_pad": 2, "augment.flip": True, "lr_schedule": {"milestones": [1], "gamma": 0.1},
      "optimizer": {"name": "sgd", "momentum": 0.9, "weight_decay": 5e-4},
      "exemplars.kind": "mnemonics", "exemplars.policy": "per_class", "exemplars.per_class": 4,
      "weight_transfer": True, "finetune.epochs": 1, "finetune.lr": 0.01, "finetune.batch_size": 16,
      "mnemonics.outer_epochs": 2, "mnemonics.inner_steps": 2, "mnemonics.inner_lr": 0.01,
      "mnemonics.lr": 0.01, "mnemonics.adjust_old": True, "mnemonics.init": "random",
      "mnemonics.mode": "bilevel", "lucir.lambda_base": 5.0, "lucir.k": 2, "lucir.margin": 0.5,
      "log.artifacts": True}


def test_class_order_and_phases_of_a_class_incremental_benchmark():
    b = bench()
    assert [t.classes.tolist() for t in b.tasks] == [[0, 1, 2, 3], [4, 5], [6, 7]]
    # labels are positions in the committed order: class 4 (position 0) is label 0
    assert set(b.tasks[1].train_y.tolist()) == {4, 5}


class Crash(RuntimeError):
    pass


def test_a_resumed_phase_trainer_ends_with_identical_metrics(tmp_path, monkeypatch):
    b = bench()
    reference = train_phases(b, METHODS["lucir"], HP, 0, 1, CPU)
    assert reference["status"] == "ok" and len(reference["R"]) == 3
    assert reference["R"][0][1] is None and reference["R"][2][2] is not None
    ckpt = tmp_path / "run.ckpt.pt"
    from clrepro.memory.mnemonics import MnemonicsProgram

    calls = {"n": 0}
    real = MnemonicsProgram.optimise_exemplars

    def crash_once(self, *args, **kwargs):  # die inside the second phase's exemplar work
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MnemonicsProgram, "optimise_exemplars", crash_once)
    with pytest.raises(Crash):
        train_phases(b, METHODS["lucir"], HP, 0, 1, CPU, checkpoint=ckpt)
    assert ckpt.is_file()
    monkeypatch.setattr(MnemonicsProgram, "optimise_exemplars", real)
    resumed = train_phases(b, METHODS["lucir"], HP, 0, 1, CPU, checkpoint=ckpt)
    assert resumed["timings"]["resumed"] == 1
    assert resumed["R"] == reference["R"]
    assert resumed["artifacts"].keys() == reference["artifacts"].keys()


@pytest.mark.parametrize("name,extra", [("lwf_cil", {"kd.lambda": 0.5, "kd.tau": 2.0,
                                                     "kd.form": "soft_targets_eq5"}),
                                        ("icarl_cil", {}), ("bic", {"kd.tau": 2.0,
                                                                    "bic.val_fraction": 0.1,
                                                                    "bic.epochs": 2, "bic.lr": 0.01}),
                                        ("lucir", {})])
def test_every_class_incremental_method_runs_and_keeps_its_budget(name, extra, monkeypatch):
    hp = {**HP, **extra, "exemplars.kind": "herding", "mnemonics.adjust_old": False,
          "weight_transfer": False, "finetune.epochs": 0}
    counts = {}
    real = METHODS[name].end_task

    def end_task(self, t, data=None):
        real(self, t, data)
        counts[t] = {c: len(e) for c, e in self.exemplars.items()}

    monkeypatch.setattr(METHODS[name], "end_task", end_task)
    out = train_phases(bench(), METHODS[name], hp, 0, 1, CPU)
    assert out["status"] == "ok" and all(r[0] is not None for r in out["R"])
    # every class seen so far keeps its 4 exemplars (BiC: 3, one is its validation part)
    per_class = 3 if name == "bic" else 4
    assert counts == {t: {c: per_class for c in range(n)} for t, n in ((0, 4), (1, 6), (2, 8))}


def test_weight_transfer_keeps_the_phase_0_convolutions():
    """The convolutions trained in phase 0 are frozen from phase 1 on: phase 1's training
    moves the scales (and BatchNorm), never the transferred kernels."""
    b = bench()
    lucir = METHODS["lucir"]
    from clrepro.methods.base import TaskStream
    from clrepro.loop import make_context

    method = lucir(make_context(b, CPU, 0, 1), {**HP, "exemplars.kind": "herding"})

    def train(t, steps=3):
        x, y = b.tasks[t].train_x[:32].float() / 255, b.tasks[t].train_y[:32]
        for _ in range(steps):
            method.observe(x, y, torch.full_like(y, t))

    conv = next(m for m in method.model.modules() if isinstance(m, nn.Conv2d))
    init = conv.weight.detach().clone()
    method.begin_task(0, TaskStream(b.tasks[0].train_x, b.tasks[0].train_y))
    train(0)
    trained = conv.weight.detach().clone()
    assert not torch.equal(trained, init)  # phase 0 trained the convolution
    method.begin_task(1, TaskStream(b.tasks[1].train_x, b.tasks[1].train_y))
    frozen = [m for m in method.model.modules() if type(m).__name__ == "TransferConv2d"]
    scale = frozen[0].scale.detach().clone()
    train(1)
    assert frozen and torch.equal(frozen[0].weight, trained)
    assert not torch.equal(frozen[0].scale.detach(), scale)  # phase 1 trained the scales
    assert method.model.head.n_old == 4 and method.model.head.n_new == 2


def test_the_full_plan_has_304_runs_on_gpus():
    p = plan.build({"scale": "full", "papers": ["mnemonics2020"]})
    assert len(p.runs) == 304  # spec §7: 120 + 124 + 60
    assert all(r.resources["gpu"] for r in p.runs.values())
    ours = p.run_job("results/runs/cifar100_b50_n5@mnemonics2020/lucir/m20-e160+variant=ours/s2.json")
    assert ours.hp["exemplars.kind"] == "mnemonics" and ours.hp["weight_transfer"]
    assert ours.hp["mnemonics.outer_epochs"] == 50 and ours.hp["lr_schedule"]["milestones"] == [80, 120]
    uppers = [r for r in p.runs.values() if r.spec.method == "joint_cil"]
    assert len(uppers) == 124 and len({r.spec.benchmark for r in uppers}) == 4


def test_a_grown_head_replaces_the_wrapped_networks_head():
    from clrepro.models import build_model

    model = build_model({"name": "resnet32_lucir", "blocks_per_stage": 1, "normalize": True},
                        (1, 14, 14), 5, input_norm=([0.5], [0.2]))
    model.head = nn.Linear(model.n_features, 7)
    assert model(torch.rand(2, 1, 14, 14)).shape == (2, 7)
    assert [n for n, _ in model.named_parameters() if n.startswith("head")] == []


def test_precision_and_weight_transfer_options_enter_the_protocol_only_when_set():
    path = "results/runs/cifar100_b50_n5@mnemonics2020/lucir/m20-e160+variant=ours/s0.json"
    default = plan.build({"scale": "full", "papers": ["mnemonics2020"]}).run_job(path)
    assert not {"precision", "weight_transfer.scale", "weight_transfer.shift"} & set(default.hp)
    options = {"precision": "bf16", "weight_transfer.scale": "filter"}
    changed = plan.build({"scale": "full", "papers": ["mnemonics2020"],
                          "options": {"mnemonics2020": options}}).run_job(path)
    assert changed.hp["precision"] == "bf16" and changed.hp["weight_transfer.scale"] == "filter"
    assert changed.protocol_hash != default.protocol_hash


def test_bf16_steps_and_per_filter_scales_train():
    hp = {**HP, "precision": "bf16", "weight_transfer.scale": "filter",
          "weight_transfer.shift": "all", "mnemonics.adjust_old": False}
    b = bench()
    out = train_phases(b, METHODS["lucir"], hp, 0, 1, CPU)
    assert out["status"] == "ok" and out["R"][1][1] is not None
    from clrepro.loop import make_context

    method = METHODS["lucir"](make_context(b, CPU, 0, 1), hp)
    method.restore_structure(1, "train")  # phase 1: the convolutions are transferred
    conv = next(m for m in method.model.modules() if type(m).__name__ == "TransferConv2d")
    assert conv.scale.shape == (conv.out_channels, 1, 1, 1) and conv.shift is not None
    with pytest.raises(ValueError, match="precision must be one of"):
        train_phases(b, METHODS["lucir"], {**hp, "precision": "fp16"}, 0, 1, CPU)


def test_a_bilevel_step_with_nan_exemplars_marks_the_run_diverged(monkeypatch):
    def nan_gradient(model, exemplars_, *args, **kwargs):
        return torch.full_like(exemplars_, float("nan")), torch.zeros(())

    monkeypatch.setattr(bilevel, "meta_gradient", nan_gradient)
    out = train_phases(bench(), METHODS["lucir"], HP, 0, 1, CPU)
    assert out["status"] == "diverged" and out["artifacts"] == {}
    assert "phase 1: mnemonics exemplars became non-finite (new, outer epoch 0)" in out["diverged"]


def counting_meta_gradient(monkeypatch):
    calls = []

    def fake(model, exemplars_, labels, validation, n_validation, *args, **kwargs):
        validation = list(validation)
        calls.append((len(exemplars_), [y.tolist() for _, y in validation], n_validation))
        return torch.zeros_like(exemplars_), torch.zeros(())

    monkeypatch.setattr(bilevel, "meta_gradient", fake)
    return calls


def test_one_meta_update_per_validation_mini_batch(monkeypatch):
    """Spec §4.5 (amended): an outer epoch is a pass over the (shuffled) validation data;
    each mini-batch gives one meta-update. Phase 0: 48 real images in batches of 16 ->
    3 meta-updates per epoch, 2 epochs; the record counts them."""
    calls = counting_meta_gradient(monkeypatch)
    hp = {**HP, "mnemonics.val_batch": 16, "mnemonics.adjust_old": False, "log.artifacts": False}
    out = train_phases(bench(), METHODS["lucir"], hp, 0, 1, CPU)
    phase0 = [c for c in calls if c[0] == 16]  # 4 classes x 4 exemplars
    assert len(phase0) == 2 * 3
    assert all(len(batches) == 1 and len(batches[0]) == 16 == n for _, batches, n in phase0)
    first_epoch = sorted(sum((b[0] for _, b, _ in phase0[:3]), []))
    assert first_epoch == sorted(bench().tasks[0].train_y.tolist())  # one pass over D_0
    assert len(set(phase0[0][1][0])) > 1  # shuffled: a mini-batch mixes classes
    log = out["details"]["exemplar_optimisation"]
    assert [(e["phase"], e["set"], e["meta_updates"]) for e in log] == \
        [(0, "new", 6), (1, "new", 2 * 2), (2, "new", 2 * 2)]  # 24 images: 2 batches
    assert all(e["not_moved"] and e["moved_grey_levels"] == 0 for e in log)  # zero gradient
    calls.clear()
    train_phases(bench(), METHODS["lucir"], {**hp, "mnemonics.schedule": "per_epoch"}, 0, 1, CPU)
    assert len([c for c in calls if c[0] == 16]) == 2  # the old option: one per pass


def test_exemplars_that_move_are_recorded_with_their_objective(monkeypatch):
    """A gradient of -1/255 per pixel and lr 1 moves every pixel by one grey level per
    meta-update (inside the valid range): the record says so, unflagged."""
    def fake(model, exemplars_, *args, **kwargs):
        return torch.full_like(exemplars_, -1 / 255), torch.zeros(())

    monkeypatch.setattr(bilevel, "meta_gradient", fake)
    hp = {**HP, "mnemonics.lr": 1.0, "mnemonics.adjust_old": False, "log.artifacts": False,
          "mnemonics.outer_epochs": 1}
    out = train_phases(bench(), METHODS["lucir"], hp, 0, 1, CPU)
    log = out["details"]["exemplar_optimisation"]
    assert log[0]["meta_updates"] == 1 and 0.3 < log[0]["moved_grey_levels"] <= 1.0 / 0.2 + 1e-6
    assert {"objective_before", "objective_after"} <= set(log[0])


def test_out_of_memory_ends_the_run_as_failed_with_its_reason(monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(bilevel, "meta_gradient", oom)
    out = train_phases(bench(), METHODS["lucir"], HP, 0, 1, CPU)
    assert out["status"] == "failed" and out["artifacts"] == {}
    assert out["failed"].startswith("phase 1: out of memory: CUDA out of memory")
    from clrepro.results import STATUSES

    assert "failed" in STATUSES

    def bug(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(bilevel, "meta_gradient", bug)  # not memory: a bug still raises
    with pytest.raises(RuntimeError, match="shapes"):
        train_phases(bench(), METHODS["lucir"], HP, 0, 1, CPU)


def test_one_inner_mini_batch_is_alive_at_a_time_in_the_recomputed_meta_gradient():
    """The working memory of the recomputed meta-gradient does not depend on how many inner
    mini-batches the exemplars fill: from one to two mini-batches only the meta-gradient's
    rows of the second are added (counted on meta tensors by the pre-flight's accounting). Found:
    the previous mini-batch's gradients (pixel-sized; of the previous inner step's last
    mini-batch too) were alive while the next one's graph was built -- the peak then
    depended on the size of a partial mini-batch, and the pre-flight's extrapolation over
    classes (two measurements whose last mini-batches differ) counted that as growing."""
    from clrepro.preflight import LiveBytes

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 16 * 16, 4)).to("meta").eval()
    chunk = 16

    def peak(n: int) -> int:
        tracker = LiveBytes("meta")
        with tracker:
            ex = torch.zeros(n, 3, 16, 16, device="meta")
            ey = torch.zeros(n, dtype=torch.long, device="meta")
            val = [(torch.zeros(8, 3, 16, 16, device="meta"), torch.zeros(8, dtype=torch.long, device="meta"))]
            before = tracker.live
            tracker.peak_during(lambda: meta_gradient(model, ex, ey, val, 8, steps=2, lr=0.1,
                                                      inner_batch=chunk))
            return tracker.peak - before

    image = 3 * 16 * 16 * 4
    for more in (chunk, chunk - 6):  # a second mini-batch, full or not: its gradient's rows
        grown = peak(chunk + more) - peak(chunk)
        assert grown == more * image, grown / (more * image)
