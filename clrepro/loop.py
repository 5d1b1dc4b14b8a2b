"""The parts both trainers share (clrepro.train, clrepro.phases): the method's context, a
training clock, the evaluator, checkpoints, peak memory and the measured part of a record.

A trainer is then its algorithm: how the stream is cut into steps and when R rows are
evaluated. Training time excludes evaluation and checkpoint writes (the clock is paused
around them), and is read after a device synchronisation so that queued GPU work counts.
A checkpoint is keyed on the run's whole protocol (hyperparameters, benchmark definition,
seed, epochs): one made under another protocol, or one that does not load into this run's
model, is moved aside (renamed, and the log names both files) before the model is touched,
and the run starts from a freshly built model.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch

from clrepro.data.benchmarks import Benchmark
from clrepro.data.images import ImageFiles
from clrepro.data.transforms import as_float
from clrepro.fsutil import atomic_path, stable_hash
from clrepro.methods.base import Context, Method
from clrepro.seeds import derive_seed

log = logging.getLogger("clrepro")
CHECKPOINT_VERSION = 2  # 2: keyed on the whole protocol (checkpoint_key)


def make_context(bench: Benchmark, device: torch.device, seed: int, epochs: int,
                 normalise: bool = False, weights=None) -> Context:
    mask = bench.class_mask().to(device) if bench.task_incremental else None
    gen = torch.Generator().manual_seed(derive_seed(seed, "method"))
    return Context(bench.input_shape, bench.n_classes, bench.n_tasks, mask, device, gen,
                   [len(t.train_y) * epochs for t in bench.tasks], seed,
                   bench.input_norm() if normalise else None, bench.raw_image_bytes,
                   [t.classes.tolist() for t in bench.tasks], weights)


def builder(method_cls: type[Method], hp: dict[str, Any], bench: Benchmark, device: torch.device,
            seed: int, epochs: int, weights=None, workers: int | None = None) -> Callable[[], Method]:
    """What makes the run's method from scratch: the model initialised from the run seed."""
    def build() -> Method:
        torch.manual_seed(derive_seed(seed, "init"))  # model initialisation
        ctx = make_context(bench, device, seed, epochs, bool(hp["model"].get("normalize")), weights)
        if workers is not None:
            ctx.workers = workers
        return method_cls(ctx, hp)
    return build


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Training seconds, kept in the loop state's "train_s" (so a resumed run adds to them):
    start() and stop() read the time after a device synchronisation; `paused()` holds the
    clock across evaluation or a checkpoint write."""

    def __init__(self, device: torch.device, state: dict):
        self.device, self.state, self.tick = device, state, 0.0

    def start(self) -> None:
        sync(self.device)
        self.tick = time.perf_counter()

    def stop(self) -> None:
        sync(self.device)
        self.state["train_s"] += time.perf_counter() - self.tick

    @contextlib.contextmanager
    def paused(self):
        self.stop()
        yield
        self.tick = time.perf_counter()


class Evaluator:
    """Accuracy on every task's test (or, when tuning, validation) set; `drop_last_quirk`
    mimics GEM's code (spec D5): it skips each task's last test example but still divides
    by the full count."""

    def __init__(self, bench: Benchmark, device: torch.device, batch_size: int,
                 drop_last_quirk: bool, split: str = "test", workers: int = 0):
        if split not in ("test", "val"):
            raise ValueError(f"eval_split must be test or val, got {split!r}")
        self.tests = [(x if isinstance(x, ImageFiles) else x.to(device), y.to(device))
                      for x, y in bench.eval_sets(split)]
        self.workers = workers
        self.batch_size = batch_size
        self.drop_last_quirk = drop_last_quirk
        self.device = device
        self.seconds = 0.0

    @torch.inference_mode()
    def __call__(self, method: Method, tasks: list[int] | None = None) -> list[float | None]:
        """Accuracy on each task's set; tasks not in `tasks` (default: all) are None."""
        start = time.perf_counter()
        method.model.eval()
        method.prepare_eval()
        wanted = range(len(self.tests)) if tasks is None else tasks
        correct = []
        for t in wanted:
            x, y = self.tests[t]
            n_used = len(y) - 1 if self.drop_last_quirk else len(y)
            hits = torch.zeros((), dtype=torch.long, device=self.device)
            bounds = [(lo, min(lo + self.batch_size, n_used)) for lo in range(0, n_used, self.batch_size)]
            for (lo, hi), xb in zip(bounds, self.inputs(x, bounds)):
                task_ids = torch.full((hi - lo,), t, dtype=torch.long, device=self.device)
                hits += (method.predict(xb, task_ids) == y[lo:hi]).sum()
            correct.append(hits)
        accs: list[float | None] = [None] * len(self.tests)
        for t, c in zip(wanted, torch.stack(correct).tolist()):
            accs[t] = c / max(len(self.tests[t][1]), 1)
        method.model.train()
        self.seconds += time.perf_counter() - start
        return accs

    def inputs(self, x, bounds: list[tuple[int, int]]):
        """Network inputs of each (lo, hi) slice: cut from a tensor, or decoded from files
        (test transform) by DataLoader workers."""
        if not isinstance(x, ImageFiles):
            return (as_float(x[lo:hi]) for lo, hi in bounds)
        return x.inputs([torch.arange(lo, hi) for lo, hi in bounds], self.device, self.workers)


# -- checkpoints ----------------------------------------------------------------------------
def checkpoint_key(hp: dict[str, Any], bench: Benchmark, seed: int, epochs: int) -> str:
    """What a checkpoint must have been made under to be resumed: the run's hyperparameters
    (as resolved), its benchmark's definition and task count, seed and epochs."""
    return stable_hash({"hp": hp, "benchmark": bench.defn.to_dict(), "n_tasks": bench.n_tasks,
                        "seed": seed, "epochs": epochs})


class Checkpointer:
    """The run's checkpoint at `path` (None: none is kept), made under protocol `key`. The
    loop state it saves carries the evaluation seconds of the runs before a resume."""

    def __init__(self, path: Path | None, key: str, evaluate: Evaluator):
        self.path, self.key, self.evaluate = path, key, evaluate
        self.eval_before = 0.0

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def resume(self, build: Callable[[], Method], fresh: dict,
               restore: Callable[[Method, dict], None] | None = None) -> tuple[Method, dict]:
        method, state = resume(self.path, self.key, build, fresh, restore)
        self.eval_before = state["eval_s"]
        return method, state

    def close(self, state: dict) -> None:
        """Bring the state's evaluation seconds up to date."""
        state["eval_s"] = self.eval_before + self.evaluate.seconds

    def save(self, method: Method, state: dict) -> None:
        self.close(state)
        if self.path is not None:
            save(self.path, self.key, method, state)


def save(path: Path, key: str, method: Method, state: dict) -> None:
    blob = {"version": CHECKPOINT_VERSION, "protocol": key, "state": state,
            "method": method.state_dict(), "generator": method.ctx.generator.get_state(),
            "torch_rng": torch.get_rng_state()}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def move_aside(path: Path, why: str) -> Path:
    """Rename a checkpoint that cannot be resumed (kept for inspection, never read again);
    the log names it and its new name."""
    aside = path.with_name(f"{path.name}.unused-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while aside.exists():
        aside = aside.with_name(f"{path.name}.unused-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        n += 1
    path.rename(aside)
    log.warning("checkpoint %s %s: moved aside to %s; this run starts from scratch", path,
                why, aside.name)
    return aside


def resume(path: Path | None, key: str, build, fresh: dict,
           restore=None) -> tuple[Method, dict]:
    """The method `build()` makes and the loop state: the checkpoint's if `path` holds one made
    under protocol `key` that loads into the model, else `fresh`. The key is checked before
    anything touches the model; `restore(method, state)` (the phase trainer's structure
    rebuild) runs only then, and if it or the load fails the model is built again."""
    method = build()
    if path is None or not path.is_file():
        return method, fresh
    try:
        blob = torch.load(path, weights_only=True, map_location=method.device)
    except Exception as exc:  # a checkpoint is a cache: unreadable means start over
        move_aside(path, f"is unreadable ({type(exc).__name__}: {exc})")
        return method, fresh
    if not isinstance(blob, dict) or blob.get("version") != CHECKPOINT_VERSION \
            or blob.get("protocol") != key:
        move_aside(path, "was made under a different protocol (hyperparameters, benchmark, "
                         "seed or epochs) or checkpoint version")
        return method, fresh
    try:
        if restore is not None:
            restore(method, blob["state"])
        method.load_state_dict(blob["method"])
        method.ctx.generator.set_state(blob["generator"].cpu())
        torch.set_rng_state(blob["torch_rng"].cpu())
    except Exception as exc:
        move_aside(path, f"does not load into this run's model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})")
        return build(), fresh
    state = blob["state"]
    state["resumed"] = state.get("resumed", 0) + 1
    log.info("resumed from %s at batch %d", path, state["global"])
    return method, state


# -- the record -----------------------------------------------------------------------------
def fresh_state(**extra) -> dict[str, Any]:
    """A loop state before the first step (a trainer adds its own position fields)."""
    return {"R": [], "train_s": 0.0, "eval_s": 0.0, "status": "ok", "resumed": 0, "global": 0,
            **extra}


def measured(state: dict, method: Method, test_sizes: list[int], t_run: float,
             **fields) -> dict[str, Any]:
    """The measured part of a record that every trainer writes (clrepro.job adds the rest):
    status, R, timings, counters and memory; `fields` are the trainer's own (b, curve, ...)."""
    status = {"status": state["status"], "R": state["R"]}
    return {**status, **fields, "test_sizes": test_sizes,
            "timings": {"train_s": state["train_s"], "eval_s": state["eval_s"],
                        "wall_s": time.perf_counter() - t_run, "batches": state["global"],
                        "resumed": state["resumed"]},
            "counters": method.counter_values(), "memory_bytes": method.memory_bytes()}


def reset_peak_memory(device: torch.device) -> None:
    """Start a run's peak-memory window: the GPU allocator's peak, and on Linux the process's
    peak resident set (writing 5 to /proc/self/clear_refs resets VmHWM), since a batch job
    trains several runs in one process."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux: the host figure is then the process's peak so far


def peak_memory(device: torch.device) -> dict[str, float]:
    """Peak memory of the run in MiB: resident host memory (VmHWM since reset_peak_memory, or
    ru_maxrss where /proc is missing: the process's peak) and, on a GPU, the largest
    allocation by tensors. Tables that report RAM read it."""
    import resource
    import sys

    out: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["host_rss_mib"] = int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    if "host_rss_mib" not in out:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        out["host_rss_mib"] = rss / (2**20 if sys.platform == "darwin" else 2**10)
    if device.type == "cuda":
        out["device_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out
