"""The one training/evaluation loop: stream -> method.observe -> accuracy matrix R.

Evaluation schedule (GEM spec §4.5): all tasks before any training (the random-init
baseline b), every `eval_every` mini-batches (the learning curves of GEM Fig. 1 right), and
after the last example of each task (row i of R). Training time excludes evaluation.
The loop checkpoints at task boundaries and every `checkpoint_every` batches; a rerun
resumes from the checkpoint and, because every random stream is derived from the run seed
and saved with the checkpoint, ends with the same metrics as an uninterrupted run.
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

from clrepro.data.benchmarks import Benchmark, derive_seed
from clrepro.data.transforms import as_float
from clrepro.fsutil import atomic_path, stable_hash
from clrepro.methods.base import Context, Method
from clrepro.progress import Progress

log = logging.getLogger("clrepro")
CHECKPOINT_VERSION = 1


@dataclass
class Phase:
    task: int | None  # None: an iid phase mixing all tasks
    order: torch.Tensor  # indices into the concatenated training set, in stream order


def build_phases(bench: Benchmark, stream: str, epochs: int, seed: int) -> list[Phase]:
    """Tasks in index order, each shuffled by the run seed and repeated `epochs` times
    ("tasks"), or all tasks' examples shuffled together per pass ("iid", GEM Table 3 row 1).
    Each phase's order depends only on (seed, phase), so a resumed run replays it exactly."""
    sizes = [len(t.train_y) for t in bench.tasks]
    starts = np.cumsum([0, *sizes])
    if stream == "iid":
        gen = torch.Generator().manual_seed(derive_seed(seed, "stream:iid"))
        order = torch.cat([torch.randperm(int(starts[-1]), generator=gen) for _ in range(epochs)])
        return [Phase(None, order)]
    if stream != "tasks":
        raise ValueError(f"unknown stream kind {stream!r}")
    phases = []
    for t, n in enumerate(sizes):
        gen = torch.Generator().manual_seed(derive_seed(seed, f"stream:task{t}"))
        order = torch.cat([torch.randperm(n, generator=gen) + int(starts[t]) for _ in range(epochs)])
        phases.append(Phase(t, order))
    return phases


class Evaluator:
    """Accuracy on every task's test set; `drop_last_quirk` mimics GEM's code (spec D5):
    it skips each task's last test example but still divides by the full count."""

    def __init__(self, bench: Benchmark, device: torch.device, batch_size: int,
                 drop_last_quirk: bool):
        self.tests = [(t.test_x.to(device), t.test_y.to(device)) for t in bench.tasks]
        self.batch_size = batch_size
        self.drop_last_quirk = drop_last_quirk
        self.device = device
        self.seconds = 0.0

    @torch.inference_mode()
    def __call__(self, method: Method) -> list[float]:
        start = time.perf_counter()
        method.model.eval()
        method.prepare_eval()
        correct = []
        for t, (x, y) in enumerate(self.tests):
            n_used = len(y) - 1 if self.drop_last_quirk else len(y)
            hits = torch.zeros((), dtype=torch.long, device=self.device)
            for lo in range(0, n_used, self.batch_size):
                hi = min(lo + self.batch_size, n_used)
                tasks = torch.full((hi - lo,), t, dtype=torch.long, device=self.device)
                hits += (method.predict(as_float(x[lo:hi]), tasks) == y[lo:hi]).sum()
            correct.append(hits)
        accs = [c / len(y) for c, (_, y) in zip(torch.stack(correct).tolist(), self.tests)]
        method.model.train()
        self.seconds += time.perf_counter() - start
        return accs


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_context(bench: Benchmark, device: torch.device, seed: int, epochs: int) -> Context:
    mask = bench.class_mask().to(device) if bench.task_incremental else None
    gen = torch.Generator().manual_seed(derive_seed(seed, "method"))
    return Context(bench.input_shape, bench.n_classes, bench.n_tasks, mask, device, gen,
                   [len(t.train_y) * epochs for t in bench.tasks])


def train_run(bench: Benchmark, method_cls: type[Method], hp: dict[str, Any], seed: int,
              epochs: int, device: torch.device, checkpoint: Path | None = None,
              desc: str = "run") -> dict[str, Any]:
    """Train one method on one benchmark stream; return the measured part of a record."""
    torch.manual_seed(derive_seed(seed, "init"))  # model initialisation
    ctx = make_context(bench, device, seed, epochs)
    method = method_cls(ctx, hp)
    phases = build_phases(bench, method_cls.stream, epochs, seed)
    batch_size, eval_every = hp["batch_size"], hp["eval_every"]
    checkpoint_every = hp.get("checkpoint_every", 0)
    evaluate = Evaluator(bench, device, hp.get("eval_batch_size", 1000),
                         hp.get("eval.drop_last_quirk", False))
    all_x = torch.cat([t.train_x for t in bench.tasks]).to(device)
    all_y = torch.cat([t.train_y for t in bench.tasks]).to(device)
    all_t = torch.cat([torch.full((len(t.train_y),), i, dtype=torch.long)
                       for i, t in enumerate(bench.tasks)]).to(device)
    n_batches = [math.ceil(len(p.order) / batch_size) for p in phases]
    total = sum(n_batches)
    hp_hash = stable_hash(hp)

    state = {"phase": 0, "batch": 0, "global": 0, "R": [], "curve": [], "b": None,
             "train_s": 0.0, "eval_s": 0.0, "status": "ok", "resumed": 0}
    if checkpoint is not None and checkpoint.is_file():
        state = _resume(checkpoint, hp_hash, method, state)
    if state["b"] is None:
        state["b"] = evaluate(method)
        state["curve"].append((0.0, 0, state["b"]))

    progress = Progress(total, desc)
    progress.update(state["global"])
    eval_base = evaluate.seconds
    t_run = time.perf_counter()

    def curve_point(p: int, j: int) -> list[float]:
        accs = evaluate(method)
        phase = phases[p]
        done = (phase.task if phase.task is not None else 0) + j / n_batches[p]
        if phase.task is None:
            done = bench.n_tasks * j / n_batches[p]
        state["curve"].append((float(done), state["global"], accs))
        return accs

    while state["phase"] < len(phases) and state["status"] == "ok":
        p = state["phase"]
        phase = phases[p]
        order = phase.order.to(device)
        xp, yp, tp = as_float(all_x[order]), all_y[order], all_t[order]
        if state["batch"] == 0:
            method.begin_task(phase.task if phase.task is not None else 0)
        else:
            method.task = phase.task if phase.task is not None else 0
        _sync(device)
        tick = time.perf_counter()
        chunk_ends = _iid_chunk_ends(phase, n_batches[p], bench.n_tasks, hp)
        for j in range(state["batch"], n_batches[p]):
            if j > 0 and state["global"] % eval_every == 0:
                _sync(device)
                state["train_s"] += time.perf_counter() - tick
                curve_point(p, j)
                if not method.parameters_finite():
                    state["status"] = "diverged"
                    break
                tick = time.perf_counter()
            sl = slice(j * batch_size, (j + 1) * batch_size)
            method.observe(xp[sl], yp[sl], tp[sl])
            state["global"] += 1
            state["batch"] = j + 1
            progress.update()
            if j + 1 in chunk_ends and j + 1 < n_batches[p]:
                _sync(device)
                state["train_s"] += time.perf_counter() - tick
                state["R"].append(curve_point(p, j + 1))
                tick = time.perf_counter()
            if checkpoint is not None and checkpoint_every and state["global"] % checkpoint_every == 0:
                _sync(device)
                state["train_s"] += time.perf_counter() - tick
                _save(checkpoint, hp_hash, method, state)
                tick = time.perf_counter()
        if state["status"] != "ok":
            break
        method.end_task(phase.task if phase.task is not None else 0)
        _sync(device)
        state["train_s"] += time.perf_counter() - tick
        accs = curve_point(p, n_batches[p])
        if not method.parameters_finite() or not all(math.isfinite(a) for a in accs):
            state["status"] = "diverged"
            break
        state["R"].extend(_rows_for_phase(phase, accs, bench.n_tasks, chunk_ends))
        state["phase"], state["batch"] = p + 1, 0
        if phase.task is not None:
            seen = accs[: phase.task + 1]
            log.info("%s: task %d/%d done, mean accuracy on seen tasks %.3f", desc,
                     phase.task + 1, bench.n_tasks, sum(seen) / len(seen))
        if checkpoint is not None:
            _save(checkpoint, hp_hash, method, state)
    progress.close()
    state["eval_s"] += evaluate.seconds - eval_base
    if state["status"] == "diverged":
        log.warning("%s diverged (non-finite parameters or accuracy) after %d batches", desc,
                    state["global"])
    return {
        "status": state["status"],
        "R": state["R"], "b": state["b"],
        "curve": {"progress": [c[0] for c in state["curve"]], "batch": [c[1] for c in state["curve"]],
                  "acc": [c[2] for c in state["curve"]]},
        "test_sizes": [len(t.test_y) for t in bench.tasks],
        "timings": {"train_s": state["train_s"], "eval_s": state["eval_s"],
                    "wall_s": time.perf_counter() - t_run, "batches": state["global"],
                    "resumed": state["resumed"]},
        "counters": method.counters,
    }


def _iid_chunk_ends(phase: Phase, n_batches: int, n_tasks: int, hp: dict) -> set[int]:
    """`iid.eval` = chunks: an R row after each 1/T of the shuffled stream (spec D13)."""
    if phase.task is not None or hp.get("iid.eval", "final") != "chunks":
        return set()
    return {round(k * n_batches / n_tasks) for k in range(1, n_tasks + 1)}


def _rows_for_phase(phase: Phase, accs: list[float], n_tasks: int,
                    chunk_ends: set[int]) -> list[list[float]]:
    """The R rows a finished phase adds: one per task phase. The iid oracle has a single
    phase; by default its final evaluation fills every row (spec D13), so its BWT is
    exactly 0 as the paper prints it; with chunks the earlier rows were added on the way."""
    if phase.task is not None or chunk_ends:
        return [accs]
    return [accs] * n_tasks


def _save(path: Path, hp_hash: str, method: Method, state: dict) -> None:
    blob = {"version": CHECKPOINT_VERSION, "hp_hash": hp_hash, "state": state,
            "method": method.state_dict(), "generator": method.ctx.generator.get_state(),
            "torch_rng": torch.get_rng_state()}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def _resume(path: Path, hp_hash: str, method: Method, fresh: dict) -> dict:
    try:
        blob = torch.load(path, weights_only=True, map_location=method.device)
    except Exception as exc:  # a checkpoint is a cache: unreadable means start over
        log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
        return fresh
    if blob.get("version") != CHECKPOINT_VERSION or blob.get("hp_hash") != hp_hash:
        log.warning("ignoring checkpoint %s from a different protocol", path)
        return fresh
    method.load_state_dict(blob["method"])
    method.ctx.generator.set_state(blob["generator"].cpu())
    torch.set_rng_state(blob["torch_rng"].cpu())
    state = blob["state"]
    state["resumed"] = state.get("resumed", 0) + 1
    log.info("resumed from %s at batch %d", path, state["global"])
    return state
