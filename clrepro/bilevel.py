"""The local bilevel program of mnemonics exemplars (Liu et al. 2020, Eqs. 8-9), exact and
within a GPU's memory.

Inner problem (Eq. 8): Theta_0 = Theta, Theta_{k+1} = Theta_k - alpha grad L_c(Theta_k; E),
K steps on the exemplars E. Outer gradient (Eq. 9): d L_c(Theta_K(E); D) / d E, through every
inner step (second order).

`meta_gradient` computes it two ways with the same result:

- plain (recompute=False): autograd keeps the whole unrolled graph -- every inner step's
  activations and its gradient graph -- about K x (activations of a double backward) bytes.
- recomputed (recompute=True, the default): the forward pass keeps only Theta_0..Theta_K;
  the backward pass walks the steps in reverse, rebuilds one step's graph from its stored
  parameters and takes the vector-Jacobian product of Theta_{k+1}(Theta_k, E) with the
  adjoint lambda_{k+1} = dL/dTheta_{k+1}:
      lambda_k = lambda_{k+1} - alpha H_k lambda_{k+1},
      dL/dE  += -alpha (d grad L_c(Theta_k; E) / dE)^T lambda_{k+1}
  (gradient checkpointing of the unroll; one step's graph alive at a time).

`inner_batch` splits E into mini-batches inside each inner step: the step's gradient is
the exact sum of the chunks' gradients (BatchNorm in eval mode uses running statistics, so
chunks do not interact) and so is its vector-Jacobian product; only one chunk's
activations are alive at a time (ImageNet: 224x224 exemplars).

`saved_bytes_per_image` measures, on the meta device (no computation, no memory), what
autograd keeps per image for a forward + create_graph backward, for the memory plan.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

Params = dict[str, torch.Tensor]


def split_params(model: nn.Module) -> tuple[Params, Params]:
    """(trained parameters, everything else: frozen parameters and buffers), detached."""
    trained = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    rest = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    rest.update(dict(model.named_buffers()))
    return trained, rest


def _chunks(n: int, size: int | None) -> list[tuple[int, int]]:
    size = size or n
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def _grads(outputs, inputs, **kwargs) -> list[torch.Tensor]:
    """autograd.grad with zeros for inputs the outputs do not depend on."""
    grads = torch.autograd.grad(outputs, inputs, allow_unused=True, **kwargs)
    return [torch.zeros_like(i) if g is None else g for g, i in zip(grads, inputs)]


def inner_loss(model, params: Params, rest: Params, x, y, n: int, loss_fn) -> torch.Tensor:
    """The part of L_c(Theta; E) (mean over the n exemplars) that the rows x, y contribute."""
    return loss_fn(functional_call(model, {**params, **rest}, (x,)), y, reduction="sum") / n


def unroll_params(model: nn.Module, exemplars: torch.Tensor, labels: torch.Tensor, steps: int,
                  lr: float, inner_batch: int | None = None,
                  loss_fn: Callable = F.cross_entropy) -> list[Params]:
    """Theta_0..Theta_K of Eq. 8 as plain tensors (no graph): the forward half of the
    recomputed meta-gradient, and the temporary model of the bilevel objective."""
    params, rest = split_params(model)
    trajectory = [params]
    n = len(labels)
    for _ in range(steps):
        leaves = {k: v.requires_grad_(True) for k, v in ((k, v.detach()) for k, v in params.items())}
        step = [torch.zeros_like(v) for v in leaves.values()]
        for lo, hi in _chunks(n, inner_batch):
            loss = inner_loss(model, leaves, rest, exemplars[lo:hi].detach(), labels[lo:hi], n, loss_fn)
            step = [s + g for s, g in zip(step, _grads(loss, list(leaves.values())))]
        params = {k: (v - lr * g).detach() for (k, v), g in zip(leaves.items(), step)}
        trajectory.append(params)
    return trajectory


def unrolled(model: nn.Module, exemplars: torch.Tensor, labels: torch.Tensor, steps: int,
             lr: float, truncate_k: int | None = None,
             loss_fn: Callable = F.cross_entropy) -> dict[str, torch.Tensor]:
    """Theta_K of Eq. 8 with the whole unrolled graph kept (the plain reference): full-batch
    steps, differentiable with respect to the exemplars. truncate_k: only the last k steps
    stay in the graph (`mnemonics.truncate_k`)."""
    params, rest = split_params(model)
    params = {k: v.requires_grad_(True) for k, v in ((k, v.clone()) for k, v in params.items())}
    for k in range(steps):
        keep = truncate_k is None or k >= steps - truncate_k
        if not keep:
            params = {n: v.detach().requires_grad_(True) for n, v in params.items()}
        out = functional_call(model, {**params, **rest}, (exemplars,))
        grads = _grads(loss_fn(out, labels), list(params.values()), create_graph=keep)
        params = {n: v - lr * g for (n, v), g in zip(params.items(), grads)}
    return {**params, **rest}


def validation_gradient(model: nn.Module, params: Params, rest: Params,
                        validation: Iterable[tuple[torch.Tensor, torch.Tensor]], n_validation: int,
                        loss_fn: Callable = F.cross_entropy) -> tuple[Params, torch.Tensor]:
    """dL_c(Theta; D)/dTheta at Theta = params (the mean over n_validation images, fed in
    mini-batches) and the loss, as a tensor (no host sync)."""
    leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    acc = [torch.zeros_like(v) for v in leaves.values()]
    total = torch.zeros((), device=next(iter(leaves.values())).device)
    for x, y in validation:
        loss = inner_loss(model, leaves, rest, x, y, n_validation, loss_fn)
        acc = [a + g for a, g in zip(acc, _grads(loss, list(leaves.values())))]
        total = total + loss.detach()
    return dict(zip(leaves, acc)), total


def meta_gradient(model: nn.Module, exemplars: torch.Tensor, labels: torch.Tensor,
                  validation: Iterable[tuple[torch.Tensor, torch.Tensor]], n_validation: int,
                  steps: int, lr: float, truncate_k: int | None = None,
                  loss_fn: Callable = F.cross_entropy, recompute: bool = True,
                  inner_batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """d L_c(Theta_K(E); D) / d E (Eq. 9) for the validation images given (one mini-batch
    per meta-update in the amended schedule; all of D_i in the per-epoch option), through
    the K inner steps (the last truncate_k only, if set). Returns (gradient, validation
    loss of Theta_K as a 0-d tensor). recompute / inner_batch: see the module docstring;
    inner_batch needs recompute."""
    if not recompute:
        if inner_batch is not None:
            raise ValueError("mnemonics.inner_batch needs mnemonics.recompute")
        return _plain_meta_gradient(model, exemplars, labels, validation, n_validation, steps,
                                    lr, truncate_k, loss_fn)
    _, rest = split_params(model)
    trajectory = unroll_params(model, exemplars, labels, steps, lr, inner_batch, loss_fn)
    adjoint, loss = validation_gradient(model, trajectory[-1], rest, validation, n_validation, loss_fn)
    grad = torch.zeros_like(exemplars)
    n = len(labels)
    first = 0 if truncate_k is None else max(steps - truncate_k, 0)
    for k in reversed(range(first, steps)):
        theta = {name: v.requires_grad_(True) for name, v in
                 ((name, v.detach()) for name, v in trajectory[k].items())}
        lam = list(adjoint.values())
        new = [a.clone() for a in lam]  # the identity part of dTheta_{k+1}/dTheta_k
        for lo, hi in _chunks(n, inner_batch):
            e = exemplars[lo:hi].detach().requires_grad_(True)
            with torch.enable_grad():
                g = _grads(inner_loss(model, theta, rest, e, labels[lo:hi], n, loss_fn),
                           list(theta.values()), create_graph=True)
                *h_theta, h_e = _grads(g, [*theta.values(), e], grad_outputs=lam)
            new = [a - lr * h for a, h in zip(new, h_theta)]
            grad[lo:hi] -= lr * h_e
            del g, h_theta, h_e, e  # not alive while the next chunk's graph is built
        adjoint = dict(zip(adjoint, new))
    return grad, loss


def _plain_meta_gradient(model, exemplars, labels, validation, n_validation, steps, lr,
                         truncate_k, loss_fn):
    """The reference: the whole unrolled graph kept, one backward through it."""
    exemplars = exemplars.detach().requires_grad_(True)
    with torch.enable_grad():
        final = unrolled(model, exemplars, labels, steps, lr, truncate_k, loss_fn)
        trained = {n: v for n, v in final.items() if v.requires_grad}
        rest = {n: v.detach() for n, v in final.items() if n not in trained}
        acc, loss = validation_gradient(model, trained, rest, validation, n_validation, loss_fn)
        (grad,) = _grads(list(trained.values()), [exemplars], grad_outputs=list(acc.values()))
    return grad, loss


@torch.no_grad()
def objective(model: nn.Module, exemplars: torch.Tensor, labels: torch.Tensor,
              validation: Iterable[tuple[torch.Tensor, torch.Tensor]], n_validation: int,
              steps: int, lr: float, inner_batch: int | None = None,
              loss_fn: Callable = F.cross_entropy) -> float:
    """The bilevel objective L_c(Theta_K(E); D): the validation loss (mean over D) of the
    temporary model trained K inner steps on the exemplars."""
    with torch.enable_grad():
        final = unroll_params(model, exemplars, labels, steps, lr, inner_batch, loss_fn)[-1]
    _, rest = split_params(model)
    total = sum(inner_loss(model, final, rest, x, y, n_validation, loss_fn) for x, y in validation)
    return float(total)


def saved_bytes_per_image(model: nn.Module, input_shape: tuple[int, ...], n_classes: int,
                          create_graph: bool = True, device: str = "meta") -> int:
    """Bytes autograd keeps per image for one inner step's forward and gradient (with its
    graph when create_graph: what one recomputed step differentiates again), counted with
    saved-tensor hooks on the meta device (shapes only, nothing computed or allocated).
    Two batch sizes, so fixed parts (e.g. weights saved by a convolution) cancel.
    device="cpu" counts real tensors (to check the meta count)."""
    meta = _to_meta(model) if device == "meta" else model.eval()
    params, rest = split_params(meta)

    def count(batch: int) -> int:
        seen: dict[int, int] = {}

        def pack(t):
            storage = t.untyped_storage()  # views share one storage: count it once
            seen[storage._cdata] = storage.nbytes()
            return t

        dtype = next(iter(params.values())).dtype
        x = torch.zeros((batch, *input_shape), device=device, dtype=dtype, requires_grad=True)
        y = torch.zeros(batch, dtype=torch.long, device=device)
        leaves = {k: v.requires_grad_(True) for k, v in params.items()}
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = functional_call(meta, {**leaves, **rest}, (x,))
            loss = F.cross_entropy(out[:, :n_classes] if out.shape[1] >= n_classes else out, y)
            grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=create_graph,
                                        allow_unused=True)
        del grads
        return sum(seen.values())

    return max((count(4) - count(2)) // 2, 0)


def _to_meta(model: nn.Module) -> nn.Module:
    import copy

    clone = copy.deepcopy(model)
    return clone.to_empty(device="meta").eval()
