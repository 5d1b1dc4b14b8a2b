"""One command that checks a GPU (issue 22): for each paper, its heaviest run class (the GPU run
with the largest input x batch) trained a few steps at full-scale shapes on the device --

  step time     median of the timed steps (after one warm-up step), device synchronised
  peak memory   torch.cuda.max_memory_allocated beside the pre-flight estimate (clrepro.preflight)
  agreement     the network after the first steps vs the same steps on the CPU (same seed, fp32):
                the largest parameter difference, relative to the parameter's scale

-- and the packing measurement: small MLP runs (GEM/GMED-sized: 784-100-100-10, batches of 10)
trained by 1 process vs `--pack` processes sharing the device, as runs per hour.

    python bench/gpu_check.py                      # CUDA, full-scale shapes (a few minutes on an H100)
    python bench/gpu_check.py --device cpu --tiny  # CI: the CPU, smoke-scale shapes, seconds

Random inputs (no data needed): the numbers measure time and memory, not accuracy. Prints one
JSON object (also written to --out).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from clrepro import plan as planning  # noqa: E402
from clrepro.job import make_deterministic  # noqa: E402
from clrepro.methods import get_method  # noqa: E402
from clrepro.methods.base import Context, TaskStream  # noqa: E402
from clrepro.preflight import LiveBytes, estimate, input_shape  # noqa: E402

PAPERS = ["gem2017", "gmed2021", "bld2020", "mnemonics2020", "drl2020"]


def heaviest(p, paper):
    """The paper's GPU run (any run if none wants a GPU) with the largest input x batch."""
    jobs = [j for j in p.runs.values() if j.paper == paper]
    jobs = [j for j in jobs if j.resources["gpu"]] or jobs
    def size(j):
        shape, _ = input_shape(j.benchmark.to_dict())
        return math.prod(shape) * j.hp.get("batch_size", 10), str(j.spec.path(p.root))
    return max(jobs, key=size)


def build(job, device, seed=0):
    defn = job.benchmark.to_dict()
    shape, n_classes = input_shape(defn)
    n_tasks = defn["n_tasks"]
    per = max(1, n_classes // n_tasks)
    mask = (torch.zeros(n_tasks, n_classes, dtype=torch.bool, device=device)
            if defn["scenario"] == "task_incremental" else None)
    if mask is not None:
        for k in range(n_tasks):
            mask[k, k * per:(k + 1) * per] = True
    batch = job.hp.get("batch_size", 10)
    ctx = Context(shape, n_classes, n_tasks, mask, device, torch.Generator().manual_seed(seed),
                  [batch * 100] * n_tasks, seed, ([0.5] * shape[0], [0.25] * shape[0]), 0,
                  [list(range(k * per, (k + 1) * per)) for k in range(n_tasks)],
                  lambda backbone: None)  # pretrained backbones: random weights of their shape
    torch.manual_seed(seed)
    method = get_method(job.spec.method)(ctx, job.hp)
    gen = torch.Generator().manual_seed(seed + 1)
    batches = [(torch.rand(batch, *shape, generator=gen).to(device),
                torch.randint(0, per, (batch,), generator=gen).to(device)) for _ in range(3)]
    return method, batches, shape, n_classes, n_tasks


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def steps(method, batches, n, device, timed=False):
    times = []
    method.begin_task(0, TaskStream(*batches[0]))
    for i in range(n):
        x, y = batches[i % len(batches)]
        method.step, method.batch_ids = i, torch.arange(len(y), device=device)
        sync(device)
        tick = time.perf_counter()
        method.observe(x, y, torch.zeros_like(y))
        sync(device)
        times.append(time.perf_counter() - tick)
    return times


def check_run(job, device, n_steps, agree_steps):
    out = {"run": str(job.spec.path(Path("results"))), "method": job.spec.method}
    try:
        method, batches, shape, n_classes, n_tasks = build(job, device)
        out["estimate_gb"] = estimate(type(method), job.hp, shape, n_classes, n_tasks, task_incremental=
                                      job.benchmark.scenario == "task_incremental").gb
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = steps(method, batches, n_steps + 1, device)  # the first one warms up
        out["step_s"] = statistics.median(times[1:])
        if device.type == "cuda":
            out["peak_gb"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
        else:  # the CPU has no allocator statistics: the same steps, their live tensors counted
            del method, batches
            tracker = LiveBytes("cpu")
            with tracker:
                method, batches, *_ = build(job, device)
                steps(method, batches, n_steps + 1, device)
            out["peak_gb"] = tracker.peak / 2 ** 30
        # agreement: the same first steps on the device and on the CPU
        nets = []
        for dev in (device, torch.device("cpu")):
            m, b, *_ = build(job, dev)
            steps(m, b, agree_steps, dev)
            nets.append([p.detach().double().cpu() for p in m.model.parameters()])
        out["agreement_rel"] = max(float((a - c).abs().max() / c.abs().max().clamp(min=1e-12))
                                   for a, c in zip(*nets))
    except Exception as exc:  # report and go on with the other papers
        out["error"] = f"{type(exc).__name__}: {exc}"[:200]
    return out


def _small_run(args):
    """One GEM-sized run: an MLP on a 784-input stream, `steps` batches of 10."""
    device, steps_per_run, seed = args
    torch.set_num_threads(1)
    dev = torch.device(device)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(784, 100), torch.nn.ReLU(), torch.nn.Linear(100, 100),
                              torch.nn.ReLU(), torch.nn.Linear(100, 10)).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.rand(steps_per_run, 10, 784, device=dev)
    y = torch.randint(0, 10, (steps_per_run, 10), device=dev)
    for i in range(steps_per_run):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x[i]), y[i]).backward()
        opt.step()
    sync(dev)


def packing(device, processes, runs_per_process, steps_per_run):
    """Runs per hour with `processes` processes sharing the device."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        pool.map(_small_run, [(device, 2, 0)] * processes)  # start-up (CUDA contexts) untimed
        tick = time.perf_counter()
        pool.map(_small_run, [(device, steps_per_run, k) for k in range(processes * runs_per_process)])
        wall = time.perf_counter() - tick
    return processes * runs_per_process / wall * 3600


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="smoke-scale shapes (CI on the CPU)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--agree-steps", type=int, default=2)
    ap.add_argument("--pack", type=int, default=8, help="processes sharing the device")
    ap.add_argument("--papers", nargs="*", default=PAPERS)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all; 1 with --tiny)")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.threads or args.tiny:
        torch.set_num_threads(args.threads or 1)
    make_deterministic(device, "fp32")
    scale = "smoke" if args.tiny else "full"
    p = planning.build({"scale": scale, "papers": args.papers})
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "scale": scale, "precision": "fp32", "runs": {}}
    for paper in args.papers:
        report["runs"][paper] = check_run(heaviest(p, paper), device, args.steps, args.agree_steps)
        print(paper, report["runs"][paper], file=sys.stderr, flush=True)
    steps_per_run = 20 if args.tiny else 2000  # a GEM perm_mnist task: 1,000 examples / 10 ... x2
    runs_each = 1 if args.tiny else 4
    alone = packing(args.device, 1, runs_each * args.pack, steps_per_run)
    packed = packing(args.device, args.pack, runs_each, steps_per_run)
    report["packing"] = {"processes": args.pack, "steps_per_run": steps_per_run,
                         "runs_per_hour_alone": alone, "runs_per_hour_packed": packed,
                         "speedup": packed / alone}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return report


if __name__ == "__main__":
    main()
