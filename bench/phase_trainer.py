"""Throughput of the phase trainer (clrepro.phases) against a bare PyTorch loop that trains
the same LUCIR ResNet-32 on the same images with the same augmentation, optimiser and batch
size (target: at least 0.9x), and the cost of one mnemonics bilevel step (Eqs. 8-9) in
inner-step equivalents, per meta-update: over all images (the old schedule) and over one
mini-batch (the amended one), with the whole unroll kept and recomputed.

    python bench/phase_trainer.py [--images 2000] [--epochs 2] [--blocks 5] [--threads 1] [--device cpu]

Synthetic 3x32x32 images of 10 classes (one phase); both loops are timed in this process,
alternately, best of --repeats.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from clrepro.data.benchmarks import BenchmarkDef, materialize, prepare
from clrepro.data.sources import synthetic
from clrepro.bilevel import meta_gradient
from clrepro.methods import METHODS
from clrepro.models import build_model
from clrepro.phases import train_phases
from clrepro.augment import crop_flip


def hp(blocks: int) -> dict:
    return {"lr": 0.1, "model": {"name": "resnet32_lucir", "blocks_per_stage": blocks},
            "batch_size": 128, "augment.crop_pad": 4, "augment.flip": True,
            "optimizer": {"name": "sgd", "momentum": 0.9, "weight_decay": 5e-4},
            "exemplars.kind": "random", "exemplars.policy": "per_class", "exemplars.per_class": 0,
            "weight_transfer": False, "finetune.epochs": 0, "finetune.lr": 0.01,
            "finetune.batch_size": 128, "eval_batch_size": 1000}


def bare_loop(x: torch.Tensor, y: torch.Tensor, epochs: int, blocks: int, device) -> float:
    model = build_model({"name": "resnet32_lucir", "blocks_per_stage": blocks, "head": "linear"},
                        (3, 32, 32), 10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = x.to(device), y.to(device)
    start = time.perf_counter()
    for e in range(epochs):
        gen = torch.Generator().manual_seed(e)
        order = torch.randperm(len(y), generator=gen).to(device)
        for lo in range(0, len(y), 128):
            idx = order[lo:lo + 128]
            xb = crop_flip(x[idx].float() / 255, 4, True, gen)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), y[idx]).backward()
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def report_loops(n: int, bare: float, ours: float) -> None:
    print(f"bare loop     {n / bare:8.1f} images/s ({bare:.2f} s)")
    print(f"phase trainer {n / ours:8.1f} images/s ({ours:.2f} s)")
    print(f"phase trainer / bare = {bare / ours:.2f}   (target >= 0.9)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--bilevel-only", action="store_true", help="skip the loop comparison")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    per_class = args.images // 10
    raw = synthetic("cifar", (3, 32, 32), 10, train_per_class=per_class, test_per_class=10)
    defn = BenchmarkDef("bench@phases", "cifar10", "split", 1, "class_incremental",
                        classes_per_task=10)
    bench = materialize(prepare(defn, raw), defn, 0)
    task = bench.tasks[0]
    bare = ours = float("inf")
    # alternated, so that a busy spell hits both loops alike
    for _ in range(0 if args.bilevel_only else args.repeats):
        bare = min(bare, bare_loop(task.train_x, task.train_y, args.epochs, args.blocks, device))
        ours = min(ours, train_phases(bench, METHODS["joint_cil"], hp(args.blocks), 0, args.epochs,
                                      device)["timings"]["train_s"])
    n = len(task.train_y) * args.epochs
    if not args.bilevel_only:
        report_loops(n, bare, ours)

    # the bilevel step (Eqs. 8-9): K inner steps on 200 exemplars, then the validation loss
    # back-propagated to the pixels. Amended schedule: one meta-update per validation
    # mini-batch of 128 (recomputed unroll); the old default: one per pass over all images.
    model = build_model({"name": "resnet32_lucir", "blocks_per_stage": args.blocks}, (3, 32, 32),
                        10).to(device).eval()
    ex = task.train_x[:200].float().to(device) / 255
    ey = task.train_y[:200].to(device)
    vx, vy = task.train_x.float().to(device) / 255, task.train_y.to(device)
    val = [(vx[i:i + 128], vy[i:i + 128]) for i in range(0, len(vy), 128)]
    k = 10
    start = time.perf_counter()
    for _ in range(k):  # the same inner steps, first order, no graph kept
        xe = ex.detach()
        loss = F.cross_entropy(model(xe), ey)
        torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
    inner = (time.perf_counter() - start) / k
    cases = [("one meta-update per pass over all images, whole unroll kept (old default)", val, False),
             ("one meta-update per pass over all images, recomputed", val, True),
             ("one meta-update per mini-batch of 128, whole unroll kept", val[:1], False),
             ("one meta-update per mini-batch of 128, recomputed (default)", val[:1], True)]
    for what, batches, recompute in cases:
        n = sum(len(y) for _, y in batches)
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            meta_gradient(model, ex, ey, batches, n, steps=k, lr=0.01, recompute=recompute)
            best = min(best, time.perf_counter() - start)
        print(f"bilevel step, {k} inner steps on 200 exemplars, {what}: {best:.2f} s = "
              f"{best / inner:.1f} inner-step equivalents")


if __name__ == "__main__":
    main()
