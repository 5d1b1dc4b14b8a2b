"""The phase trainer: class-incremental learning with multi-epoch phases (Mnemonics, §4.3).

Beside the online loop (clrepro.train), for methods whose `trainer` is "phases". For each
phase i (task i of the benchmark):

  1. method.begin_task(i, data)       new classes join the head, the old model is kept ...
  2. `epochs` passes over method.training_set(i, data) -- D_i and the method's exemplars --
     reshuffled each epoch by a generator seeded by (run seed, phase, epoch), augmented per
     image (clrepro.trainset: random crop after zero padding and flip on tensor benchmarks;
     random-resized crop and flip decoded by DataLoader workers on file-backed ImageNet),
     one method.observe per mini-batch (under bf16 autocast with `precision: bf16`); the method's
     lr schedule steps once per epoch;
  3. method.end_task(i, data)         exemplars (herding, random, mnemonics), balanced
                                      fine-tuning, bias correction: training time too;
                                      long work calls method.checkpoint() between steps;
  4. evaluation on the test sets of every phase seen so far: row i of R (later phases'
     entries are None), predictions among the classes the model has seen.

Checkpoints at every epoch end, after end_task and whenever end_task asks; a rerun rebuilds
the phase's network structure (method.restore_structure), loads the state and ends with
the same metrics as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from clrepro.data.benchmarks import Benchmark
from clrepro.data.images import ImageFiles
from clrepro.loop import Checkpointer, Clock, Evaluator, builder, checkpoint_key, fresh_state, measured
from clrepro.methods.base import FileStream, Method, TaskStream
from clrepro.optim import build_schedule
from clrepro.progress import Progress
from clrepro.seeds import derive_seed

log = logging.getLogger("clrepro")

# What this trainer reads from a run's hyperparameters (see clrepro.methods.catalog).
TRAINER_KEYS = {
    "batch_size": "training images per step",
    "augment.crop_pad": "random crop back to the input size after padding this many pixels (0: none)",
    "augment.flip": "random horizontal flips",
}
TRAINER_OPTIONAL = {
    "lr_schedule": "{milestones: [epochs], gamma}: the lr is multiplied by gamma at those epochs",
    "eval_batch_size": "evaluation batch size (1000)",
    "phases.merge": "train one phase on all data of the first k tasks (the joint upper bound)",
    "augment.resized_crop": "side of a random-resized crop replacing crop_pad (ImageNet: 224)",
    "precision": "fp32 (default, fidelity) | bf16: training steps under bfloat16 autocast",
}
PRECISIONS = ("fp32", "bf16")


def merge_tasks(bench: Benchmark, k: int) -> Benchmark:
    """The first k tasks as one (the joint-training upper bound on their classes)."""
    from clrepro.data.benchmarks import TaskData

    def cat(values):
        return ImageFiles.cat(values) if isinstance(values[0], ImageFiles) else torch.cat(values)

    parts = bench.tasks[:k]
    joined = TaskData(*(cat([getattr(t, f) for t in parts]) for f in
                        ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y", "classes")),
                      info={"merged_tasks": k})
    return Benchmark(bench.defn, [joined], bench.n_classes, bench.input_shape, bench.raw_image_bytes,
                     bench.norm)


def task_stream(task, device: torch.device, workers: int) -> TaskStream:
    """What begin_task/end_task receive: the task's images on the device, or its files."""
    if isinstance(task.train_x, ImageFiles):
        return FileStream(task.train_x, task.train_y.to(device), workers)
    return TaskStream(task.train_x.to(device), task.train_y.to(device))


def out_of_memory(exc: BaseException) -> bool:
    """A GPU or host allocation failure (torch.OutOfMemoryError, the CPU allocator's
    RuntimeError, MemoryError), as opposed to a bug."""
    text = str(exc).lower()
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text))


def train_phases(bench: Benchmark, method_cls: type[Method], hp: dict[str, Any], seed: int,
                 epochs: int, device: torch.device, checkpoint: Path | None = None,
                 desc: str = "run", workers: int = 0) -> dict[str, Any]:
    """Train one class-incremental method phase by phase; return the measured part of a
    record (as clrepro.train.train_run does). `workers`: DataLoader processes decoding a
    file-backed benchmark's images (0: in this process). Out of memory ends the run as
    "failed" with the reason (and the phase) in its record; the checkpoint is kept."""
    where = {"phase": 0}
    try:
        return _train_phases(bench, method_cls, hp, seed, epochs, device, checkpoint, desc,
                             workers, where)
    except Exception as exc:
        if not out_of_memory(exc):
            raise
        why = f"phase {where['phase'] + 1}: out of memory: {str(exc).splitlines()[0]}"
        log.error("%s failed: %s", desc, why)
        return {"status": "failed", "failed": why, "R": [], "b": [None] * bench.n_tasks,
                "diverged": None, "curve": {"progress": [], "batch": [], "acc": []},
                "test_sizes": [len(t.test_y) for t in bench.tasks], "timings": {}, "counters": {},
                "memory_bytes": {}, "details": {}, "artifacts": {}}


def _train_phases(bench, method_cls, hp, seed, epochs, device, checkpoint, desc, workers,
                  where) -> dict[str, Any]:
    run = _Phases(bench, method_cls, hp, seed, epochs, device, checkpoint, desc, workers)
    method, state, clock = run.method, run.state, run.clock
    t_run = time.perf_counter()
    while state["phase"] < run.bench.n_tasks and state["status"] == "ok":
        p = where["phase"] = state["phase"]
        stream = task_stream(run.bench.tasks[p], device, workers)
        clock.start()
        if state["stage"] == "begin":
            method.begin_task(p, stream)
            state["stage"], state["epoch"] = "train", 0
        if state["stage"] == "train":
            run.train_epochs(p, method.training_set(p, stream))
            if state["status"] != "ok":
                break
            state["stage"] = "end"
        if state["stage"] == "end":
            try:
                method.end_task(p, stream)
            except FloatingPointError as exc:  # e.g. a bilevel step gave non-finite exemplars
                _diverged(state, False, str(exc))
                break
            if _diverged(state, method.parameters_finite(),
                         "non-finite parameters after the phase's end work"):
                break
            state["stage"] = "eval"
        clock.stop()
        accs = run.evaluate(method, list(range(p + 1)))
        if _diverged(state, all(math.isfinite(a) for a in accs[:p + 1]), "non-finite accuracy"):
            break
        state["R"].append(accs)
        _log_phase(desc, run.bench, p, accs)
        state["phase"], state["epoch"], state["stage"] = p + 1, 0, "begin"
        run.ckpt.save(method, state)
    return run.record(t_run)


class _Phases:
    """_train_phases' moving parts: the run's method and loop state (resumed from its
    checkpoint or fresh), a phase's epochs, and the record."""

    def __init__(self, bench, method_cls, hp, seed, epochs, device, checkpoint, desc, workers):
        if hp.get("precision", "fp32") not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {hp['precision']!r}")
        self.autocast = (torch.autocast(device.type, dtype=torch.bfloat16)
                         if hp.get("precision") == "bf16" else contextlib.nullcontext())
        if hp.get("phases.merge"):
            bench = merge_tasks(bench, hp["phases.merge"])
        self.bench, self.hp, self.seed, self.epochs, self.desc = bench, hp, seed, epochs, desc
        self.device, self.workers = device, workers
        self.evaluate = Evaluator(bench, device, hp.get("eval_batch_size", 1000), False,
                                  workers=workers)
        self.ckpt = Checkpointer(checkpoint, checkpoint_key(hp, bench, seed, epochs), self.evaluate)
        build = builder(method_cls, hp, bench, device, seed, epochs, workers=workers)
        self.method, self.state = self.ckpt.resume(
            build, fresh_state(phase=0, epoch=0, stage="begin"), restore=_restore_structure)
        self.method.checkpoint = lambda: self.ckpt.save(self.method, self.state)
        self.clock = Clock(device, self.state)
        # an estimate for the progress display: exemplars add to every phase after the first
        batch = hp["batch_size"]
        self.progress = Progress(sum(math.ceil(len(t.train_y) / batch) * epochs
                                     for t in bench.tasks), desc)
        self.progress.update(self.state["global"])

    def train_epochs(self, p: int, training) -> None:
        """Phase p's remaining epochs over `training` (D_p and the exemplars): reshuffled and
        augmented per epoch from the run seed, a checkpoint after each; the lr schedule steps
        once per epoch."""
        method, state, hp = self.method, self.state, self.hp
        schedule = build_schedule(method.opt, hp.get("lr_schedule"))
        for _ in range(state["epoch"]):  # a resumed phase: the schedule's epochs so far
            schedule is not None and schedule.step()
        while state["epoch"] < self.epochs and state["status"] == "ok":
            e = state["epoch"]
            gen = torch.Generator().manual_seed(derive_seed(self.seed, f"phase{p}:epoch{e}"))
            order = torch.randperm(len(training), generator=gen).to(self.device)
            epoch_seed = derive_seed(self.seed, f"phase{p}:epoch{e}:images")
            for xb, yb in training.batches(order, hp["batch_size"], gen, hp, epoch_seed,
                                           self.workers):
                method.step = state["global"]
                with self.autocast:
                    method.observe(xb, yb, torch.full_like(yb, p))
                state["global"] += 1
                self.progress.update()
            if schedule is not None:
                schedule.step()
            state["epoch"] = e + 1
            if _diverged(state, method.parameters_finite(), f"non-finite parameters in epoch {e + 1}"):
                return
            with self.clock.paused():
                self.ckpt.save(method, state)

    def record(self, t_run: float) -> dict[str, Any]:
        state, method, bench = self.state, self.method, self.bench
        self.progress.close()
        self.ckpt.close(state)
        diverged = None
        if state["status"] == "diverged":
            diverged = f"phase {state['phase'] + 1}: {state['why']}"
            log.warning("%s diverged in phase %d/%d: %s", self.desc, state["phase"] + 1,
                        bench.n_tasks, state["why"])
        return {**measured(state, method, [len(t.test_y) for t in bench.tasks], t_run,
                           b=[None] * bench.n_tasks, diverged=diverged,
                           curve={"progress": [], "batch": [], "acc": []}),
                "details": method.details(),
                "artifacts": method.artifacts() if state["status"] == "ok" else {}}


def _diverged(state: dict, finite: bool, why: str) -> bool:
    """Mark the run diverged (with the reason) unless `finite`; True if it diverged."""
    if not finite:
        state["status"], state["why"] = "diverged", why
    return not finite


def _log_phase(desc: str, bench: Benchmark, p: int, accs: list[float]) -> None:
    seen = [len(t.test_y) for t in bench.tasks[:p + 1]]
    acc = sum(a * n for a, n in zip(accs, seen)) / sum(seen)
    log.info("%s: phase %d/%d done, accuracy on the classes seen so far %.3f", desc, p + 1,
             bench.n_tasks, acc)


def _restore_structure(method: Method, state: dict) -> None:
    """Rebuild the network structure of the phase a checkpoint was taken in (heads grow and
    layers change between phases); called only for a checkpoint of this run's protocol."""
    method.restore_structure(state["phase"], state["stage"])
