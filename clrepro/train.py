"""The one training/evaluation loop: stream -> method.observe -> accuracy matrix R.

Evaluation schedule (GEM spec §4.5): all tasks before any training (the random-init
baseline b), every `eval_every` mini-batches (the learning curves of GEM Fig. 1 right), and
after the last example of each task (row i of R). Training time excludes evaluation.
The loop checkpoints at task boundaries and every `checkpoint_every` batches; a rerun
resumes from the checkpoint and, because every random stream is derived from the run seed
and saved with the checkpoint, ends with the same metrics as an uninterrupted run. A
checkpoint is keyed on the run's whole protocol (hyperparameters, benchmark definition,
seed, epochs): one made under another protocol, or one that does not load into this run's
model, is moved aside (renamed, and the log names both files) before the model is touched,
and the run starts from a freshly built model.
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

from clrepro.analysis import similarity
from clrepro.data.benchmarks import Benchmark, derive_seed
from clrepro.data.images import ImageFiles
from clrepro.data.transforms import as_float
from clrepro.fsutil import atomic_path, stable_hash
from clrepro.methods.base import Context, Method, TaskStream
from clrepro.progress import Progress

log = logging.getLogger("clrepro")
CHECKPOINT_VERSION = 2  # 2: keyed on the whole protocol (checkpoint_key)

# What this trainer reads from a run's hyperparameters (checked at plan time, see
# clrepro.methods.catalog); methods declare their own keys.
TRAINER_KEYS = {
    "batch_size": "stream examples per step",
    "eval_every": "steps between learning-curve evaluations",
}
TRAINER_OPTIONAL = {
    "eval_batch_size": "evaluation batch size (1000)",
    "checkpoint_every": "steps between mid-task checkpoints (0: task ends only)",
    "eval.drop_last_quirk": "skip each task's last test example (GEM code, D5)",
    "eval.curve_tasks": "tasks evaluated at curve points between task ends (default all)",
    "eval_split": "test | val (tuning)",
    "batch.merge_last": "merge a pass's final partial batch into the one before it (no batch "
                        "smaller than batch_size)",
    "tasks_limit": "train on the first k tasks only (tuning)",
    "early_stopping": "stop a task's passes when validation accuracy stops improving",
    "iid.eval": "final | chunks: R rows of the iid stream (GEM D13)",
    "eval.rows": "all (an R row after every task, and the initial row b) | last (final row only)",
    "similarity": "{samples, per_class}: after the stream, pair similarities of that many test "
                  "images (per class) saved as artifacts (DRL Figs. 1-2)",
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
                tasks = torch.full((hi - lo,), t, dtype=torch.long, device=self.device)
                hits += (method.predict(xb, tasks) == y[lo:hi]).sum()
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_context(bench: Benchmark, device: torch.device, seed: int, epochs: int,
                 normalise: bool = False, weights=None) -> Context:
    mask = bench.class_mask().to(device) if bench.task_incremental else None
    gen = torch.Generator().manual_seed(derive_seed(seed, "method"))
    return Context(bench.input_shape, bench.n_classes, bench.n_tasks, mask, device, gen,
                   [len(t.train_y) * epochs for t in bench.tasks], seed,
                   bench.input_norm() if normalise else None, bench.raw_image_bytes,
                   [t.classes.tolist() for t in bench.tasks], weights)


def train_run(bench: Benchmark, method_cls: type[Method], hp: dict[str, Any], seed: int,
              epochs: int, device: torch.device, checkpoint: Path | None = None,
              desc: str = "run", weights=None) -> dict[str, Any]:
    """Train one method on one benchmark stream; return the measured part of a record.
    `weights`: pretrained state dicts by backbone name (Context.weights).

    Tuning runs (GMED §5.3) use hp `tasks_limit` (only the first k tasks), `eval_split` =
    val, and `early_stopping`: a task's further passes are skipped once the mean validation
    accuracy over the seen tasks stops improving after a pass.
    """
    if hp.get("tasks_limit"):
        bench = bench.first_tasks(hp["tasks_limit"])
    reset_peak_memory(device)

    def build() -> Method:
        torch.manual_seed(derive_seed(seed, "init"))  # model initialisation
        ctx = make_context(bench, device, seed, epochs, bool(hp["model"].get("normalize")), weights)
        return method_cls(ctx, hp)
    phases = build_phases(bench, method_cls.stream, epochs, seed)
    batch_size, eval_every = hp["batch_size"], hp["eval_every"]
    checkpoint_every = hp.get("checkpoint_every", 0)
    early_stopping = hp.get("early_stopping", False)
    evaluate = Evaluator(bench, device, hp.get("eval_batch_size", 1000),
                         hp.get("eval.drop_last_quirk", False), hp.get("eval_split", "test"))
    all_x = torch.cat([t.train_x for t in bench.tasks]).to(device)
    all_y = torch.cat([t.train_y for t in bench.tasks]).to(device)
    all_t = torch.cat([torch.full((len(t.train_y),), i, dtype=torch.long)
                       for i, t in enumerate(bench.tasks)]).to(device)
    starts = np.cumsum([0, *(len(t.train_y) for t in bench.tasks)])
    # merged: the final partial batch joins the one before (e.g. BatchNorm statistics would
    # otherwise come from a batch of a few images)
    merge_last = hp.get("batch.merge_last", False)
    n_batches = [max(1, len(p.order) // batch_size) if merge_last else
                 math.ceil(len(p.order) / batch_size) for p in phases]

    def task_stream(phase: Phase) -> TaskStream:
        if phase.task is None:
            return TaskStream(all_x, all_y)
        lo, hi = int(starts[phase.task]), int(starts[phase.task + 1])
        return TaskStream(all_x[lo:hi], all_y[lo:hi])
    hp_hash = checkpoint_key(hp, bench, seed, epochs)

    state = {"phase": 0, "batch": 0, "global": 0, "R": [], "curve": [], "b": None,
             "train_s": 0.0, "eval_s": 0.0, "status": "ok", "resumed": 0, "best": -1.0}
    method, state = resume(checkpoint, hp_hash, build, state)
    t_run = time.perf_counter()
    eval_before = state["eval_s"]  # evaluation time of the runs before a resume

    def save() -> None:
        state["eval_s"] = eval_before + evaluate.seconds
        _save(checkpoint, hp_hash, method, state)

    # "last": R is the final row only (what accuracy-after-the-stream tables read)
    last_row_only = hp.get("eval.rows", "all") == "last"
    if state["b"] is None:
        state["b"] = [None] * len(evaluate.tests) if last_row_only else evaluate(method)
        state["curve"].append((0.0, 0, state["b"]))

    progress = Progress(sum(n_batches), desc)
    progress.update(state["global"])

    curve_tasks = hp.get("eval.curve_tasks")  # periodic points: only the tasks figures read

    def curve_point(p: int, j: int, tasks: list[int] | None = None) -> list[float | None]:
        accs = evaluate(method, tasks)
        phase = phases[p]
        if phase.task is None:
            done = bench.n_tasks * j / n_batches[p]
        else:
            done = phase.task + (phase.epoch + j / n_batches[p]) / epochs
        state["curve"].append((float(done), state["global"], accs))
        return accs

    while state["phase"] < len(phases) and state["status"] == "ok":
        p = state["phase"]
        phase = phases[p]
        task = phase.task if phase.task is not None else 0
        order = phase.order.to(device)
        xp, yp, tp = as_float(all_x[order]), all_y[order], all_t[order]
        offset = 0 if phase.task is None else int(starts[task])
        ids = order - offset  # positions in the task's training set (the whole set for iid)
        _sync(device)
        tick = time.perf_counter()
        if state["batch"] == 0 and phase.epoch == 0:
            method.begin_task(task, task_stream(phase))
        chunk_ends = _iid_chunk_ends(phase, n_batches[p], bench.n_tasks, hp)
        for j in range(state["batch"], n_batches[p]):
            if j > 0 and state["global"] % eval_every == 0:
                _sync(device)
                state["train_s"] += time.perf_counter() - tick
                curve_point(p, j, curve_tasks)
                if not method.parameters_finite():
                    state["status"] = "diverged"
                    break
                tick = time.perf_counter()
            last = merge_last and j == n_batches[p] - 1
            sl = slice(j * batch_size, None if last else (j + 1) * batch_size)
            method.step, method.batch_ids = state["global"], ids[sl]
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
                save()
                tick = time.perf_counter()
        if state["status"] != "ok":
            break
        if phase.last:  # boundary work is training time
            method.end_task(task, task_stream(phase))
        _sync(device)
        state["train_s"] += time.perf_counter() - tick
        stop_task = phase.last
        if not phase.last:  # a pass of a multi-epoch task ended
            if early_stopping:
                accs = curve_point(p, n_batches[p])
                score = sum(accs[:task + 1]) / (task + 1)
                stop_task = score <= state["best"]
                state["best"] = max(state["best"], score)
            if not stop_task:
                state["phase"], state["batch"] = p + 1, 0
                continue
            _sync(device)  # early stopping ended the task after this pass
            tick = time.perf_counter()
            method.end_task(task, task_stream(phase))
            _sync(device)
            state["train_s"] += time.perf_counter() - tick
        following = _next_task(phases, p)
        if last_row_only and following < len(phases):  # no evaluation until the last task
            if not method.parameters_finite():
                state["status"] = "diverged"
                break
            state["phase"], state["batch"], state["best"] = following, 0, -1.0
            log.info("%s: task %d/%d done", desc, task + 1, bench.n_tasks)
            if checkpoint is not None:
                save()
            continue
        accs = curve_point(p, n_batches[p])
        if not method.parameters_finite() or not all(math.isfinite(a) for a in accs):
            state["status"] = "diverged"
            break
        rows = _rows_for_phase(phase, accs, bench.n_tasks, chunk_ends)
        state["R"].extend(rows[-1:] if last_row_only else rows)
        state["phase"], state["batch"], state["best"] = following, 0, -1.0
        if phase.task is not None:
            seen = accs[: phase.task + 1]
            log.info("%s: task %d/%d done, mean accuracy on seen tasks %.3f", desc,
                     phase.task + 1, bench.n_tasks, sum(seen) / len(seen))
        if checkpoint is not None:
            save()
    progress.close()
    state["eval_s"] = eval_before + evaluate.seconds
    if state["status"] == "diverged":
        log.warning("%s diverged (non-finite parameters or accuracy) after %d batches", desc,
                    state["global"])
    return {
        "status": state["status"],
        "R": state["R"], "b": state["b"],
        "curve": {"progress": [c[0] for c in state["curve"]], "batch": [c[1] for c in state["curve"]],
                  "acc": [c[2] for c in state["curve"]]},
        "test_sizes": [len(y) for _, y in evaluate.tests],
        "timings": {"train_s": state["train_s"], "eval_s": state["eval_s"],
                    "wall_s": time.perf_counter() - t_run, "batches": state["global"],
                    "resumed": state["resumed"]},
        "counters": method.counter_values(),
        "memory_bytes": method.memory_bytes(),
        "peak_memory": peak_memory(device),
        "artifacts": _artifacts(method, hp, evaluate, seed) if state["status"] == "ok" else {},
    }


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


def _artifacts(method: Method, hp: dict[str, Any], evaluate: Evaluator, seed: int) -> dict:
    """What the method keeps for figures, plus the trainer's similarity study if asked."""
    out = method.artifacts()
    if hp.get("similarity"):
        out.update(similarity.study(method.model, evaluate.tests, hp["similarity"], seed))
    return out


def _next_task(phases: list[Phase], p: int) -> int:
    """Index of the first phase after p that belongs to another task."""
    q = p + 1
    while q < len(phases) and phases[q].task == phases[p].task and phases[q].task is not None:
        q += 1
    return q


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


def checkpoint_key(hp: dict[str, Any], bench: Benchmark, seed: int, epochs: int) -> str:
    """What a checkpoint must have been made under to be resumed: the run's hyperparameters
    (as resolved), its benchmark's definition and task count, seed and epochs."""
    return stable_hash({"hp": hp, "benchmark": bench.defn.to_dict(), "n_tasks": bench.n_tasks,
                        "seed": seed, "epochs": epochs})


def _save(path: Path, key: str, method: Method, state: dict) -> None:
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
