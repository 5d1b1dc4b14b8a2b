"""The online loop: stream -> method.observe -> accuracy matrix R.

Evaluation schedule (GEM spec §4.5): all tasks before any training (the random-init
baseline b), every `eval_every` mini-batches (the learning curves of GEM Fig. 1 right), and
after the last example of each task (row i of R); a paper's EvalSchedule changes which rows
and points (clrepro.schedule), its StopRule when a task's passes end. Training time excludes
evaluation. The loop checkpoints at task boundaries and every `checkpoint_every` batches; a
rerun resumes from the checkpoint (clrepro.loop) and, because every random stream is derived
from the run seed and saved with the checkpoint, ends with the same metrics as an
uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clrepro.data.benchmarks import Benchmark
from clrepro.data.transforms import as_float
from clrepro.loop import (Checkpointer, Clock, Evaluator, builder, checkpoint_key, fresh_state,
                          measured, peak_memory, reset_peak_memory)
from clrepro.methods.base import Method, TaskStream
from clrepro.progress import Progress
from clrepro.seeds import derive_seed
from clrepro.schedule import EvalSchedule, StopRule, Study

log = logging.getLogger("clrepro")

# What this trainer reads from a run's hyperparameters (checked at plan time, see
# clrepro.methods.catalog); methods declare their own keys, and the strategies the papers
# ask for theirs (clrepro.papers.strategies).
TRAINER_KEYS = {
    "batch_size": "stream examples per step",
    "eval_every": "steps between learning-curve evaluations",
}
TRAINER_OPTIONAL = {
    "eval_batch_size": "evaluation batch size (1000)",
    "checkpoint_every": "steps between mid-task checkpoints (0: task ends only)",
    "batch.merge_last": "merge a pass's final partial batch into the one before it (no batch "
                        "smaller than batch_size)",
}


@dataclass
class Phase:
    task: int | None  # None: an iid phase mixing all tasks
    epoch: int
    last: bool  # the task's last epoch
    order: torch.Tensor  # indices into the concatenated training set, in stream order


def build_phases(bench: Benchmark, stream: str, epochs: int, seed: int) -> list[Phase]:
    """Tasks in index order, each pass over a task shuffled by the run seed ("tasks"; one
    phase per task and epoch), or all tasks' examples shuffled together for every pass
    ("iid", GEM Table 3 row 1; one phase). A phase's order depends only on (seed, phase),
    so a resumed run replays it exactly."""
    sizes = [len(t.train_y) for t in bench.tasks]
    starts = np.cumsum([0, *sizes])
    if stream == "iid":
        gen = torch.Generator().manual_seed(derive_seed(seed, "stream:iid"))
        order = torch.cat([torch.randperm(int(starts[-1]), generator=gen) for _ in range(epochs)])
        return [Phase(None, 0, True, order)]
    if stream != "tasks":
        raise ValueError(f"unknown stream kind {stream!r}")
    phases = []
    for t, n in enumerate(sizes):
        for e in range(epochs):
            gen = torch.Generator().manual_seed(derive_seed(seed, f"stream:task{t}:epoch{e}"))
            phases.append(Phase(t, e, e == epochs - 1, torch.randperm(n, generator=gen) + int(starts[t])))
    return phases


class Stream:
    """The benchmark's training examples on the device, concatenated in task order, and how
    each phase is cut into mini-batches (`merge_last`: the final partial batch joins the one
    before, e.g. so that BatchNorm statistics never come from a batch of a few images)."""

    def __init__(self, bench: Benchmark, device: torch.device, batch_size: int, merge_last: bool):
        self.x = torch.cat([t.train_x for t in bench.tasks]).to(device)
        self.y = torch.cat([t.train_y for t in bench.tasks]).to(device)
        self.t = torch.cat([torch.full((len(t.train_y),), i, dtype=torch.long)
                            for i, t in enumerate(bench.tasks)]).to(device)
        self.starts = np.cumsum([0, *(len(t.train_y) for t in bench.tasks)])
        self.device, self.batch_size, self.merge_last = device, batch_size, merge_last

    def n_batches(self, phase: Phase) -> int:
        n = len(phase.order)
        return max(1, n // self.batch_size) if self.merge_last else math.ceil(n / self.batch_size)

    def task(self, phase: Phase) -> TaskStream:
        """What begin_task/end_task receive: the phase's task (all tasks for iid)."""
        if phase.task is None:
            return TaskStream(self.x, self.y)
        lo, hi = int(self.starts[phase.task]), int(self.starts[phase.task + 1])
        return TaskStream(self.x[lo:hi], self.y[lo:hi])

    def batches(self, phase: Phase, first: int, n_batches: int):
        """(j, x, y, t, ids) of the phase's mini-batches from the j-th on; ids are positions in
        the task's training set (the whole set for iid)."""
        order = phase.order.to(self.device)
        xp, yp, tp = as_float(self.x[order]), self.y[order], self.t[order]
        ids = order - (0 if phase.task is None else int(self.starts[phase.task]))

        def cut():
            for j in range(first, n_batches):
                last = self.merge_last and j == n_batches - 1
                sl = slice(j * self.batch_size, None if last else (j + 1) * self.batch_size)
                yield j, xp[sl], yp[sl], tp[sl], ids[sl]
        return cut()


def train_run(bench: Benchmark, method_cls: type[Method], hp: dict[str, Any], seed: int,
              epochs: int, device: torch.device, checkpoint: Path | None = None,
              desc: str = "run", weights=None, schedule: EvalSchedule | None = None,
              stop: StopRule | None = None, studies: list[Study] = ()) -> dict[str, Any]:
    """Train one method on one benchmark stream; return the measured part of a record.
    `weights`: pretrained state dicts by backbone name (Context.weights). `schedule`, `stop`:
    the paper's evaluation schedule and stop rule (default: the plain protocol); `studies`
    run on the trained model and add to the artifacts."""
    schedule, stop = schedule or EvalSchedule(), stop or StopRule()
    reset_peak_memory(device)
    loop = _Online(stop.benchmark(bench), method_cls, hp, seed, epochs, device, checkpoint, desc,
                   weights, schedule)
    t_run = time.perf_counter()
    method, state, stream, clock = loop.method, loop.state, loop.stream, loop.clock
    if state["b"] is None:  # the random-initialisation baseline b (none when R is its last row)
        state["b"] = ([None] * len(loop.evaluate.tests) if schedule.last_row_only
                      else loop.evaluate(method))
        state["curve"].append((0.0, 0, state["b"]))
    every = hp["eval_every"]
    ckpt_every = hp.get("checkpoint_every", 0) if loop.ckpt.enabled else 0
    while state["phase"] < len(loop.phases) and state["status"] == "ok":
        p = state["phase"]
        phase, n = loop.phases[p], loop.n_batches[p]
        task = phase.task if phase.task is not None else 0
        batches = stream.batches(phase, state["batch"], n)
        clock.start()
        if state["batch"] == 0 and phase.epoch == 0:
            method.begin_task(task, stream.task(phase))
        chunk_ends = schedule.chunk_ends(phase, n, loop.bench.n_tasks)
        for j, x, y, t, ids in batches:
            if j > 0 and state["global"] % every == 0:
                with clock.paused():
                    loop.curve_point(p, j, schedule.curve_tasks)
                if not loop.finite():
                    break
            method.step, method.batch_ids = state["global"], ids
            method.observe(x, y, t)
            state["global"], state["batch"] = state["global"] + 1, j + 1
            loop.progress.update()
            if j + 1 in chunk_ends and j + 1 < n:  # an iid stream's R row after 1/T of it
                with clock.paused():
                    state["R"].append(loop.curve_point(p, j + 1))
            if ckpt_every and state["global"] % ckpt_every == 0:
                with clock.paused():
                    loop.ckpt.save(method, state)
        if state["status"] != "ok":
            break
        if phase.last:  # boundary work is training time
            method.end_task(task, stream.task(phase))
        clock.stop()
        if not phase.last and not loop.pass_ends_task(p, task, stop):
            state["phase"], state["batch"] = p + 1, 0
            continue
        loop.task_end(p, chunk_ends)
    return loop.record(t_run, studies)


class _Online:
    """train_run's moving parts: the run's method and loop state (resumed from its checkpoint
    or fresh), curve points, the end of a pass and of a task, and the record."""

    def __init__(self, bench, method_cls, hp, seed, epochs, device, checkpoint, desc, weights,
                 schedule):
        self.bench, self.schedule, self.epochs, self.desc = bench, schedule, epochs, desc
        self.phases = build_phases(bench, method_cls.stream, epochs, seed)
        self.evaluate = Evaluator(bench, device, hp.get("eval_batch_size", 1000),
                                  schedule.drop_last, schedule.split)
        self.stream = Stream(bench, device, hp["batch_size"], hp.get("batch.merge_last", False))
        self.ckpt = Checkpointer(checkpoint, checkpoint_key(hp, bench, seed, epochs), self.evaluate)
        self.method, self.state = self.ckpt.resume(
            builder(method_cls, hp, bench, device, seed, epochs, weights),
            fresh_state(phase=0, batch=0, curve=[], b=None, best=-1.0))
        self.n_batches = [self.stream.n_batches(p) for p in self.phases]
        self.clock = Clock(device, self.state)
        self.progress = Progress(sum(self.n_batches), desc)
        self.progress.update(self.state["global"])
        self.seed, self.device = seed, device

    def record(self, t_run: float, studies: list[Study]) -> dict[str, Any]:
        """The measured part of the record; a finished run adds what the method keeps for
        figures, then the studies' results."""
        state, method = self.state, self.method
        self.progress.close()
        self.ckpt.close(state)
        if state["status"] == "diverged":
            log.warning("%s diverged (non-finite parameters or accuracy) after %d batches",
                        self.desc, state["global"])
        out = {**measured(state, method, [len(y) for _, y in self.evaluate.tests], t_run,
                          b=state["b"], curve=_curve(state["curve"])),
               "peak_memory": peak_memory(self.device), "artifacts": {}}
        if state["status"] == "ok":
            out["artifacts"] = method.artifacts()
            for study in studies:
                out["artifacts"].update(study(method.model, self.evaluate.tests, self.seed))
        return out

    def curve_point(self, p: int, j: int, tasks: list[int] | None = None) -> list[float | None]:
        """Evaluate after j batches of phase p and add the point to the learning curve."""
        accs = self.evaluate(self.method, tasks)
        phase, n = self.phases[p], self.n_batches[p]
        if phase.task is None:
            done = self.bench.n_tasks * j / n
        else:
            done = phase.task + (phase.epoch + j / n) / self.epochs
        self.state["curve"].append((float(done), self.state["global"], accs))
        return accs

    def finite(self, accs: list[float] | None = None) -> bool:
        """False (and the run marked diverged) on non-finite parameters or accuracies."""
        ok = self.method.parameters_finite() and (accs is None or all(math.isfinite(a) for a in accs))
        if not ok:
            self.state["status"] = "diverged"
        return ok

    def pass_ends_task(self, p: int, task: int, stop: StopRule) -> bool:
        """After a pass that is not the task's last: the stop rule may end the task here
        (evaluated on the schedule's split), and then its end work runs."""
        if not stop.early_stopping:
            return False
        if not stop.task_done(self.curve_point(p, self.n_batches[p]), task, self.state):
            return False
        self.clock.start()  # early stopping ended the task after this pass
        self.method.end_task(task, self.stream.task(self.phases[p]))
        self.clock.stop()
        return True

    def task_end(self, p: int, chunk_ends: set[int]) -> None:
        """A task's (or the iid stream's) training ended: its R rows, then the next task."""
        state, phase = self.state, self.phases[p]
        following = _next_task(self.phases, p)
        if self.schedule.last_row_only and following < len(self.phases):  # no evaluation yet
            if not self.finite():
                return
            state["phase"], state["batch"], state["best"] = following, 0, -1.0
            log.info("%s: task %d/%d done", self.desc, (phase.task or 0) + 1, self.bench.n_tasks)
            self.ckpt.save(self.method, state)
            return
        accs = self.curve_point(p, self.n_batches[p])
        if not self.finite(accs):
            return
        state["R"].extend(self.schedule.rows(phase, accs, self.bench.n_tasks, chunk_ends))
        state["phase"], state["batch"], state["best"] = following, 0, -1.0
        if phase.task is not None:
            seen = accs[: phase.task + 1]
            log.info("%s: task %d/%d done, mean accuracy on seen tasks %.3f", self.desc,
                     phase.task + 1, self.bench.n_tasks, sum(seen) / len(seen))
        self.ckpt.save(self.method, state)


def _curve(points: list) -> dict[str, list]:
    return {"progress": [c[0] for c in points], "batch": [c[1] for c in points],
            "acc": [c[2] for c in points]}


def _next_task(phases: list[Phase], p: int) -> int:
    """Index of the first phase after p that belongs to another task."""
    q = p + 1
    while q < len(phases) and phases[q].task == phases[p].task and phases[q].task is not None:
        q += 1
    return q
