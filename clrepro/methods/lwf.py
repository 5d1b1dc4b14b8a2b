"""Learning without Forgetting with task-aware heads (Li & Hoiem 2017), as BLD compares with
it (Fini et al. 2020, §4.2): single-pass LwF and, with several epochs and batches of 500,
offline LwF.

When task t starts, the old heads' softened predictions softmax(phi_o(x) / tau) are
computed for every training image of the task, un-augmented, and kept for the whole task
("it still needs to compute the predictions for the whole task beforehand"): that store is
its inter- and intra-batch memory (N_task x old-head outputs x 4 B), and the task's images
must stay available (data storage). Each step minimises, averaged over the batch's views,
H(phi_t, y) + `lwf.weight` * sum_o H(softmax(phi_o / tau), stored predictions).

Both terms are reduced over the batch by `bld.batch_reduction` (sum by default, D10), the
key every ViewMethod reads: deliberately shared, so that LwF, Finetune, L2 and BLD, trained
at the same learning rate, also have losses on the same scale. Setting it to `mean` changes
LwF's effective step size as much as BLD's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clrepro.methods.base import register
from clrepro.methods.views import ViewMethod


@register
class LwF(ViewMethod):
    name = "lwf"
    hyperparameters = {
        "lwf.weight": "weight of the distillation loss",
        "lwf.tau": "softmax temperature of the stored predictions",
    }
    state_attrs = ("targets", "task_images")

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        self.targets: torch.Tensor | None = None  # [N_task, old-head outputs]
        self.task_images = 0

    @torch.no_grad()
    def begin_task(self, t, data=None):
        super().begin_task(t, data)
        self.task_images = len(data) if data is not None else 0
        if not self.old_heads or data is None:
            self.targets = None
            return
        was_training = self.model.training
        self.model.eval()
        parts = []
        for x, _ in data.batches(500):  # chunks only bound memory; results do not depend on it
            out = self.model(x)
            parts.append(torch.cat([F.softmax(out[:, h] / self.hp["lwf.tau"], dim=1)
                                    for h in self.old_heads], dim=1))
        self.model.train(was_training)
        self.targets = torch.cat(parts)

    def observe(self, x, y, tasks):
        losses = [lambda out, k: self.new_task_loss(out, y)]
        if self.targets is not None:
            stored = self.targets[self.batch_ids]
            losses = [lambda out, k: self.new_task_loss(out, y)
                      + self.hp["lwf.weight"] * self.distillation(out, stored)]
        self.hold_during_batch()
        (g,) = self.view_gradients(x, losses)
        self.descend(g, self.hp["lr"])

    def distillation(self, out: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
        tau, loss, lo = self.hp["lwf.tau"], 0.0, 0
        for h in self.old_heads:
            target = stored[:, lo:lo + len(h)]
            loss = loss + self.reduce(-(target * F.log_softmax(out[:, h] / tau, dim=1)).sum(1))
            lo += len(h)
        return loss

    def memory_bytes(self) -> dict[str, int]:
        """Data storage: the current task's training images as the dataset stores them (the
        paper's definition is unknown, spec §4.8)."""
        return {**super().memory_bytes(), "data_storage": self.task_images * self.ctx.raw_image_bytes}
