"""Retrieval: which memory slots a step replays. Each retrieval is called as
`retrieve(memory, k, x, y, t, model)` with the stream batch (x, y, t) and the network, and
returns slot indices for `memory.batch`.

- Uniform: k distinct slots (ER, GMED's edit batch, A-GEM's reference batch).
- MaximallyInterfered: MIR (Aljundi et al. 2019a).
- ClassSplit: the official DRL code's ER draw (half current classes, half the others).
- Balanced: BER (DRL Algorithm 1), with the code's BER0/1/2 variants.
- UniformOverTasks: distinct filled (task, slot) pairs of a TaskRingMemory (HAL).
"""

from __future__ import annotations

import torch

from clrepro.methods.lookahead import lookahead_losses

BER_VARIANTS = ("even", "ber0", "ber1", "ber2")


def uniform_slots(mem, k: int) -> torch.Tensor:
    """k distinct slots of a SlotMemory, uniformly (all of them while fewer than k are filled)."""
    if mem.size <= k:
        return torch.arange(mem.size, device=mem.x.device)
    return torch.randperm(mem.size, generator=mem.gen)[:k].to(mem.x.device)


class Uniform:
    def __call__(self, mem, k, x=None, y=None, t=None, model=None) -> torch.Tensor:
        return uniform_slots(mem, k)


class MaximallyInterfered:
    """MIR: draw `candidates` slots uniformly, take a virtual SGD step (lr) on the stream
    batch, and return the k candidates whose loss increases most. As in GMED, candidates of
    the current task are not filtered out (the official MIR code does, which needs task ids)."""

    def __init__(self, candidates: int, lr: float):
        self.candidates, self.lr = candidates, lr

    def __call__(self, mem, k, x, y, t, model) -> torch.Tensor:
        cand = uniform_slots(mem, self.candidates)
        if len(cand) <= k:
            return cand
        return cand[self.interference(mem, cand, x, y, model).topk(k).indices]

    def interference(self, mem, cand, x, y, model) -> torch.Tensor:
        """Loss increase of each candidate after one virtual SGD step on the stream batch."""
        before, after = lookahead_losses(model, mem.x[cand], mem.y[cand], x, y, self.lr)
        return after - before


class UniformOverTasks:
    """k distinct slots drawn uniformly from the filled slots of tasks 0..task (HAL); a
    TaskRingMemory has no generator of its own, so the method's is given."""

    def __init__(self, generator: torch.Generator):
        self.gen = generator

    def __call__(self, mem, k, task: int):
        slots = [(j, i) for j in range(task + 1) for i in range(mem.filled(j))]
        if not slots:
            return None
        pick = torch.randperm(len(slots), generator=self.gen)[:k]
        device = mem.x.device
        return (torch.tensor([slots[i][0] for i in pick], device=device),
                torch.tensor([slots[i][1] for i in pick], device=device))


# ------------------------------------------------------------ ClassBalancedMemory draws

def current_units(units: torch.Tensor, n_units: int) -> torch.Tensor:
    """Which units occur in the stream batch, as a bool mask (no host round trip)."""
    return (units[:, None] == torch.arange(n_units, device=units.device)).any(0)


def draw_within(mem, units: torch.Tensor, slot_units: torch.Tensor,
                allowed: torch.Tensor) -> torch.Tensor:
    """For every requested unit, one slot drawn uniformly among the allowed slots of that
    unit (with replacement), by inverse CDF on device: [k] slots."""
    weight = (slot_units[None, :] == units[:, None]) & allowed[None, :]  # [k, S]
    cdf = weight.cumsum(1)
    total = cdf[:, -1:]
    u = torch.rand(len(units), 1, generator=mem.gen, dtype=torch.float64).to(mem.device)
    target = (u * total).long().clamp(max=(total - 1).clamp(min=0))
    return torch.searchsorted(cdf, target, right=True).squeeze(1).clamp(max=mem.scratch)


def uniform_with_replacement(mem, k: int) -> torch.Tensor:
    """k slots drawn uniformly with replacement over the held examples."""
    same = torch.zeros_like(mem.y)
    return draw_within(mem, same[:k], same, mem.valid())


def balanced(mem, k: int, unit: str = "class", include: torch.Tensor | None = None,
             variant: str = "even") -> torch.Tensor:
    """BER (Algorithm 1): k slots drawn evenly over the units (classes or tasks) in memory,
    with replacement within a unit; the remainder k mod |U| goes to randomly chosen units;
    with fewer slots than units, a random subset of units that always contains `include` (a
    bool mask over units: the current ones) is used.

    variant (D5; the official code's BER0/1/2 for batches with at most one slot per unit):
    "even" and "ber0": the rule above (BER0: one slot per chosen unit, current ones always
    chosen); "ber1": when k <= |U|, k - 1 units of which one (a current one) gets two slots,
    so the batch has one same-class pair; "ber2": when k // |U| <= 1, k // 2 units with two
    slots each (current ones always chosen)."""
    if variant not in BER_VARIANTS:
        raise ValueError(f"ber.variant must be one of {BER_VARIANTS}, got {variant!r}")
    device = mem.device
    n_units = mem.n_classes if unit == "class" else mem.n_tasks
    slot_units = mem.units(unit)
    valid = mem.valid()
    counts = torch.zeros(n_units, dtype=torch.long, device=device)
    present = counts.index_add_(0, slot_units, valid.long()) > 0
    key = torch.rand(n_units, generator=mem.gen).to(device)
    if include is not None:
        key = key - 2.0 * include.to(device).float()  # current units first
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
    position = torch.arange(n_units, device=device)
    per_unit = torch.where(position < limit, share + (position < extra).long(),
                           torch.zeros_like(position))  # by rank
    draw = torch.searchsorted(per_unit.cumsum(0), torch.arange(k, device=device), right=True)
    units = ranked[draw.clamp(max=n_units - 1)]
    return draw_within(mem, units, slot_units, valid)


def class_split(mem, k: int, current: torch.Tensor) -> torch.Tensor:
    """ER (official DRL code, models/replay.py): k - k // 2 slots drawn uniformly with
    replacement from the buffers of the current classes (`current`: a bool mask over
    classes; those buffers already hold the stream batch) and k // 2 from the other classes'
    buffers; all k from the current ones while no other class is held."""
    valid = mem.valid()
    mine = torch.cat([current.to(mem.device), current.new_zeros(1, device=mem.device)])
    mine = mine[mem.y] & valid
    other = valid & ~mine
    other = torch.where(other.any(), other, mine)
    same = torch.zeros_like(mem.y)
    return torch.cat([draw_within(mem, same[:k - k // 2], same, mine),
                      draw_within(mem, same[:k // 2], same, other)])


class ClassSplit:
    def __call__(self, mem, k, x, y, t, model=None) -> torch.Tensor:
        return class_split(mem, k, current_units(y, mem.n_classes))


class Balanced:
    """BER over `unit` (class | task) with `variant`; the stream batch's units are always
    among those drawn from when there are fewer slots than units."""

    def __init__(self, unit: str = "class", variant: str = "even"):
        self.unit, self.variant = unit, variant

    def __call__(self, mem, k, x, y, t, model=None) -> torch.Tensor:
        units = y if self.unit == "class" else t
        n_units = mem.n_classes if self.unit == "class" else mem.n_tasks
        return balanced(mem, k, self.unit, current_units(units, n_units), self.variant)
