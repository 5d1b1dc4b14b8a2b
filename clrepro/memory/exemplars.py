"""Exemplars of a class-incremental method: the images it keeps per class (ExemplarSet) and
how they are chosen, as components, so that LwF, iCaRL, BiC and LUCIR each combine with
random, herding or mnemonics exemplars (Mnemonics Tables 1-2) instead of being copied per
combination.

- RandomExemplars: a uniform draw of the class's images (Table 2 "random").
- HerdingExemplars (iCaRL, Rebuffi et al. 2017, Alg. 4): greedy mean matching on
  L2-normalised features; the ranking is kept, so a smaller budget later keeps the top-k
  (official code).
- mnemonics (Liu et al. 2020, §4, Eqs. 7-10): one of the two above, then optimised by the
  local bilevel program (clrepro.memory.mnemonics).

Stored images stay as the stream gave them where nothing optimises them: random and herding
exemplars (and BiC's held-out images) of a uint8 stream are kept as uint8, 4x smaller than
float32 (ImageNet's 20,000 exemplars: 3 GB instead of 12 GB), and read through `as_float`,
the stream's own conversion, so the network sees the same float32 input bit for bit.
Mnemonics-optimised exemplars are float (they move off the 1/255 grid).
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from clrepro.data.transforms import as_float


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


class RandomExemplars:
    """Table 2 "random": the class's images in a uniformly random order."""

    def rank(self, images: torch.Tensor, features: Callable, gen: torch.Generator) -> torch.Tensor:
        return random_ranking(len(images), gen).to(images.device)


class HerdingExemplars:
    """iCaRL's herding order of the class's images, on their L2-normalised features
    (`features`: network input -> features)."""

    def rank(self, images: torch.Tensor, features: Callable, gen: torch.Generator) -> torch.Tensor:
        return herding_ranking(features(as_float(images)))


SELECTIONS = {"random": RandomExemplars, "herding": HerdingExemplars}


class ExemplarSet:
    """Images kept per class, in rank order (a prefix is a smaller set), each class's as
    stored: the stream's uint8, or float once an optimisation moved them. `set[c]` is the
    stored tensor; `images(c)` is network input (as_float of it).

    Dict-like over classes (`set[c] = x`, `c in set`, iteration, `items()`, `values()`,
    `setdefault`); its checkpoint state is a plain dict of class -> tensor."""

    def __init__(self, images: dict[int, torch.Tensor] | None = None):
        self.stored: dict[int, torch.Tensor] = dict(images or {})

    def __setitem__(self, c: int, images: torch.Tensor) -> None:
        self.stored[c] = images

    def __getitem__(self, c: int) -> torch.Tensor:
        return self.stored[c]

    def images(self, c: int) -> torch.Tensor:
        """Class c's exemplars as network input."""
        return as_float(self.stored[c])

    def setdefault(self, c: int, images: torch.Tensor) -> torch.Tensor:
        return self.stored.setdefault(c, images)

    def __contains__(self, c: object) -> bool:
        return c in self.stored

    def __iter__(self) -> Iterator[int]:
        return iter(self.stored)

    def __len__(self) -> int:
        return len(self.stored)

    def items(self):
        return self.stored.items()

    def values(self):
        return self.stored.values()

    def trim(self, n: int) -> None:
        """Keep the n best-ranked of every class (a smaller budget: fixed_total policy)."""
        for c in self.stored:
            self.stored[c] = self.stored[c][:n]

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All exemplars, classes in increasing order, as stored (uint8 while none is float:
        as_float reads them; see stack_images), and their labels."""
        classes = sorted(self.stored)
        x = stack_images([self.stored[c] for c in classes])
        y = torch.cat([torch.full((len(self.stored[c]),), c, dtype=torch.long,
                                  device=x.device) for c in classes])
        return x, y

    def state_dict(self) -> dict[int, torch.Tensor]:
        return dict(self.stored)

    def load_state_dict(self, state: dict[int, torch.Tensor]) -> None:
        self.stored = dict(state)


def stack_images(parts: list[torch.Tensor]) -> torch.Tensor:
    """Stored images in one tensor: uint8 when every non-empty part is (the stream's
    images), else float network input (as_float of each part)."""
    if all(p.dtype == torch.uint8 or not len(p) for p in parts):
        return torch.cat([p.to(torch.uint8) for p in parts])
    return torch.cat([as_float(p) for p in parts])


def compact(images: torch.Tensor) -> torch.Tensor:
    """Float network input back to uint8 where that is exact (images a checkpoint from before
    uint8 storage kept as float); anything else (optimised exemplars) as it is."""
    if images.dtype == torch.uint8 or images.is_meta:
        return images
    pixels = images.mul(255).round_().clamp_(0, 255).to(torch.uint8)
    return pixels if torch.equal(as_float(pixels), images) else images
