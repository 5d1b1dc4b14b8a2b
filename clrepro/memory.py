"""Episodic memories. How examples are stored is separate from how they are retrieved
(RaptorMai-style), so ER, MIR, GSS, GMED and HAL are combinations rather than copies.

- ReservoirMemory: task-free, class-agnostic reservoir sampling (GMED §3.2).
- TaskRingMemory: the last m examples of each task (GEM; also HAL's episodic memory).
- ClassBalancedMemory: a fixed number per class (DRL), with balanced retrieval (BER).
"""

from __future__ import annotations

from typing import Any

import torch


class ReservoirMemory:
    """Algorithm R (Vitter 1985): the N-th stream example (N counts it) replaces slot j, j
    drawn uniformly from {0, ..., N-1}, if j < capacity; while the memory is not full it is
    appended. Every example seen so far is then in memory with probability capacity / N.
    Task ids are kept as metadata only (for evaluation and task-aware baselines)."""

    def __init__(self, capacity: int, input_shape: tuple[int, ...], device: torch.device,
                 generator: torch.Generator, track_origin: bool = False):
        self.capacity = capacity
        self.gen = generator
        self.x = torch.zeros(capacity, *input_shape, device=device)
        self.y = torch.zeros(capacity, dtype=torch.long, device=device)
        self.t = torch.zeros(capacity, dtype=torch.long, device=device)
        self.origin = torch.zeros_like(self.x) if track_origin else None  # unedited copies
        self.size = 0
        self.seen = 0

    def __len__(self) -> int:
        return self.size

    def slots_for(self, n: int) -> list[int | None]:
        """Where each of the next n stream examples goes (None = discarded)."""
        draws = torch.rand(n, generator=self.gen, dtype=torch.float64).tolist()
        slots = []
        for u in draws:
            self.seen += 1
            if self.size < self.capacity:
                slots.append(self.size)
                self.size += 1
            else:
                j = int(u * self.seen)
                slots.append(j if j < self.capacity else None)
        return slots

    def add(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> None:
        for k, slot in enumerate(self.slots_for(len(x))):
            if slot is not None:
                self.write(slot, x[k], y[k], t[k])

    def write(self, slot: int, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> None:
        self.x[slot] = x
        self.y[slot] = y
        self.t[slot] = t
        if self.origin is not None:
            self.origin[slot] = x

    def sample(self, k: int) -> torch.Tensor:
        """k distinct slots, uniformly (all of them while fewer than k are filled)."""
        if self.size <= k:
            return torch.arange(self.size, device=self.x.device)
        return torch.randperm(self.size, generator=self.gen)[:k].to(self.x.device)

    def state_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "t": self.t, "origin": self.origin, "size": self.size,
                "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


class TaskRingMemory:
    """GEM's episodic memory (Lopez-Paz & Ranzato 2017, Algorithm 1): m slots per task.

    policy "last_m" (paper: "the last m examples of each task"): a ring buffer per task.
    policy "ring_shared_pointer" (official code, spec D10): one write pointer shared by all
    tasks and never reset; the whole m-slot buffer of a task is used, so slots a short task
    never wrote (zeros, labelled with the task's first class) enter the memory loss too.
    """

    POLICIES = ("last_m", "ring_shared_pointer")

    def __init__(self, n_tasks: int, per_task: int, input_shape: tuple[int, ...],
                 device: torch.device, first_labels: torch.Tensor, policy: str = "last_m"):
        if policy not in self.POLICIES:
            raise ValueError(f"memory policy must be one of {self.POLICIES}, got {policy!r}")
        self.policy, self.per_task = policy, per_task
        self.x = torch.zeros(n_tasks, per_task, *input_shape, device=device)
        self.y = first_labels.view(n_tasks, 1).repeat(1, per_task).to(device)
        self.written = [0] * n_tasks  # examples written into each task's slots so far
        self.pointer = 0

    def add(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        m = self.per_task
        if self.policy == "last_m":
            slots = (self.written[task] + torch.arange(len(x))) % m
        else:
            slots = (self.pointer + torch.arange(len(x))) % m
            self.pointer = (self.pointer + len(x)) % m
        keep = slice(max(0, len(x) - m), len(x))  # a batch larger than m keeps its tail
        self.x[task, slots[keep]] = x[keep]
        self.y[task, slots[keep]] = y[keep]
        self.written[task] += len(x)

    def filled(self, task: int) -> int:
        return self.per_task if self.policy == "ring_shared_pointer" else min(self.written[task], self.per_task)

    def tasks_batch(self, n_tasks: int):
        """Tasks 0..n_tasks-1 as [K, m, ...] with per-slot loss weights 1/|M_k| (0 = empty)."""
        filled = torch.tensor([self.filled(k) for k in range(n_tasks)], device=self.x.device)
        slot = torch.arange(self.per_task, device=self.x.device)
        weights = (slot < filled[:, None]).float() / filled[:, None].clamp(min=1)
        return self.x[:n_tasks], self.y[:n_tasks], weights

    def state_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "written": list(self.written), "pointer": self.pointer}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


class ClassBalancedMemory:
    """Up to `per_class` examples of every class seen (DRL spec §4.3 suite default): a full
    class has a random stored example of its own replaced by the newcomer, so the memory
    stays balanced however unbalanced the stream is. Task ids are kept as metadata (BER can
    balance over tasks instead of classes)."""

    def __init__(self, per_class: int, input_shape: tuple[int, ...], device: torch.device,
                 generator: torch.Generator):
        self.per_class = per_class
        self.gen = generator
        self.input_shape = tuple(input_shape)
        self.device = device
        self.x = torch.zeros(0, *input_shape, device=device)
        self.y = torch.zeros(0, dtype=torch.long, device=device)
        self.t = torch.zeros(0, dtype=torch.long, device=device)

    def __len__(self) -> int:
        return len(self.y)

    def add(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> None:
        """Offer a batch in order: a class below its quota stores the example; a full class
        replaces one of its per_class examples (stored or offered earlier in this batch)
        chosen uniformly at random."""
        stored: dict[int, torch.Tensor] = {}
        appended: dict[int, list[int]] = {}  # class -> rows of this batch to append
        for k, c in enumerate(y.tolist()):
            if c not in stored:
                stored[c] = torch.nonzero(self.y == c).flatten()
            pending = appended.setdefault(c, [])
            if len(stored[c]) + len(pending) < self.per_class:
                pending.append(k)
                continue
            j = int(torch.randint(self.per_class, (1,), generator=self.gen))
            if j < len(stored[c]):
                slot = stored[c][j]
                self.x[slot], self.y[slot], self.t[slot] = x[k], y[k], t[k]
            else:
                pending[j - len(stored[c])] = k
        rows = [k for pending in appended.values() for k in pending]
        if rows:
            rows = torch.tensor(sorted(rows), device=x.device)
            self.x = torch.cat([self.x, x[rows].to(self.x.dtype)])
            self.y = torch.cat([self.y, y[rows]])
            self.t = torch.cat([self.t, t[rows]])

    def units(self, unit: str) -> torch.Tensor:
        return self.y if unit == "class" else self.t

    def balanced(self, k: int, unit: str = "class", include: set[int] | None = None) -> torch.Tensor:
        """BER (Algorithm 1): k slots drawn evenly over the classes (or tasks) in memory, with
        replacement within a unit; a remainder goes to randomly chosen units; with fewer
        slots than units, a random subset of units (always including `include`) is used."""
        labels = self.units(unit)
        present = torch.unique(labels).tolist()
        if not present:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        order = torch.randperm(len(present), generator=self.gen).tolist()
        present = [present[i] for i in order]
        if k < len(present):
            must = [u for u in present if include and u in include]
            present = (must + [u for u in present if u not in must])[:k]
        share = [k // len(present)] * len(present)
        for i in range(k - sum(share)):
            share[i] += 1  # the remainder to the first (randomly ordered) units
        picks = []
        for u, n in zip(present, share):
            slots = torch.nonzero(labels == u).flatten()
            picks.append(slots[torch.randint(len(slots), (n,), generator=self.gen).to(slots.device)])
        return torch.cat(picks)

    def uniform(self, k: int) -> torch.Tensor:
        if len(self) <= k:
            return torch.arange(len(self), device=self.device)
        return torch.randperm(len(self), generator=self.gen)[:k].to(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
