"""Storages: where memory examples are kept. Each has one `add(x, y, t)` (t: task ids [B];
TaskRingMemory also takes one int, the batch's task, so no device value is read back) that
asks its update policy (clrepro.memory.update) for slots, and `batch(idx)` that returns the
examples of slots as network input, labels and task ids.

- SlotMemory: `capacity` class-agnostic slots filled by an update policy (Reservoir: ER,
  MIR, A-GEM, GMED; GradientDiverse: GSS).
- TaskRingMemory: m slots per task (GEM; also HAL's episodic memory).
- ClassBalancedMemory: a fixed number per class (DRL).
"""

from __future__ import annotations

from typing import Any

import torch

from clrepro.data.transforms import as_float
from clrepro.memory.update import CLASS_UPDATES, RING_POLICIES, Reservoir, class_columns, ring_slots


def to_storage(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Network input in [0, 1] back to the stored dtype (uint8: round(255 x), exact for
    images that were uint8: float32(u / 255) * 255 is within 1e-4 of u)."""
    if dtype == torch.uint8:
        return x.mul(255).round_().clamp_(0, 255).to(torch.uint8)
    return x.to(dtype)


class SlotMemory:
    """`capacity` slots of (x, y, t), filled by `update` (default: Reservoir). Task ids are
    kept as metadata only (for evaluation and task-aware baselines). `track_origin` keeps an
    unedited copy of every slot (GMED Figs. 5-6)."""

    def __init__(self, capacity: int, input_shape: tuple[int, ...], device: torch.device,
                 generator: torch.Generator, update=None, track_origin: bool = False):
        self.capacity = capacity
        self.gen = generator
        self.update = update if update is not None else Reservoir()
        self.x = torch.zeros(capacity, *input_shape, device=device)
        self.y = torch.zeros(capacity, dtype=torch.long, device=device)
        self.t = torch.zeros(capacity, dtype=torch.long, device=device)
        self.origin = torch.zeros_like(self.x) if track_origin else None  # unedited copies
        self.size = 0
        self.seen = 0

    def __len__(self) -> int:
        return self.size

    def add(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> None:
        self.update.add(self, x, y, t)

    def write(self, slot: int, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> None:
        self.x[slot] = x
        self.y[slot] = y
        self.t[slot] = t
        if self.origin is not None:
            self.origin[slot] = x

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.x[idx], self.y[idx], self.t[idx]

    def state_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "t": self.t, "origin": self.origin, "size": self.size,
                "seen": self.seen, **self.update.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self.update if key in self.update.state_dict() else self, key, value)


class TaskRingMemory:
    """GEM's episodic memory (Lopez-Paz & Ranzato 2017, Algorithm 1): m slots per task.

    policy "last_m" (paper: "the last m examples of each task"): a ring buffer per task.
    policy "ring_shared_pointer" (official code, spec D10): one write pointer shared by all
    tasks and never reset; the whole m-slot buffer of a task is used, so slots a short task
    never wrote (zeros, labelled with the task's first class) enter the memory loss too.
    """

    def __init__(self, n_tasks: int, per_task: int, input_shape: tuple[int, ...],
                 device: torch.device, first_labels: torch.Tensor, policy: str = "last_m"):
        if policy not in RING_POLICIES:
            raise ValueError(f"memory policy must be one of {RING_POLICIES}, got {policy!r}")
        self.policy, self.per_task = policy, per_task
        self.x = torch.zeros(n_tasks, per_task, *input_shape, device=device)
        self.y = first_labels.view(n_tasks, 1).repeat(1, per_task).to(device)
        self.written = [0] * n_tasks  # examples written into each task's slots so far
        self.pointer = 0

    def add(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | int) -> None:
        """One task per batch: t is its id (an int, or task ids of which the first counts)."""
        task = t if isinstance(t, int) else int(t[0])
        m = self.per_task
        slots = ring_slots(self.policy, m, self.written[task], self.pointer, len(x))
        if self.policy == "ring_shared_pointer":
            self.pointer = (self.pointer + len(x)) % m
        keep = slice(max(0, len(x) - m), len(x))  # a batch larger than m keeps its tail
        self.x[task, slots[keep]] = x[keep]
        self.y[task, slots[keep]] = y[keep]
        self.written[task] += len(x)

    def filled(self, task: int) -> int:
        return self.per_task if self.policy == "ring_shared_pointer" else min(self.written[task], self.per_task)

    def batch(self, idx: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples at (task, slot) pairs idx."""
        return self.x[idx], self.y[idx]

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
    """Up to `per_class` examples of every class (DRL spec §4.3, Amended 2026-12-07), kept in
    one preallocated block of n_classes x per_class slots (plus one scratch slot that takes
    the writes which are discarded), so that adding and drawing need no host synchronisation.

    update "ring" (default; official code, models/buffer.py with a per-class budget) or
    "reservoir" (per class): clrepro.memory.update.class_columns. Within one batch the
    examples are offered in order (a later write to a slot wins).

    Images are stored as uint8 once `store_uint8()` is called (the stream's images are uint8;
    as_float(u) = u / 255 is inverted exactly) and become network input when drawn. Task ids
    are kept per slot (BER can balance over tasks instead of classes).
    """

    def __init__(self, per_class: int, n_classes: int, input_shape: tuple[int, ...],
                 device: torch.device, generator: torch.Generator, update: str = "ring",
                 n_tasks: int = 1):
        if update not in CLASS_UPDATES:
            raise ValueError(f"memory.update must be one of {CLASS_UPDATES}, got {update!r}")
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
        column = class_columns(self.update, n, self.per_class, self.gen, self.device)
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
        return as_float(self.x[idx]), self.y[idx], self.t[idx]

    def units(self, unit: str) -> torch.Tensor:
        """The balancing unit of every slot: its class, or its task id."""
        return self.y if unit == "class" else self.t

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
