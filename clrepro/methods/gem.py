"""Gradient Episodic Memory (Lopez-Paz & Ranzato 2017, Algorithm 1 and Eqs. 6-11)."""

from __future__ import annotations

import numpy as np
import torch

from clrepro.memory import TaskRingMemory
from clrepro.methods.base import Method, register
from clrepro.methods.grads import flat_grad, group_gradients, set_flat_grad
from clrepro.methods.qp import solve_gem_dual

MARGIN_MODES = ("additive", "lower_bound")


def project_gradient(g: torch.Tensor, mem_grads: torch.Tensor, margin: float, margin_mode: str,
                     eps: float, host: tuple[np.ndarray, np.ndarray] | None = None
                     ) -> tuple[torch.Tensor | None, int]:
    """g~ = g + M^T v* with v* from the dual QP (Eq. 11, sign-corrected; see methods.qp).

    margin_mode "additive" (paper, default): solve with v >= 0, then add gamma to v*
    ("adding a small constant gamma >= 0 to v*"). "lower_bound" (official code): solve with
    v >= gamma. Computed in float64. Returns (None, retries) if the QP could not be solved.
    `host`: the QP's Gram matrix M M^T and linear term M g, already on the host (GEM.observe).
    """
    if margin_mode not in MARGIN_MODES:
        raise ValueError(f"gem.margin_mode must be one of {MARGIN_MODES}, got {margin_mode!r}")
    m = mem_grads.double()
    gd = g.double()
    gram, mg = host if host is not None else ((m @ m.T).cpu().numpy(), (m @ gd).cpu().numpy())
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
    GEM is task-aware: it uses the task boundaries of the stream.

    hp: lr, memory (total slots), gem.margin, gem.margin_mode, gem.qp_eps, gem.memory_policy.
    Counters: projections (constraint violated), qp_retries (ridge raised after a
    non-positive-definite failure), qp_failures (no solution; the step used g unprojected).
    """

    name = "gem"
    needs_memory = True
    needs_task_ids = True  # one constraint per past task
    hyperparameters = {
        "gem.margin": "gamma added to v* (or its lower bound)",
        "gem.margin_mode": "additive | lower_bound (D1)",
        "gem.qp_eps": "ridge of the QP (D3)",
        "gem.memory_policy": "last_m | ring_shared_pointer (D10)",
    }
    state_attrs = ("memory",)
    stored_data_attrs = ("memory",)  # training images kept (data storage)

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        first = (torch.zeros(ctx.n_tasks, dtype=torch.long) if ctx.class_mask is None
                 else ctx.class_mask.int().argmax(1).cpu())
        self.memory = TaskRingMemory(ctx.n_tasks, max(1, hp["memory"] // ctx.n_tasks),
                                     ctx.input_shape, self.device, first, hp["gem.memory_policy"])
        self.params = list(self.model.parameters())

    def memory_gradients(self) -> torch.Tensor:
        """g_k for every previous task k, as rows of a [t, p] matrix."""
        xs, ys, ws = self.memory.tasks_batch(self.task)
        masks = None if self.ctx.class_mask is None else self.ctx.class_mask[:self.task]
        return group_gradients(self.model, self.model, xs, ys, ws, masks)

    def observe(self, x, y, tasks):
        self.memory.add(x, y, self.task)
        mem_grads = self.memory_gradients() if self.task > 0 else None
        self.opt.zero_grad(set_to_none=True)
        self.loss(x, y, tasks).backward()
        if mem_grads is not None:
            g = flat_grad(self.params)
            # one device -> host copy per step (the QP runs on the host): the constraints'
            # signs (float32 dots, exact in float64) with the QP's Gram matrix and linear term
            t = len(mem_grads)
            m, gd = mem_grads.double(), g.double()
            host = torch.cat([(mem_grads @ g).double(), (m @ m.T).flatten(), m @ gd]).cpu().numpy()
            if bool((host[:t] < 0).any()):
                self.count("projections")
                projected, retries = project_gradient(
                    g, mem_grads, self.hp["gem.margin"], self.hp["gem.margin_mode"],
                    self.hp["gem.qp_eps"], host=(host[t:t + t * t].reshape(t, t), host[t + t * t:]))
                self.count("qp_retries", retries)
                if projected is None:
                    self.count("qp_failures")
                else:
                    set_flat_grad(self.params, projected)
        self.opt.step()
