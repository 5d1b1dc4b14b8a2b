"""Update policies: which slot each incoming stream example takes (None: it is discarded).

- Reservoir (Vitter 1985, Algorithm R): task-free, class-agnostic (GMED §3.2).
- GradientDiverse: GSS-Greedy (Aljundi et al. 2019b, Algorithm 2).
- ring (TaskRingMemory): the last m examples of each task (GEM), or the official GEM code's
  shared pointer (spec D10).
- per-class ring | reservoir (ClassBalancedMemory, DRL spec §4.3): `class_columns`.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from clrepro.memory.retrieval import uniform_slots

RING_POLICIES = ("last_m", "ring_shared_pointer")
CLASS_UPDATES = ("ring", "reservoir")


class Reservoir:
    """Algorithm R: the N-th stream example (N counts it) replaces slot j, j drawn uniformly
    from {0, ..., N-1}, if j < capacity; while the memory is not full it is appended. Every
    example seen so far is then in memory with probability capacity / N."""

    def add(self, mem, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> None:
        draws = torch.rand(len(x), generator=mem.gen, dtype=torch.float64).tolist()
        for k, u in enumerate(draws):
            mem.seen += 1
            if mem.size < mem.capacity:
                slot = mem.size
                mem.size += 1
            else:
                j = int(u * mem.seen)
                if j >= mem.capacity:
                    continue
                slot = j
            mem.write(slot, x[k], y[k], t[k])

    def state_dict(self) -> dict:
        return {}


class GradientDiverse:
    """GSS-Greedy: each incoming example gets the score c = 1 + max cosine similarity between
    its gradient and those of `compare` uniformly drawn memory examples. While the memory has
    room it is added; otherwise, if c < 2, a slot i is drawn with probability proportional to
    the stored scores and replaced with probability C_i / (C_i + c).

    `gradients(x, y)` returns the [n, p] per-example gradients under the current model."""

    def __init__(self, capacity: int, compare: int,
                 gradients: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        self.compare, self.gradients = compare, gradients
        self.scores = torch.zeros(capacity, dtype=torch.float64)

    def add(self, mem, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> None:
        gen = mem.gen
        new = F.normalize(self.gradients(x, y), dim=1)
        ref = uniform_slots(mem, self.compare)
        if len(ref):
            old = F.normalize(self.gradients(mem.x[ref], mem.y[ref]), dim=1)
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
                total = self.scores.sum()
                i = (int(torch.multinomial(self.scores / total, 1, generator=gen)) if total > 0
                     else int(draws[k, 0] * mem.capacity))
                if draws[k, 1] >= self.scores[i] / (self.scores[i] + c[k]):
                    continue
                slot = i
            else:
                continue
            mem.write(slot, x[k], y[k], t[k])
            self.scores[slot] = c[k]

    def state_dict(self) -> dict:
        return {"scores": self.scores}


def ring_slots(policy: str, per_task: int, written: int, pointer: int, n: int) -> torch.Tensor:
    """Slots of n examples in their task's block of per_task: "last_m" continues the task's
    own ring; "ring_shared_pointer" continues the pointer shared by all tasks."""
    start = written if policy == "last_m" else pointer
    return (start + torch.arange(n)) % per_task


def class_columns(update: str, n: torch.Tensor, per_class: int, gen: torch.Generator,
                  device: torch.device) -> torch.Tensor:
    """The column (slot within its class's block; >= per_class: discarded) of examples that
    are the n-th (0-based) of their class's stream. "ring": each class keeps its latest
    per_class; "reservoir": Algorithm R within each class (stored while n < per_class, else
    slot j ~ U{0..n} if j < per_class)."""
    if update == "ring":
        return n % per_class
    u = torch.rand(len(n), generator=gen, dtype=torch.float64).to(device)
    j = (u * (n + 1).double()).long().clamp(max=n)  # uniform on {0..n}
    return torch.where(n < per_class, n, j)
