"""Cost of Batch-level Distillation: one BLD step relative to one Finetune step on the same
batches (the paper's accounting: about 5 forward/backward passes per view for BLD -- warm-up
plus two joint steps -- against Finetune's two steps), and views processed as separate
passes (the paper) against stacked into one pass (`bld.batch_views`).

    python bench/bld_cost.py [--views 5] [--batches 20] [--width 8] [--threads 1] [--device cpu]

Synthetic 3x32x32 batches of 20 images on a ResNet-18 of the given base width; every
method is timed in this process, on the same batches, at the second of two tasks (so BLD
distils); best of --repeats.
"""

from __future__ import annotations

import argparse

import torch

from clrepro.methods import METHODS, Context
from clrepro.papers.bld2020 import protocol as P

from stepping import best_observe_seconds  # bench/stepping.py


def hp(views: int, width: int, stacked: bool) -> dict:
    """The paper module's hyperparameters (MNIST augmentation), at this bench's views and width."""
    return {"lr": P.LR, "model": {"name": "resnet18", "nf": width}, "batch_size": P.BATCH,
            "eval_every": 10**9, "augment": {"views": views, **P.AUGMENT["mnist"]},
            "bld.batch_reduction": "sum", "bld.batch_views": stacked, "bld.lambda": P.LAMBDA,
            "bld.tau": P.TAU, "bld.lr_warmup": P.LR_WARMUP, "bld.joint_steps": P.JOINT_STEPS,
            "bld.norm_granularity": "tensor", "finetune.steps": 2, "l2.mu": P.L2_MU_GRID[1]}


def seconds(name: str, params: dict, batches: list, device: torch.device, repeats: int) -> float:
    def make():
        mask = torch.zeros(2, 10, dtype=torch.bool, device=device)
        mask[0, :5], mask[1, 5:] = True, True
        ctx = Context((3, 32, 32), 10, 2, mask, device, torch.Generator().manual_seed(0), seed=0)
        method = METHODS[name](ctx, params)
        method.begin_task(0)
        method.begin_task(1)  # the second task: BLD distils
        return method

    return best_observe_seconds(make, batches, 1, device, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--views", type=int, default=5)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(20, 3, 32, 32, generator=g).to(device),
                (5 + torch.randint(0, 5, (20,), generator=g)).to(device)) for _ in range(args.batches)]
    times = {}
    for name in ("mc_finetune", "bld", "batch_l2"):
        for stacked in (False, True):
            t = seconds(name, hp(args.views, args.width, stacked), batches, device, args.repeats)
            times[name, stacked] = t
            print(f"{name:12s} {'stacked ' if stacked else 'separate'} views: {t:7.2f} s "
                  f"({1000 * t / args.batches:.0f} ms per batch of 20 x {args.views} views)")
    ratio = times["bld", False] / times["mc_finetune", False]
    print(f"BLD / Finetune (separate views)  = {ratio:.2f}   "
          f"(pass count: BLD 3 forward + 5 backward per view, Finetune 2 + 2 -> about 2.0)")
    print(f"L2 / Finetune (separate views)   = {times['batch_l2', False] / times['mc_finetune', False]:.2f}")
    for name in ("mc_finetune", "bld"):
        print(f"{name}: separate / stacked views = {times[name, False] / times[name, True]:.2f}")


if __name__ == "__main__":
    main()
