"""Hindsight Anchor Learning (Chaudhry et al. 2020), task-aware (GMED spec §4.5)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from clrepro.memory import TaskRingMemory, UniformOverTasks
from clrepro.methods.base import Method, register
from clrepro.methods.lookahead import forward_with, sgd_step_params


@register
class HAL(Method):
    """HAL: experience replay plus one learned anchor per class per task whose predictions
    the updates must not change.

    - Update (HAL Eq. 6): theta~ = theta - tau * grad l(B U B_M) is a temporary ER step;
      the real step minimises l(B U B_M; theta) + lambda * mean_e ||f_theta(e) - f_theta~(e)||^2,
      differentiated through theta~ (second order).
    - Anchors (HAL Eqs. 4-5), learnt at the end of each task for each of its classes c:
      phi = theta fine-tuned for one pass over the episodic memory (the hindsight model);
      e maximises l(f_phi(e), c) - l(f_theta(e), c) - gamma * ||h_theta(e) - mu_c||^2,
      mu_c the running mean of the task's class-c features, by `hal.anchor_steps` steps of
      gradient ascent at `hal.anchor_lr`.
    - Episodic memory: the last m = memory / T examples of each task (as GEM's).

    hp: lr, memory, replay.batch_size, hal.lambda (0.1), hal.gamma (0.1), hal.anchor_steps
    (100), hal.anchor_lr (0.1) — suite defaults: the GMED paper gives none (spec §4.5).
    """

    name = "hal"
    needs_memory = True
    needs_task_ids = True  # anchors per task
    hyperparameters = {
        "hal.lambda": "anchor loss weight",
        "hal.gamma": "mean-embedding weight",
        "hal.anchor_steps": "anchor optimisation steps",
        "hal.anchor_lr": "anchor learning rate",
        "replay.batch_size": "replayed examples per step",
    }
    state_attrs = ("memory", "anchors", "anchor_y", "feature_sum", "feature_count")
    stored_data_attrs = ("memory",)  # training images kept (data storage)

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        self.memory = TaskRingMemory(ctx.n_tasks, max(1, hp["memory"] // ctx.n_tasks),
                                     ctx.input_shape, self.device,
                                     torch.zeros(ctx.n_tasks, dtype=torch.long))
        self.retrieval = UniformOverTasks(ctx.generator)
        self.anchors = torch.zeros(0, *ctx.input_shape, device=self.device)
        self.anchor_y = torch.zeros(0, dtype=torch.long, device=self.device)
        n_feat = self.model.features(torch.zeros(1, *ctx.input_shape, device=self.device)).shape[1]
        self.feature_sum = torch.zeros(ctx.n_classes, n_feat, device=self.device)
        self.feature_count = torch.zeros(ctx.n_classes, device=self.device)

    def begin_task(self, t, data=None):
        super().begin_task(t, data)
        self.feature_sum.zero_()
        self.feature_count.zero_()

    def replay_batch(self):
        """A uniform draw from the filled slots of the tasks seen so far."""
        idx = self.retrieval(self.memory, self.hp["replay.batch_size"], self.task)
        return (None, None) if idx is None else self.memory.batch(idx)

    def observe(self, x, y, tasks):
        with torch.no_grad():  # running class means of the current task's features
            feats = self.model.features(x)
            self.feature_sum.index_add_(0, y, feats)
            self.feature_count.index_add_(0, y, torch.ones_like(y, dtype=torch.float))
        mx, my = self.replay_batch()
        bx, by = (x, y) if mx is None else (torch.cat([x, mx]), torch.cat([y, my]))
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(bx), by)
        if len(self.anchors):
            temp = sgd_step_params(self.model, loss, self.hp["lr"], create_graph=True)
            drift = forward_with(self.model, temp, self.anchors) - self.model(self.anchors)
            loss = loss + self.hp["hal.lambda"] * drift.pow(2).sum(1).mean()
        loss.backward()
        self.opt.step()
        self.memory.add(x, y, self.task)

    def end_task(self, t, data=None):
        hindsight = self._finetuned_on_memory(t)
        classes = torch.nonzero(self.feature_count > 0).flatten()
        means = self.feature_sum[classes] / self.feature_count[classes, None]
        e = torch.rand(len(classes), *self.ctx.input_shape, generator=self.ctx.generator)
        e = e.to(self.device).requires_grad_(True)
        for _ in range(self.hp["hal.anchor_steps"]):
            forgetting = (F.cross_entropy(hindsight(e), classes)
                          - F.cross_entropy(self.model(e), classes))
            pull = (self.model.features(e) - means).pow(2).sum(1).mean()
            (g,) = torch.autograd.grad(forgetting - self.hp["hal.gamma"] * pull, e)
            e = (e + self.hp["hal.anchor_lr"] * g).detach().requires_grad_(True)
        self.anchors = torch.cat([self.anchors, e.detach()])
        self.anchor_y = torch.cat([self.anchor_y, classes])
        self.model.zero_grad(set_to_none=True)

    def _finetuned_on_memory(self, t):
        hindsight = copy.deepcopy(self.model)
        opt = torch.optim.SGD(hindsight.parameters(), lr=self.hp["lr"])
        xs, ys, ws = self.memory.tasks_batch(t + 1)
        keep = ws.flatten() > 0
        mx, my = xs.flatten(0, 1)[keep], ys.flatten()[keep]
        order = torch.randperm(len(my), generator=self.ctx.generator).to(self.device)
        b = self.hp["replay.batch_size"]
        for i in range(0, len(order), b):
            sl = order[i:i + b]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(hindsight(mx[sl]), my[sl]).backward()
            opt.step()
        for p in hindsight.parameters():
            p.requires_grad_(False)
        return hindsight
