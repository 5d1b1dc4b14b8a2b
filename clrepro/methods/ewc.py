"""Elastic Weight Consolidation (Kirkpatrick et al. 2017) as GEM's official code runs it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from clrepro.methods.base import Method, register
from clrepro.methods.grads import has_batchnorm

FISHER_MODES = ("squared_mean_grad", "empirical")


@register
class EWC(Method):
    """EWC with one quadratic penalty per previous task (GEM spec §4.4, EWC steps 1-4):

        loss_t = CE + sum_{k<t} strength * sum_i F_{k,i} (theta_i - theta*_{k,i})^2

    with no 1/2 factor. Each task keeps its first n_F stream examples ("Fisher samples");
    at the task's end F_k is the element-wise square of the gradient of the mean loss over
    them (`ewc.fisher` = squared_mean_grad, official code) or the mean of per-example squared
    gradients (`empirical`, the usual diagonal empirical Fisher).

    The sum over previous tasks is kept in closed form -- A = sum_k s F_k, B = sum_k s F_k
    theta*_k -- and its gradient 2 (A theta - B) is added to the CE gradient, which equals
    differentiating the per-task sum but costs O(p) per step instead of O(T p).

    hp: lr, ewc.strength, ewc.fisher_samples, ewc.fisher.
    """

    name = "ewc"
    hyperparameters = {
        "ewc.fisher_samples": "stored examples per task for the Fisher",
        "ewc.strength": "penalty strength",
        "ewc.fisher": "squared_mean_grad | empirical (D9)",
    }
    state_attrs = ("fisher_x", "fisher_y", "pen_a", "pen_b")

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        if hp["ewc.fisher"] not in FISHER_MODES:
            raise ValueError(f"ewc.fisher must be one of {FISHER_MODES}")
        self.params = list(self.model.parameters())
        self.fisher_x: list[torch.Tensor] = []
        self.fisher_y: list[torch.Tensor] = []
        self.pen_a = [torch.zeros_like(p) for p in self.params]
        self.pen_b = [torch.zeros_like(p) for p in self.params]
        self.n_penalties = 0

    def begin_task(self, t, data=None):
        super().begin_task(t, data)
        self.fisher_x, self.fisher_y = [], []

    def observe(self, x, y, tasks):
        stored = sum(len(b) for b in self.fisher_y)
        need = self.hp["ewc.fisher_samples"] - stored
        if need > 0:
            self.fisher_x.append(x[:need].detach().clone())
            self.fisher_y.append(y[:need].clone())
        self.opt.zero_grad(set_to_none=True)
        self.loss(x, y, tasks).backward()
        if self.task > 0:
            # d/dtheta sum_k s F_k (theta - theta*_k)^2 = 2 (A theta - B)
            penalty_grads = torch._foreach_mul(self.pen_a, self.params)
            torch._foreach_sub_(penalty_grads, self.pen_b)
            torch._foreach_add_([p.grad for p in self.params], penalty_grads, alpha=2.0)
        self.opt.step()

    def end_task(self, t, data=None):
        x = torch.cat(self.fisher_x)
        y = torch.cat(self.fisher_y)
        tasks = torch.full_like(y, t)
        fisher = self._fisher(x, y, tasks)
        strength = self.hp["ewc.strength"]
        with torch.no_grad():
            for a, b, f, p in zip(self.pen_a, self.pen_b, fisher, self.params):
                a.add_(f, alpha=strength)
                b.add_(f * p, alpha=strength)

    def _fisher(self, x, y, tasks) -> list[torch.Tensor]:
        if self.hp["ewc.fisher"] == "squared_mean_grad":
            self.opt.zero_grad(set_to_none=True)
            self.loss(x, y, tasks).backward()
            fisher = [p.grad.detach().pow(2) for p in self.params]
            self.opt.zero_grad(set_to_none=True)
            return fisher
        if has_batchnorm(self.model):  # vmap cannot update BatchNorm running stats
            fisher = [torch.zeros_like(p) for p in self.params]
            for i in range(len(y)):
                self.opt.zero_grad(set_to_none=True)
                self.loss(x[i:i + 1], y[i:i + 1], tasks[i:i + 1]).backward()
                for f, p in zip(fisher, self.params):
                    f.add_(p.grad.detach().pow(2), alpha=1.0 / len(y))
            self.opt.zero_grad(set_to_none=True)
            return fisher
        named = {n: p.detach() for n, p in self.model.named_parameters()}
        mask = None if self.ctx.class_mask is None else self.ctx.class_mask[tasks[:1]]

        def example_loss(p, xi, yi):
            out = functional_call(self.model, p, (xi[None],))
            if mask is not None:
                out = out.masked_fill(~mask, float("-inf"))
            return F.cross_entropy(out, yi[None])

        per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))(named, x, y)
        return [per_example[n].pow(2).mean(0) for n in named]
