"""Memory-free baselines of GEM §4: single, independent, multimodal, and the iid oracle."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from clrepro.methods.base import Method, register


@register
class Single(Method):
    """"single" (GEM §4): one network trained on the stream with cross-entropy and SGD.
    Also GMED's "fine tuning"."""

    name = "single"

    def observe(self, x, y, tasks):
        self.sgd_step(x, y, tasks)


@register
class Finetune(Single):
    """GMED Table 2 "Fine tuning": the same learner as GEM's "single" under GMED's protocol."""

    name = "finetune"


@register
class IID(Single):
    """"single, shuffled data" (GEM Table 3, first row; GMED's iid online/offline): the same
    learner on one stream mixing all tasks' examples uniformly, for `epochs` passes."""

    name = "iid"
    stream = "iid"


@register
class Multimodal(Single):
    """"multimodal" (GEM §4): like single, but the input layer is selected by the task
    descriptor (model spec `multimodal_mlp`, chosen by the paper module)."""

    name = "multimodal"
    needs_task_ids = True  # one head per task

    def observe(self, x, y, tasks):
        # the stream holds one task per batch: pass it as an int (no device sync)
        self.opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(x, self.task), y).backward()
        self.opt.step()


@register
class Independent(Method):
    """"independent" (GEM §4): one network per task with T times fewer hidden units (nf/T
    for the ResNet). With `independent.clone` (official code: yes) the network of a new task
    starts as a copy of the previous task's network.

    One SGD optimiser over all networks equals one optimiser per network here: plain SGD
    keeps no state and skips parameters whose gradient is None.
    """

    name = "independent"
    needs_task_ids = True  # one network per task
    hyperparameters = {
        "independent.clone": "a new task's network starts as a copy of the previous one",
    }

    def make_model(self) -> nn.Module:
        spec = dict(self.hp["model"])
        t_count = self.ctx.n_tasks
        if spec["name"] == "mlp":
            spec["hidden"] = [max(1, h // t_count) for h in spec.get("hidden", (100, 100))]
        elif spec["name"] == "resnet18_reduced":
            spec["nf"] = max(1, spec.get("nf", 20) // t_count)
        mask = self.ctx.class_mask
        self.local_classes = None
        if mask is not None:  # task-incremental: each network only has its task's outputs
            self.local_classes = [torch.nonzero(m).flatten() for m in mask]
        nets = []
        for t in range(t_count):
            n_out = len(self.local_classes[t]) if self.local_classes else self.ctx.n_classes
            nets.append(self.build_model(spec, n_outputs=n_out))
        return nn.ModuleList(nets)

    def begin_task(self, t, data=None):
        if self.hp["independent.clone"] and t > 0 and t != self.task:
            self.model[t].load_state_dict(self.model[self.task].state_dict())
        super().begin_task(t, data)

    def forward(self, x, tasks, model=None):
        t = int(tasks[0])
        out = self.model[t](x)
        if self.local_classes is None:
            return out
        full = out.new_full((len(x), self.ctx.n_classes), float("-inf"))
        full[:, self.local_classes[t]] = out
        return full

    def observe(self, x, y, tasks):
        t = self.task
        self.opt.zero_grad(set_to_none=True)
        if self.local_classes is None:
            loss = F.cross_entropy(self.model[t](x), y)
        else:
            local = torch.searchsorted(self.local_classes[t], y)
            loss = F.cross_entropy(self.model[t](x), local)
        loss.backward()
        self.opt.step()
