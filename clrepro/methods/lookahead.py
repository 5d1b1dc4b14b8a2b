"""Virtual SGD steps: evaluate a model after one step without changing the real one.

MIR scores memory examples, GMED edits them and HAL regularises anchors with the loss a
model *would* have after one SGD step on some batch. The step is taken functionally, and
BatchNorm running statistics touched by these extra forwards are restored afterwards (the
official codes restore the whole state_dict).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call


@contextlib.contextmanager
def untouched_buffers(model: nn.Module) -> Iterator[None]:
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def sgd_step_params(model: nn.Module, loss: torch.Tensor, lr: float,
                    create_graph: bool = False) -> dict[str, torch.Tensor]:
    """theta' = theta - lr * d loss / d theta, as a name -> tensor dict (detached unless
    create_graph, which keeps theta' differentiable in theta for second-order methods)."""
    names, params = zip(*model.named_parameters())
    grads = torch.autograd.grad(loss, params, create_graph=create_graph)
    if create_graph:
        return {n: p - lr * g for n, p, g in zip(names, params, grads)}
    with torch.no_grad():
        return dict(zip(names, torch._foreach_add(list(params), list(grads), alpha=-lr)))


def forward_with(model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return functional_call(model, params, (x,))


def lookahead_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor, step_x: torch.Tensor,
                     step_y: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example CE of (x, y) before and after one virtual SGD step on (step_x, step_y)."""
    with untouched_buffers(model), torch.enable_grad():
        with torch.no_grad():
            before = F.cross_entropy(model(x), y, reduction="none")
        params = sgd_step_params(model, F.cross_entropy(model(step_x), step_y), lr)
        with torch.no_grad():
            after = F.cross_entropy(forward_with(model, params, x), y, reduction="none")
    return before, after
