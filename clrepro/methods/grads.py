"""Gradient plumbing shared by the gradient-projection methods (GEM, A-GEM, ...)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap


def flat_grad(params: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in params])


def set_flat_grad(params: list[torch.Tensor], flat: torch.Tensor) -> None:
    offset = 0
    for p in params:
        n = p.numel()
        chunk = flat[offset:offset + n].view_as(p)
        if p.grad is None:
            p.grad = chunk.clone()
        else:
            p.grad.copy_(chunk)
        offset += n


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def weighted_ce(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (w * F.cross_entropy(logits, y, reduction="none")).sum()


def group_gradients(model: nn.Module, forward: Callable, xs: torch.Tensor, ys: torch.Tensor,
                    ws: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """Gradient of each group's weighted loss sum_i w_ki * CE_ki, as rows of a [K, p] matrix.

    xs [K, m, ...], ys/ws [K, m], masks [K, n_classes] bool or None. Models without
    BatchNorm get all K gradients from one vectorised pass (torch.func.vmap over the group
    axis). BatchNorm models take one backward per group so that batch statistics and
    running-stat updates are those of each group alone, as GEM's official code has them.
    """
    params = [p for p in model.parameters()]
    if has_batchnorm(model):
        rows = []
        for k in range(len(xs)):
            model.zero_grad(set_to_none=True)
            out = forward(xs[k])
            if masks is not None:
                out = out.masked_fill(~masks[k], float("-inf"))
            weighted_ce(out, ys[k], ws[k]).backward()
            rows.append(flat_grad(params))
        model.zero_grad(set_to_none=True)
        return torch.stack(rows)

    named = {name: p.detach() for name, p in model.named_parameters()}

    def group_loss(p, x, y, w, mask):
        out = functional_call(model, p, (x,))
        if mask is not None:
            out = out.masked_fill(~mask, float("-inf"))
        return weighted_ce(out, y, w)

    per_group = vmap(grad(group_loss), in_dims=(None, 0, 0, 0, None if masks is None else 0))(
        named, xs, ys, ws, masks)
    return torch.cat([per_group[name].reshape(len(xs), -1) for name in named], dim=1)
