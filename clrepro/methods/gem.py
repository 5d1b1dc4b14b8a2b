"""Gradient Episodic Memory (Lopez-Paz & Ranzato 2017, Algorithm 1 and Eqs. 6-11)."""

from __future__ import annotations

import torch

from clrepro.methods.base import Method, register
from clrepro.methods.grads import flat_grad, group_gradients, set_flat_grad
from clrepro.methods.qp import solve_gem_dual

MARGIN_MODES = ("additive", "lower_bound")
MEMORY_POLICIES = ("last_m", "ring_shared_pointer")


def project_gradient(g: torch.Tensor, mem_grads: torch.Tensor, margin: float, margin_mode: str,
                     eps: float) -> tuple[torch.Tensor | None, int]:
    """g~ = g + M^T v* with v* from the dual QP (Eq. 11, sign-corrected; see methods.qp).

    margin_mode "additive" (paper, default): solve with v >= 0, then add gamma to v*
    ("adding a small constant gamma >= 0 to v*"). "lower_bound" (official code): solve with
    v >= gamma. Computed in float64. Returns (None, retries) if the QP could not be solved.
    """
    if margin_mode not in MARGIN_MODES:
        raise ValueError(f"gem.margin_mode must be one of {MARGIN_MODES}, got {margin_mode!r}")
    m = mem_grads.double()
    gd = g.double()
    gram = (m @ m.T).cpu().numpy()
    mg = (m @ gd).cpu().numpy()
    v_min = margin if margin_mode == "lower_bound" else 0.0
    result = solve_gem_dual(gram, mg, v_min, eps)
    if result.v is None:
        return None, result.retries
    v = torch.as_tensor(result.v, dtype=torch.float64, device=g.device)
    if margin_mode == "additive":
        v = v + margin
    return (gd + m.T @ v).to(g.dtype), result.retries


@register
class GEM(Method):
    """GEM: an episodic memory of the last m examples of each task (m = memory / T); every
    step projects the stream gradient so that, to first order, no previous task's memory
    loss increases: <g~, g_k> >= 0 for all k < t (Eq. 7), with g~ the closest such vector
    (Eq. 8). Previous tasks' gradients g_k are the mean-loss gradients over all of M_k.

    hp: lr, memory (total slots), gem.margin, gem.margin_mode, gem.qp_eps, gem.memory_policy.
    Counters: projections (constraint violated), qp_retries (ridge raised after a
    non-positive-definite failure), qp_failures (no solution; the step used g unprojected).
    """

    name = "gem"
    state_attrs = ("mem_x", "mem_y", "mem_n", "mem_ptr")

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        if hp["gem.memory_policy"] not in MEMORY_POLICIES:
            raise ValueError(f"gem.memory_policy must be one of {MEMORY_POLICIES}")
        self.per_task = max(1, hp["memory"] // ctx.n_tasks)
        t, m = ctx.n_tasks, self.per_task
        self.mem_x = torch.zeros(t, m, *ctx.input_shape, device=self.device)
        first = (torch.zeros(t, dtype=torch.long) if ctx.class_mask is None
                 else ctx.class_mask.int().argmax(1).cpu())
        self.mem_y = first.view(t, 1).repeat(1, m).to(self.device)
        self.mem_n = [0] * t  # examples written into each task's memory so far
        self.mem_ptr = 0  # the official code's shared ring pointer
        self.params = list(self.model.parameters())

    def remember(self, x: torch.Tensor, y: torch.Tensor) -> None:
        t, m = self.task, self.per_task
        if self.hp["gem.memory_policy"] == "last_m":
            # ring buffer per task: after n >= m writes it holds exactly the last m examples
            slots = (self.mem_n[t] + torch.arange(len(x))) % m
        else:
            slots = (self.mem_ptr + torch.arange(len(x))) % m
            self.mem_ptr = (self.mem_ptr + len(x)) % m
        keep = slice(max(0, len(x) - m), len(x))  # a batch larger than m keeps its tail
        self.mem_x[t, slots[keep]] = x[keep]
        self.mem_y[t, slots[keep]] = y[keep]
        self.mem_n[t] += len(x)

    def memory_batch(self):
        """Previous tasks' memories as [K, m, ...] with per-slot loss weights 1/|M_k|."""
        k, m = self.task, self.per_task
        filled = torch.tensor([min(n, m) for n in self.mem_n[:k]], device=self.device)
        if self.hp["gem.memory_policy"] == "ring_shared_pointer":
            # the official buffer is used whole, unwritten (zero) slots included
            filled = torch.full_like(filled, m)
        slot = torch.arange(m, device=self.device)
        weights = (slot < filled[:, None]).float() / filled[:, None].clamp(min=1)
        masks = None if self.ctx.class_mask is None else self.ctx.class_mask[:k]
        return self.mem_x[:k], self.mem_y[:k], weights, masks

    def observe(self, x, y, tasks):
        self.remember(x, y)
        mem_grads = None
        if self.task > 0:
            xs, ys, ws, masks = self.memory_batch()
            mem_grads = group_gradients(self.model, lambda inp: self.model(inp), xs, ys, ws, masks)
        self.opt.zero_grad(set_to_none=True)
        self.loss(x, y, tasks).backward()
        if mem_grads is not None:
            g = flat_grad(self.params)
            if bool((mem_grads @ g < 0).any()):
                self.count("projections")
                projected, retries = project_gradient(
                    g, mem_grads, self.hp["gem.margin"], self.hp["gem.margin_mode"],
                    self.hp["gem.qp_eps"])
                self.count("qp_retries", retries)
                if projected is None:
                    self.count("qp_failures")
                else:
                    set_flat_grad(self.params, projected)
        self.opt.step()
