"""GSS-Greedy (Aljundi et al. 2019b, Algorithm 2) on top of ER (GMED spec §4.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from clrepro.memory import GradientDiverse
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
    """GSS-Greedy: ER whose memory keeps gradient-diverse examples instead of a reservoir
    sample (update clrepro.memory.GradientDiverse): each incoming example gets the score
    c = 1 + max cosine similarity between its gradient and those of `gss.compare` random
    memory examples. While the memory has room it is added; otherwise, if c < 2, a memory
    slot i is drawn with probability proportional to the stored scores and replaced with
    probability C_i / (C_i + c). Training is ER's (stream + random replay).
    hp: + gss.compare (10, spec suite default)."""

    name = "gss"
    hyperparameters = {
        "gss.compare": "memory gradients each candidate is compared with",
    }

    def make_update(self):
        return GradientDiverse(self.hp["memory"], self.hp["gss.compare"],
                               lambda x, y: per_example_gradients(self.model, x, y))
