"""Exemplar selection as components: random, herding, and mnemonics (Liu et al. 2020).

A class-incremental method keeps a few images per class; how they are chosen is a separate
piece, so that LwF, iCaRL, BiC and LUCIR each combine with random, herding or mnemonics
exemplars (Mnemonics Tables 1-2) instead of being copied per combination.

- random: a uniform draw of the class's images (Table 2 "random").
- herding (iCaRL, Rebuffi et al. 2017, Alg. 4): greedy mean matching on L2-normalised
  features; the ranking is kept, so a smaller budget later keeps the top-k (official code).
- mnemonics (§4, Eqs. 7-10): image-sized tensors optimised by a local bilevel program --
  `meta_gradient` unrolls inner SGD steps of a temporary copy of the model on the exemplars
  and back-propagates its loss on the phase's real data through every step to the pixels;
  `code_single_level` is the official code's simplified variant (spec D2).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call


def herding(features: torch.Tensor, n: int) -> torch.Tensor:
    """iCaRL's exemplar selection (Rebuffi et al., Alg. 4): greedily pick the example whose
    addition keeps the running mean of the chosen features closest to the class mean.
    Returns indices into `features`, in selection order (so a prefix is a smaller set)."""
    mean = features.mean(0)
    n = min(n, len(features))
    chosen: list[torch.Tensor] = []
    running = torch.zeros_like(mean)
    taken = torch.zeros(len(features), dtype=torch.bool, device=features.device)
    for e in range(n):
        cost = (mean - (running + features) / (e + 1)).norm(dim=1)
        # the pick stays a device tensor (index_select/index_fill, never int(...)): no host
        # sync per pick
        i = cost.masked_fill(taken, float("inf")).argmin().view(1)
        chosen.append(i)
        taken.index_fill_(0, i, True)
        running += features.index_select(0, i)[0]
    if not chosen:
        return torch.zeros(0, dtype=torch.long, device=features.device)
    return torch.cat(chosen)


def herding_ranking(features: torch.Tensor) -> torch.Tensor:
    """The full herding order of a class on L2-normalised features (LUCIR/Mnemonics code:
    computed once when the class is learned; later budgets take a prefix)."""
    return herding(F.normalize(features, dim=1), len(features))


def random_ranking(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=gen)


# ----------------------------------------------------------------------------- mnemonics

def unrolled(model: nn.Module, exemplars: torch.Tensor, labels: torch.Tensor, steps: int,
             lr: float, truncate_k: int | None = None,
             loss_fn: Callable = F.cross_entropy) -> dict[str, torch.Tensor]:
    """Theta' <- Theta, then `steps` full-batch gradient steps on L_c(Theta'; E) (Eq. 8),
    kept differentiable with respect to the exemplars (second order). truncate_k: only the
    last k steps stay in the graph (`mnemonics.truncate_k`). BatchNorm uses its running
    statistics (the model is in eval mode), so the temporary model changes only weights."""
    buffers = dict(model.named_buffers())
    params = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()
              if p.requires_grad}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    for k in range(steps):
        keep = truncate_k is None or k >= steps - truncate_k
        if not keep:
            params = {n: v.detach().requires_grad_(True) for n, v in params.items()}
        out = functional_call(model, {**params, **frozen, **buffers}, (exemplars,))
        grads = torch.autograd.grad(loss_fn(out, labels), list(params.values()), create_graph=keep)
        params = {n: v - lr * g for (n, v), g in zip(params.items(), grads)}
    return {**params, **frozen, **buffers}


def meta_gradient(model: nn.Module, exemplars: torch.Tensor, labels: torch.Tensor,
                  validation: Iterable[tuple[torch.Tensor, torch.Tensor]], n_validation: int,
                  steps: int, lr: float, truncate_k: int | None = None,
                  loss_fn: Callable = F.cross_entropy) -> tuple[torch.Tensor, float]:
    """d L_c(Theta'(E); D) / d E (Eq. 9): the validation loss (mean over the n_validation
    real images, fed in mini-batches) of the temporarily trained model, differentiated
    through every inner step to the exemplar pixels. The validation gradient is first
    accumulated with respect to Theta' (one cheap pass per mini-batch), then pulled back
    through the inner steps once -- the same chain rule, without keeping every mini-batch's
    graph. Returns (gradient, validation loss)."""
    exemplars = exemplars.detach().requires_grad_(True)
    with torch.enable_grad():
        final = unrolled(model, exemplars, labels, steps, lr, truncate_k, loss_fn)
        trained = {n: v for n, v in final.items() if v.requires_grad}
        leaves = {n: v.detach().requires_grad_(True) for n, v in trained.items()}
        rest = {n: v.detach() for n, v in final.items() if n not in trained}
        acc = {n: torch.zeros_like(v) for n, v in leaves.items()}
        total = 0.0
        for x, y in validation:
            out = functional_call(model, {**leaves, **rest}, (x,))
            loss = loss_fn(out, y, reduction="sum") / n_validation
            for (n, _), g in zip(leaves.items(), torch.autograd.grad(loss, list(leaves.values()))):
                acc[n] += g
            total += float(loss.detach())
        (grad,) = torch.autograd.grad(list(trained.values()), exemplars,
                                      grad_outputs=[acc[n] for n in trained])
    return grad, total


def code_single_level_gradient(features: Callable[[torch.Tensor], torch.Tensor],
                               exemplars_by_class: list[torch.Tensor], class_ids: list[int],
                               old_means: torch.Tensor | None, x: torch.Tensor,
                               y: torch.Tensor) -> torch.Tensor:
    """The official code's loss (spec D2): the real images of a batch are classified by
    cosine similarity to the class means of the exemplars' features (old classes: their
    stored means), cross-entropy against their labels; the gradient flows to the exemplar
    pixels only (the model is frozen)."""
    means = [features(e).mean(0) for e in exemplars_by_class]
    new = torch.stack(means)
    all_means = new if old_means is None else torch.cat([old_means, new])
    logits = F.linear(F.normalize(features(x), dim=1), F.normalize(all_means, dim=1))
    return F.cross_entropy(logits, y)
