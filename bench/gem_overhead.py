"""Throughput of the training loop, measured against references timed in the same process.

On one 20-task permuted stream (GEM's perm_mnist protocol shape: 1,000 examples per task,
mini-batches of 10, MLP 784-100-100-10, 256 memory slots per task) this times:

  (a) bare:   a plain PyTorch SGD loop over the stream's mini-batches
  (b) single: clrepro's loop + the `single` method on the same stream
  (c) gem:    clrepro's loop + GEM
  (d) floor:  what GEM cannot avoid: per step one forward/backward over all previous
              tasks' memories as a single batch, plus the stream step

and prints single/bare (target <= 1.1) and gem/floor (target <= 1.5). Training time only;
evaluation time is reported on its own line. Data: Fashion-MNIST if installed, otherwise
synthetic images of the same shape (the timings do not depend on the pixel values).

    python bench/gem_overhead.py [--tasks 20] [--per-task 1000] [--memory 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from clrepro.data.benchmarks import BenchmarkDef, materialize, prepare
from clrepro.data.sources import DataSettings, load_source
from clrepro.data.transforms import as_float
from clrepro.methods import METHODS
from clrepro.models import build_model
from clrepro.train import build_phases, train_run

MODEL = {"name": "mlp", "hidden": [100, 100], "init": "xavier"}


def stream(args):
    defn = BenchmarkDef("perm@bench", "fashion_mnist", "permuted", args.tasks, "domain_incremental",
                        train_per_task=args.per_task, test_per_task=1000)
    try:
        raw = load_source("fashion_mnist", DataSettings(download=False))
    except FileNotFoundError:
        raw = load_source("fashion_mnist", DataSettings(synthetic=True))
        print("Fashion-MNIST not installed: synthetic images of the same shape")
    return materialize(prepare(defn, raw), defn, run_seed=0)


def batches(bench, batch_size):
    """The exact mini-batches (x, y, task) clrepro's loop feeds, in order."""
    all_x = as_float(torch.cat([t.train_x for t in bench.tasks]))
    all_y = torch.cat([t.train_y for t in bench.tasks])
    out = []
    for phase in build_phases(bench, "tasks", 1, seed=0):
        x, y = all_x[phase.order], all_y[phase.order]
        out += [(x[i:i + batch_size], y[i:i + batch_size], phase.task)
                for i in range(0, len(y), batch_size)]
    return out


def time_bare(bench, data, lr):
    torch.manual_seed(0)
    model = build_model(MODEL, bench.input_shape, bench.n_classes)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    start = time.perf_counter()
    for x, y, _ in data:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return time.perf_counter() - start


def time_floor(bench, data, lr, per_task):
    """One batched forward/backward over every previous task's memory, plus the stream step."""
    torch.manual_seed(0)
    model = build_model(MODEL, bench.input_shape, bench.n_classes)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    mem_x = torch.zeros(bench.n_tasks, per_task, *bench.input_shape)
    mem_y = torch.zeros(bench.n_tasks, per_task, dtype=torch.long)
    filled = [0] * bench.n_tasks
    start = time.perf_counter()
    for x, y, t in data:
        slots = (filled[t] + torch.arange(len(y))) % per_task
        mem_x[t, slots], mem_y[t, slots] = x, y
        filled[t] += len(y)
        if t > 0:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(mem_x[:t].flatten(0, 1)), mem_y[:t].flatten()).backward()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return time.perf_counter() - start


def time_method(bench, name, args):
    hp = {"lr": 0.1, "batch_size": 10, "eval_every": 10**9, "model": MODEL,
          "memory": args.memory * args.tasks, "gem.margin": 0.5, "gem.margin_mode": "additive",
          "gem.qp_eps": 1e-3, "gem.memory_policy": "last_m"}
    out = train_run(bench, METHODS[name], hp, seed=0, epochs=1, device=torch.device("cpu"))
    return out["timings"]["train_s"], out["timings"]["eval_s"], out["counters"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--per-task", type=int, default=1000)
    ap.add_argument("--memory", type=int, default=256, help="GEM slots per task")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="fast timings: best of N")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bench = stream(args)
    data = batches(bench, 10)
    print(f"stream: {args.tasks} tasks x {args.per_task} examples, {len(data)} mini-batches, "
          f"GEM memory {args.memory}/task, {args.threads} thread(s)")
    bare = min(time_bare(bench, data, 0.1) for _ in range(args.repeats))
    single = min(time_method(bench, "single", args)[0] for _ in range(args.repeats))
    floor = time_floor(bench, data, 0.1, args.memory)
    gem, gem_eval, counters = time_method(bench, "gem", args)
    print(f"(a) bare SGD loop      {bare:8.2f} s")
    print(f"(b) single (clrepro)   {single:8.2f} s")
    print(f"(d) GEM floor          {floor:8.2f} s")
    print(f"(c) GEM (clrepro)      {gem:8.2f} s   projections {counters.get('projections', 0)}, "
          f"QP retries {counters.get('qp_retries', 0)}, QP failures {counters.get('qp_failures', 0)}")
    print(f"    GEM evaluation time {gem_eval:.2f} s (not included above)")
    print(f"single / bare = {single / bare:.3f}   (target <= 1.1)")
    print(f"GEM / floor   = {gem / floor:.3f}   (target <= 1.5)")


if __name__ == "__main__":
    main()
