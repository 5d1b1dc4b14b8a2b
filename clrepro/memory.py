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


UPDATES = ("ring", "reservoir")
BER_VARIANTS = ("even", "ber0", "ber1", "ber2")


class ClassBalancedMemory:
    """Up to `per_class` examples of every class (DRL spec §4.3, Amended 2026-12-07), kept in
    one preallocated block of n_classes x per_class slots (plus one scratch slot that takes
    the writes which are discarded), so that adding and drawing need no host synchronisation.

    update "ring" (default; official code, models/buffer.py with a per-class budget): each
    class keeps its latest per_class examples. update "reservoir": per-class reservoir
    sampling (Vitter's Algorithm R within each class): the n-th example of class c (n counted
    from 1) is stored while n <= per_class, else it replaces slot j ~ U{0..n-1} if
    j < per_class, so every example of class c seen so far is kept with probability
    per_class / n_c. Within one batch the examples are offered in order (a later write to a
    slot wins).

    Images are stored as uint8 once `store_uint8()` is called (the stream's images are uint8;
    as_float(u) = u / 255 is inverted exactly) and become network input when drawn. Task ids
    are kept per slot (BER can balance over tasks instead of classes).
    """

    def __init__(self, per_class: int, n_classes: int, input_shape: tuple[int, ...],
                 device: torch.device, generator: torch.Generator, update: str = "ring",
                 n_tasks: int = 1):
        if update not in UPDATES:
            raise ValueError(f"memory.update must be one of {UPDATES}, got {update!r}")
        self.per_class, self.n_classes, self.n_tasks = per_class, n_classes, n_tasks
        self.update = update
        self.gen = generator
        self.input_shape = tuple(input_shape)
        self.device = device
        n_slots = per_class * n_classes
        self.scratch = n_slots  # index of the slot that absorbs discarded writes
        self.x = torch.zeros(n_slots + 1, *input_shape, device=device)
        # the class of every slot is fixed: slot s belongs to class s // per_class
        self.y = (torch.arange(n_slots + 1, device=device) // per_class).clamp(max=n_classes - 1)
        self.t = torch.zeros(n_slots + 1, dtype=torch.long, device=device)
        self.seen = torch.zeros(n_classes, dtype=torch.long, device=device)  # offered per class
        self._classes = torch.arange(n_classes, device=device)
        self._column = torch.arange(n_slots + 1, device=device) % per_class
        self._column[-1] = per_class  # the scratch slot is never valid

    def store_uint8(self) -> None:
        """Keep images as uint8 from now on (call while the memory is empty)."""
        self.x = torch.zeros(self.x.shape, dtype=torch.uint8, device=self.device)

    def __len__(self) -> int:  # synchronises on a GPU: for boundaries and tests only
        return int(self.held().sum())

    def held(self) -> torch.Tensor:
        """Examples held per class [n_classes] (a tensor: no synchronisation)."""
        return self.seen.clamp(max=self.per_class)

    def valid(self) -> torch.Tensor:
        """Which slots hold an example [n_slots + 1] (the scratch slot never does)."""
        return self._column < self.held()[self.y]

    def add(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> None:
        onehot = y[:, None] == self._classes[None, :]  # [B, C]; no one_hot (it checks on host)
        rank = (onehot.cumsum(0) - 1).gather(1, y[:, None]).squeeze(1)  # earlier same-class in batch
        n = self.seen[y] + rank  # 0-based position of each example in its class's stream
        if self.update == "ring":
            column = n % self.per_class
        else:
            u = torch.rand(len(y), generator=self.gen, dtype=torch.float64).to(self.device)
            j = (u * (n + 1).double()).long().clamp(max=n)  # uniform on {0..n}
            column = torch.where(n < self.per_class, n, j)
        slot = torch.where(column < self.per_class, y * self.per_class + column,
                           torch.full_like(y, self.scratch))
        # a later example wins a slot written twice in this batch (sequential semantics)
        order = torch.arange(len(y), device=self.device)
        last = torch.full((self.scratch + 1,), -1, dtype=torch.long, device=self.device)
        last = last.scatter_reduce(0, slot, order, reduce="amax")
        slot = torch.where(last[slot] == order, slot, torch.full_like(slot, self.scratch))
        values = x if self.x.dtype == x.dtype else to_storage(x, self.x.dtype)
        self.x.index_put_((slot,), values)
        self.t.index_put_((slot,), t)
        self.seen += onehot.sum(0)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The examples in slots idx as network input (float), labels and task ids."""
        x = self.x[idx]
        return (x.float().div_(255) if x.dtype == torch.uint8 else x), self.y[idx], self.t[idx]

    def units(self, unit: str) -> torch.Tensor:
        """The balancing unit of every slot: its class, or its task id."""
        return self.y if unit == "class" else self.t

    def _draw_within(self, units: torch.Tensor, slot_units: torch.Tensor,
                     allowed: torch.Tensor) -> torch.Tensor:
        """For every requested unit, one slot drawn uniformly among the valid slots of that
        unit (with replacement), by inverse CDF on device: [k] slots."""
        weight = (slot_units[None, :] == units[:, None]) & allowed[None, :]  # [k, S]
        cdf = weight.cumsum(1)
        total = cdf[:, -1:]
        u = torch.rand(len(units), 1, generator=self.gen, dtype=torch.float64).to(self.device)
        target = (u * total).long().clamp(max=(total - 1).clamp(min=0))
        return torch.searchsorted(cdf, target, right=True).squeeze(1).clamp(max=self.scratch)

    def balanced(self, k: int, unit: str = "class", include: torch.Tensor | None = None,
                 variant: str = "even") -> torch.Tensor:
        """BER (Algorithm 1): k slots drawn evenly over the units (classes or tasks) in
        memory, with replacement within a unit; the remainder k mod |U| goes to randomly
        chosen units; with fewer slots than units, a random subset of units that always
        contains `include` (a bool mask over units: the current ones) is used.

        variant (D5; the official code's BER0/1/2 for batches with at most one slot per
        unit): "even" and "ber0": the rule above (BER0: one slot per chosen unit, current
        ones always chosen); "ber1": when k <= |U|, k - 1 units of which one (a current one)
        gets two slots, so the batch has one same-class pair; "ber2": when k // |U| <= 1,
        k // 2 units with two slots each (current ones always chosen)."""
        if variant not in BER_VARIANTS:
            raise ValueError(f"ber.variant must be one of {BER_VARIANTS}, got {variant!r}")
        n_units = self.n_classes if unit == "class" else self.n_tasks
        slot_units = self.units(unit)
        valid = self.valid()
        counts = torch.zeros(n_units, dtype=torch.long, device=self.device)
        present = counts.index_add_(0, slot_units, valid.long()) > 0
        key = torch.rand(n_units, generator=self.gen).to(self.device)
        if include is not None:
            key = key - 2.0 * include.to(self.device).float()  # current units first
        key = torch.where(present, key, torch.full_like(key, 9.0))
        ranked = key.argsort()  # present units in random order (current first), then absent
        n_present = present.sum()
        share = torch.div(k, n_present.clamp(min=1), rounding_mode="floor")
        extra = k - share * n_present
        limit = n_present
        if variant == "ber1":
            small = n_present >= k
            limit = torch.where(small, torch.full_like(limit, k - 1), limit)
            share = torch.where(small, torch.ones_like(share), share)
            extra = torch.where(small, torch.ones_like(extra), extra)
        elif variant == "ber2":
            small = share <= 1
            limit = torch.where(small, torch.clamp(n_present, max=k // 2), limit)
            share = torch.where(small, torch.full_like(share, 2), share)
            extra = torch.where(small, k - 2 * limit, extra)
        position = torch.arange(n_units, device=self.device)
        per_unit = torch.where(position < limit, share + (position < extra).long(),
                               torch.zeros_like(position))  # by rank
        draw = torch.searchsorted(per_unit.cumsum(0), torch.arange(k, device=self.device),
                                  right=True)
        units = ranked[draw.clamp(max=n_units - 1)]
        return self._draw_within(units, slot_units, valid)

    def split(self, k: int, current: torch.Tensor) -> torch.Tensor:
        """ER (official code, models/replay.py): k - k // 2 slots drawn uniformly with
        replacement from the buffers of the current classes (`current`: a bool mask over
        classes; those buffers already hold the stream batch) and k // 2 from the other
        classes' buffers; all k from the current ones while no other class is held."""
        valid = self.valid()
        mine = torch.cat([current.to(self.device), current.new_zeros(1, device=self.device)])
        mine = mine[self.y] & valid
        other = valid & ~mine
        other = torch.where(other.any(), other, mine)
        same = torch.zeros_like(self.y)
        return torch.cat([self._draw_within(same[:k - k // 2], same, mine),
                          self._draw_within(same[:k // 2], same, other)])

    def uniform(self, k: int) -> torch.Tensor:
        """k slots drawn uniformly with replacement over the held examples."""
        same = torch.zeros_like(self.y)
        return self._draw_within(same[:k], same, self.valid())

    def contents(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x as stored, y, t) of the held examples in slot order (synchronises)."""
        idx = torch.nonzero(self.valid()).flatten()
        return self.x[idx], self.y[idx], self.t[idx]

    def slots(self) -> torch.Tensor:
        """Indices of the held slots (synchronises: task boundaries only)."""
        return torch.nonzero(self.valid()).flatten()

    def state_dict(self) -> dict[str, Any]:
        return {"x": self.x, "t": self.t, "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def to_storage(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Network input in [0, 1] back to the stored dtype (uint8: round(255 x), exact for
    images that were uint8)."""
    if dtype == torch.uint8:
        return x.mul(255).round_().clamp_(0, 255).to(torch.uint8)
    return x.to(dtype)
