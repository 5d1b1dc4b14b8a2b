"""Exemplar selection as components: random, herding, and mnemonics (Liu et al. 2020).

A class-incremental method keeps a few images per class; how they are chosen is a separate
piece, so that LwF, iCaRL, BiC and LUCIR each combine with random, herding or mnemonics
exemplars (Mnemonics Tables 1-2) instead of being copied per combination.

- random: a uniform draw of the class's images (Table 2 "random").
- herding (iCaRL, Rebuffi et al. 2017, Alg. 4): greedy mean matching on L2-normalised
  features; the ranking is kept, so a smaller budget later keeps the top-k (official code).
- mnemonics (§4, Eqs. 7-10): image-sized tensors optimised by a local bilevel program
  (clrepro.bilevel: the meta-gradient through the unrolled inner steps);
  `code_single_level_gradient` is the official code's simplified variant (spec D2).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


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
