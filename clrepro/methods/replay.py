"""Experience replay with a reservoir memory (ER) and Maximally Interfered Retrieval (MIR).

Both follow GMED's protocol (spec gmed-2021.md §4.3-4.4): a stream batch of 10, a replay
batch of 10 drawn from a class-agnostic reservoir memory (no task filtering: task-free), one
SGD step on their union per iteration (3 iterations per batch on mini-ImageNet), then the
stream batch is offered to the reservoir.
"""

from __future__ import annotations

import torch

from clrepro.memory import MaximallyInterfered, Reservoir, SlotMemory, Uniform
from clrepro.methods.base import Method, register

LOSS_MODES = ("union_mean", "sum_of_means")


@register
class ER(Method):
    """Experience Replay (Robins 1995; Rolnick et al. 2019) with reservoir sampling: the
    update of GMED's Eq. 7 without editing, theta <- theta - tau * grad l((x_M, y_M) U (x_D, y_D)).

    hp: lr, memory, replay.batch_size, replay.iterations, er.loss (spec D5: union_mean =
    mean over the 20 examples, paper; sum_of_means = stream mean + memory mean, code).
    Memory = SlotMemory + `make_update()` (Reservoir) + `make_retrieval()` (Uniform);
    subclasses swap a component (MIR: retrieval; GSS: update) or edit memory before the
    update (`before_update`, GMED).
    """

    name = "er"
    needs_memory = True  # what it fits (clrepro.methods.catalog.COMPATIBILITY)
    optional_hyperparameters = {
        "gmed.log_edits": "keep unedited copies of memory examples (GMED Figs. 5-6)",
    }
    hyperparameters = {
        "replay.batch_size": "replayed memory examples per step",
        "replay.iterations": "updates per incoming batch",
        "er.loss": "union_mean | sum_of_means (D5)",
    }
    state_attrs = ("memory",)
    stored_data_attrs = ("memory",)  # training images kept (data storage)

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        if hp["er.loss"] not in LOSS_MODES:
            raise ValueError(f"er.loss must be one of {LOSS_MODES}")
        self.memory = SlotMemory(hp["memory"], ctx.input_shape, self.device, ctx.generator,
                                 self.make_update(), bool(hp.get("gmed.log_edits", False)))
        self.retrieval = self.make_retrieval()

    def make_update(self):
        return Reservoir()

    def make_retrieval(self):
        return Uniform()

    def replay_indices(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.retrieval(self.memory, self.hp["replay.batch_size"], x, y, None, self.model)

    def before_update(self, x: torch.Tensor, y: torch.Tensor, iteration: int) -> None:
        """Hook run at every iteration before the replay batch is drawn (GMED edits here)."""

    def replay_loss(self, x, y, tasks, mx, my, mt) -> torch.Tensor:
        if len(my) == 0:
            return self.loss(x, y, tasks)
        if self.hp["er.loss"] == "union_mean":
            return self.loss(torch.cat([x, mx]), torch.cat([y, my]), torch.cat([tasks, mt]))
        return self.loss(x, y, tasks) + self.loss(mx, my, mt)

    def observe(self, x, y, tasks):
        for iteration in range(self.hp["replay.iterations"]):
            self.before_update(x, y, iteration)
            idx = self.replay_indices(x, y)
            self.opt.zero_grad(set_to_none=True)
            self.replay_loss(x, y, tasks, *self.memory.batch(idx)).backward()
            self.opt.step()
        self.memory.add(x, y, tasks)


@register
class MIR(ER):
    """Maximally Interfered Retrieval (Aljundi et al. 2019a): ER with the retrieval
    clrepro.memory.MaximallyInterfered: draw `mir.candidates` memory examples, take a virtual
    SGD step (lr tau) on the stream batch, and replay the `replay.batch_size` candidates whose
    loss increases most (current-task candidates are not filtered out, as in GMED).

    hp: + mir.candidates (50; 25 on mini-ImageNet).
    """

    name = "mir"
    hyperparameters = {
        "mir.candidates": "memory candidates scored per step",
    }

    def make_retrieval(self):
        return MaximallyInterfered(self.hp["mir.candidates"], self.hp["lr"])
