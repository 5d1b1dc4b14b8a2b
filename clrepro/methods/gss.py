"""GSS-Greedy (Aljundi et al. 2019b, Algorithm 2) on top of ER (GMED spec §4.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from clrepro.methods.base import register
from clrepro.methods.replay import ER


def per_example_gradients(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[n, p] gradients of each example's loss. BatchNorm models are evaluated with their
    running statistics (a single example has no batch statistics)."""
    was_training = model.training
    model.eval()
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b for n, b in model.named_buffers()}

    def loss(p, xi, yi):
        return F.cross_entropy(functional_call(model, (p, buffers), (xi[None],)), yi[None])

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    model.train(was_training)
    return torch.cat([grads[n].reshape(len(x), -1) for n in params], dim=1)


@register
class GSSGreedy(ER):
    """GSS-Greedy: the memory keeps gradient-diverse examples instead of a reservoir sample.

    Each incoming example gets the score c = 1 + max cosine similarity between its gradient
    and those of `gss.compare` random memory examples. While the memory has room it is
    added; otherwise, if c < 2, a memory slot i is drawn with probability proportional to
    the stored scores and replaced with probability C_i / (C_i + c). Training is ER's
    (stream + random replay). hp: + gss.compare (10, spec suite default)."""

    name = "gss"
    hyperparameters = {
        "gss.compare": "memory gradients each candidate is compared with",
    }
    state_attrs = ("memory", "scores")

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        self.scores = torch.zeros(hp["memory"], dtype=torch.float64)

    def observe(self, x, y, tasks):
        for _ in range(self.hp["replay.iterations"]):
            idx = self.replay_indices(x, y)
            mem = self.memory
            self.opt.zero_grad(set_to_none=True)
            self.replay_loss(x, y, tasks, mem.x[idx], mem.y[idx], mem.t[idx]).backward()
            self.opt.step()
        self.gss_update(x, y, tasks)

    def gss_update(self, x, y, tasks) -> None:
        mem, gen = self.memory, self.ctx.generator
        new = F.normalize(per_example_gradients(self.model, x, y), dim=1)
        ref = mem.sample(self.hp["gss.compare"])
        if len(ref):
            old = F.normalize(per_example_gradients(self.model, mem.x[ref], mem.y[ref]), dim=1)
            c = (new @ old.T).max(dim=1).values.double().cpu() + 1.0
        else:
            c = torch.zeros(len(x), dtype=torch.float64)
        draws = torch.rand(len(x), 2, generator=gen, dtype=torch.float64)
        for k in range(len(x)):
            mem.seen += 1
            if mem.size < mem.capacity:
                slot = mem.size
                mem.size += 1
            elif c[k] < 2.0:
                p = self.scores / self.scores.sum() if self.scores.sum() > 0 else None
                i = (int(torch.multinomial(p, 1, generator=gen)) if p is not None
                     else int(draws[k, 0] * mem.capacity))
                if draws[k, 1] >= self.scores[i] / (self.scores[i] + c[k]):
                    continue
                slot = i
            else:
                continue
            mem.write(slot, x[k], y[k], tasks[k])
            self.scores[slot] = c[k]
