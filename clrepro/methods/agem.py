"""Averaged GEM (Chaudhry et al. 2019a) in GMED's task-free setting (spec §4.5)."""

from __future__ import annotations

import torch

from clrepro.memory import SlotMemory, Uniform
from clrepro.methods.base import Method, register
from clrepro.methods.grads import flat_grad, set_flat_grad


def agem_project(g: torch.Tensor, g_ref: torch.Tensor, eps: float = 1e-12
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """A-GEM's closed form: if <g, g_ref> < 0, g - (g.g_ref / (g_ref.g_ref + eps)) g_ref,
    the projection of g onto the half-space {v : <v, g_ref> >= 0}; else g unchanged.
    Returns (that gradient, whether it was projected as a 0-dim tensor): both are chosen on
    the device, so a step never waits for the host to read the sign."""
    dot = torch.dot(g, g_ref)
    violated = dot < 0
    projected = g - (dot / (torch.dot(g_ref, g_ref) + eps)) * g_ref
    return torch.where(violated, projected, g), violated


@register
class AGEM(Method):
    """A-GEM: one constraint from the average gradient g_ref over `agem.reference_size`
    random memory examples (256; all of memory when it holds fewer). The memory is a
    task-free reservoir; A-GEM does not replay, it only projects the stream gradient.

    hp: lr, memory, agem.reference_size. Counter: projections."""

    name = "agem"
    needs_memory = True
    hyperparameters = {
        "agem.reference_size": "memory examples behind the reference gradient (256)",
    }
    state_attrs = ("memory",)
    stored_data_attrs = ("memory",)  # training images kept (data storage)

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        self.memory = SlotMemory(hp["memory"], ctx.input_shape, self.device, ctx.generator)  # reservoir
        self.retrieval = Uniform()
        self.params = list(self.model.parameters())

    def observe(self, x, y, tasks):
        g_ref = None
        if len(self.memory):
            idx = self.retrieval(self.memory, self.hp["agem.reference_size"])
            self.opt.zero_grad(set_to_none=True)
            self.loss(*self.memory.batch(idx)).backward()
            g_ref = flat_grad(self.params)
        self.opt.zero_grad(set_to_none=True)
        self.loss(x, y, tasks).backward()
        if g_ref is not None:
            g = flat_grad(self.params)
            projected, violated = agem_project(g, g_ref)
            self.count("projections", violated.long())  # a device count: no sync per step
            set_flat_grad(self.params, projected)  # g itself where nothing was violated
        self.opt.step()
        self.memory.add(x, y, tasks)
