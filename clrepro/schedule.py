"""Strategies the online trainer (clrepro.train) asks instead of reading paper options: which
R rows and curve points are evaluated (EvalSchedule), when a task's passes stop and how many
tasks are trained (StopRule), and studies run on the trained model after the stream (Study).

The defaults are the plain protocol (GEM spec §4.5): the initial row b, an R row after every
task, curve points on every task, the whole test set. Papers that ask for more build these
objects from their runs' hyperparameters (clrepro.papers.strategies); the trainer never
reads those keys itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

# a post-run study: (trained model, evaluation sets, run seed) -> artifact tensors by name
# (planning reads this module and must not import torch, hence no torch types here)
Study = Callable[[Any, list, int], dict[str, Any]]


class PhaseLike(Protocol):
    task: int | None


@dataclass(frozen=True)
class EvalSchedule:
    """`split`: test | val (tuning). `drop_last`: skip each task's last evaluation example
    (still dividing by the full count). `curve_tasks`: tasks evaluated at the periodic curve
    points between task ends (None: all). `last_row_only`: no initial row b and no rows
    before the last task's (R is the final row only). `iid_chunks`: the iid stream adds an R
    row after each 1/T of its batches, instead of its final row copied T times."""
    split: str = "test"
    drop_last: bool = False
    curve_tasks: list[int] | None = None
    last_row_only: bool = False
    iid_chunks: bool = False

    def chunk_ends(self, phase: PhaseLike, n_batches: int, n_tasks: int) -> set[int]:
        """Batch counts of an iid phase after which an R row is evaluated."""
        if phase.task is not None or not self.iid_chunks:
            return set()
        return {round(k * n_batches / n_tasks) for k in range(1, n_tasks + 1)}

    def rows(self, phase: PhaseLike, accs: list[float], n_tasks: int,
             chunk_ends: set[int]) -> list[list[float]]:
        """The R rows a finished phase adds: one per task phase. The iid oracle has a single
        phase; by default its final evaluation fills every row (spec D13), so its BWT is
        exactly 0 as the paper prints it; with chunks the earlier rows were added on the way."""
        rows = [accs] if phase.task is not None or chunk_ends else [accs] * n_tasks
        return rows[-1:] if self.last_row_only else rows


@dataclass(frozen=True)
class StopRule:
    """`tasks`: train on the first k tasks only (None: all). `early_stopping`: a task's
    further passes are skipped once the mean accuracy over the seen tasks (on the schedule's
    split) stops improving after a pass."""
    tasks: int | None = None
    early_stopping: bool = False

    def benchmark(self, bench):
        return bench.first_tasks(self.tasks) if self.tasks else bench

    def task_done(self, accs: list[float], task: int, state: dict) -> bool:
        """After a pass that was not the task's last: whether the task stops here. The best
        score so far lives in the loop state (a resumed run keeps it)."""
        score = sum(accs[:task + 1]) / (task + 1)
        done = score <= state["best"]
        state["best"] = max(state["best"], score)
        return done
