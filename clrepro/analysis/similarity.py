"""Pairwise similarities of loss gradients, inputs and representations (DRL §2, Figs. 1-2).

For n test images, every unordered pair (i < j) gets three cosine similarities:
- gradient: of the two per-example cross-entropy gradients (at the true label) with respect
  to all parameters, flattened;
- input: of the raw pixel vectors ("features" in the paper);
- representation: of the concatenated outputs of the model's layers (`representations()`).
Pairs are split into same-class and different-class ones; the paper's statistic is the
Pearson correlation between gradient similarity and input (or representation) similarity
within each group.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from clrepro.data.transforms import as_float
from clrepro.seeds import derive_seed


def per_example_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                          chunk: int = 64) -> torch.Tensor:
    """[n, P]: row i is the gradient of cross-entropy(model(x_i), y_i) w.r.t. every
    parameter, flattened in `model.parameters()` order (torch.func, one vmapped pass)."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss(p, xi, yi):
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))
    rows = []
    for lo in range(0, len(y), chunk):
        g = per_example(params, x[lo:lo + chunk], y[lo:lo + chunk])
        rows.append(torch.cat([g[k].flatten(1) for k in params], 1))
    return torch.cat(rows)


def cosine_matrix(v: torch.Tensor) -> torch.Tensor:
    """[n, n] cosine similarities of the rows of v (a zero row has similarity 0)."""
    unit = F.normalize(v.flatten(1).double(), dim=1)
    return unit @ unit.T


def representation_vectors(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The concatenated layer outputs the model reports (hidden layers and logits)."""
    return torch.cat([h.flatten(1) for h in model.representations(x).values()], 1)


def pair_similarities(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per unordered pair (i < j): gradient, input and representation cosine similarity,
    whether the two share a class, and the pair's indices into x."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        reps = representation_vectors(model, x)
    grads = per_example_gradients(model, x, y)
    model.train(was_training)
    i, j = torch.triu_indices(len(y), len(y), offset=1)
    pick = lambda m: m[i, j].float().cpu()  # noqa: E731
    return {"grad": pick(cosine_matrix(grads)), "input": pick(cosine_matrix(x)),
            "repr": pick(cosine_matrix(reps)), "same": (y[i] == y[j]).cpu(),
            "i": i, "j": j, "labels": y.cpu()}


def sample_images(x: torch.Tensor, y: torch.Tensor, n: int, per_class: bool, seed: int):
    """n random images (per class when per_class), drawn with the run seed."""
    gen = torch.Generator().manual_seed(derive_seed(seed, "similarity"))
    if per_class:
        picks = []
        for c in torch.unique(y).tolist():
            rows = torch.nonzero(y == c).flatten()
            picks.append(rows[torch.randperm(len(rows), generator=gen)[:n]])
        rows = torch.cat(picks)
    else:
        rows = torch.randperm(len(y), generator=gen)[:n]
    rows = rows.sort().values.to(y.device)
    return x[rows], y[rows]


def study(model: nn.Module, eval_sets: list[tuple[torch.Tensor, torch.Tensor]],
          spec: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
    """The trainer's hook (hp `similarity`): sample test images of the whole stream and
    return their pair similarities as run artifacts `similarity/<name>`."""
    x = torch.cat([xs for xs, _ in eval_sets])
    y = torch.cat([ys for _, ys in eval_sets])
    xs, ys = sample_images(x, y, int(spec["samples"]), bool(spec.get("per_class", False)), seed)
    pairs = pair_similarities(model, as_float(xs), ys)
    return {f"similarity/{k}": v for k, v in pairs.items()}


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r (NaN when either side is constant or there are fewer than 3 pairs)."""
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
