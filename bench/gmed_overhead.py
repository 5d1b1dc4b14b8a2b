"""Cost of memory editing: ER+GMED (and MIR+GMED) training time relative to ER (and MIR),
timed in one process on the same Split stream. The GMED paper reports about 1.5x.

    python bench/gmed_overhead.py [--tasks 5] [--per-task 1000] [--threads 1] [--device cpu]

Data: Fashion-MNIST if installed (the quick stand-in for Split MNIST), otherwise synthetic
images of the same shape. Training time only (evaluation excluded); best of --repeats.
"""

from __future__ import annotations

import argparse

import torch

from clrepro.data.benchmarks import BenchmarkDef, materialize, prepare
from clrepro.data.sources import DataSettings, load_source
from clrepro.methods import METHODS
from clrepro.papers.gmed2021.protocol import TABLE1
from clrepro.train import train_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=5)
    ap.add_argument("--per-task", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    defn = BenchmarkDef("split@bench", "fashion_mnist", "split", args.tasks, "class_incremental",
                        classes_per_task=10 // args.tasks, train_per_task=args.per_task)
    try:
        raw = load_source("fashion_mnist", DataSettings(download=False))
    except FileNotFoundError:
        raw = load_source("fashion_mnist", DataSettings(synthetic=True))
        print("Fashion-MNIST not installed: synthetic images of the same shape")
    bench = materialize(prepare(defn, raw), defn, run_seed=0)
    alpha, beta = TABLE1["split_mnist"]
    hp = {"lr": 0.05, "batch_size": 10, "eval_every": 10**9, "memory": 500,
          "model": {"name": "mlp", "hidden": [400, 400], "init": "default"},
          "replay.batch_size": 10, "replay.iterations": 1, "er.loss": "union_mean",
          "mir.candidates": 50, "gmed.alpha": alpha, "gmed.beta": beta, "gmed.reg_sign": "paper",
          "gmed.edit_reduction": "mean", "gmed.clip": False, "gmed.edit_schedule": "per_iteration"}
    device = torch.device(args.device)
    times = {}
    for name in ("er", "er_gmed", "mir", "mir_gmed"):
        times[name] = min(train_run(bench, METHODS[name], hp, 0, 1, device)["timings"]["train_s"]
                          for _ in range(args.repeats))
        print(f"{name:10s} {times[name]:7.2f} s")
    print(f"ER+GMED / ER   = {times['er_gmed'] / times['er']:.2f}   (paper: about 1.5)")
    print(f"MIR+GMED / MIR = {times['mir_gmed'] / times['mir']:.2f}")


if __name__ == "__main__":
    main()
