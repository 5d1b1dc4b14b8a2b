"""Cost of DRL: one training step of ER + DRL relative to plain ER on the same batches (the
paper calls DRL "relatively cheap" next to gradient re-projection), and A-GEM's projection
(a reference gradient over memory, then the projected step) on the same model.

    python bench/drl_cost.py [--model mlp|small_cnn] [--steps 200] [--threads 1] [--device cpu]

ER and ER + DRL add each 16-example stream batch to the class-balanced memory and train on
32 examples, 16 from the current classes' buffers and 16 from the others (spec §4.3, the
official code's ER); A-GEM takes a 16-example stream step projected against a 16-example
reference gradient. Best of
--repeats, every method timed in this process on the same synthetic Fashion-MNIST-shaped
batches with a full memory.
"""

from __future__ import annotations

import argparse

import torch

from clrepro.methods import METHODS, Context

from stepping import best_observe_seconds  # bench/stepping.py

HALF = 16


def hp(model: str, drl: float) -> dict:
    spec = {"name": "mlp", "hidden": [100, 100]} if model == "mlp" else {"name": "small_cnn"}
    return {"lr": 0.01, "model": spec, "memory": 200, "replay.strategy": "er",
            "replay.batch_size": 2 * HALF, "replay.per_class": 20, "drl.lambda": drl,
            "drl.form": "paper", "drl.norm": "pairs", "drl.layers": "default", "ber.unit": "class",
            "agem.reference_size": HALF}


def seconds(name: str, params: dict, batches: list, device: torch.device, repeats: int) -> float:
    def make():
        ctx = Context((1, 28, 28), 10, 1, None, device, torch.Generator().manual_seed(0), seed=0)
        method = METHODS[name](ctx, params)
        method.begin_task(0)
        for x, y in batches[:20]:  # fill the memory first (not timed)
            method.memory.add(x, y, torch.zeros_like(y))
        return method

    return best_observe_seconds(make, batches, 0, device, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mlp", choices=["mlp", "small_cnn"])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.rand(HALF, 1, 28, 28, generator=gen).to(device),
                torch.randint(0, 10, (HALF,), generator=gen).to(device)) for _ in range(args.steps)]
    er = seconds("replay_drl", hp(args.model, 0.0), batches, device, args.repeats)
    drl = seconds("replay_drl", hp(args.model, 1e-3), batches, device, args.repeats)
    agem = seconds("agem", hp(args.model, 0.0), batches, device, args.repeats)
    print(f"{args.model} on {device}, {args.steps} steps, ms per step:")
    print(f"  ER        {1000 * er / args.steps:7.2f}")
    print(f"  ER + DRL  {1000 * drl / args.steps:7.2f}   ratio to ER {drl / er:.2f}")
    print(f"  A-GEM     {1000 * agem / args.steps:7.2f}   ratio to ER {agem / er:.2f}")
    print(f"  DRL's extra cost relative to A-GEM's: {(drl - er) / max(agem - er, 1e-12):.2f} "
          f"(time above ER's)")


if __name__ == "__main__":
    main()
