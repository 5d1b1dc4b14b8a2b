"""Discriminative Representation Loss with the replay strategies it was evaluated with
(Chen, Diethe & Flach, CLVision 2020; spec drl-2020.md §4.2-4.3).

One method covers the six configurations of a track: the replay strategy (none, shuffle,
ER, BER) chooses what each training mini-batch holds, and DRL (on when drl.lambda > 0) adds
its loss on that mini-batch. The class-balanced memory and BER's balanced draw live in
clrepro.memory.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from clrepro.memory import ClassBalancedMemory
from clrepro.methods.base import Method, TaskStream, register

STRATEGIES = ("none", "shuffle", "er", "ber")
FORMS = ("paper", "code")
NORMS = ("pairs", "b_squared")


def drl_loss(layers: Iterable[torch.Tensor], y: torch.Tensor, form: str = "paper",
             norm: str = "pairs", within_weight: float = 2.0) -> torch.Tensor:
    """L_DR of Eqs. 3-4 over the layer outputs h_l [B, ...] of one training batch:

        L_bt = 1/B_bt sum_l sum_{i, j: y_i != y_j} <h_li, h_lj>
        L_wi = 1/B_wi sum_l sum_{i != j: y_i = y_j} <h_li, h_lj>

    with B_bt, B_wi the numbers of ordered different-/same-class pairs (norm "pairs"; an
    empty group contributes 0) or B^2 for both (norm "b_squared", the official code, D2).
    form "paper": L_bt - L_wi; "code": L_bt + within_weight * L_wi (D1, alpha = 2)."""
    same = y[:, None] == y[None, :]
    between = ~same
    within = same & ~torch.eye(len(y), dtype=torch.bool, device=y.device)
    total_bt = total_wi = 0.0
    for h in layers:
        h = h.flatten(1)
        sims = h @ h.T
        total_bt = total_bt + sims[between].sum()
        total_wi = total_wi + sims[within].sum()
    if norm == "pairs":
        n_bt, n_wi = int(between.sum()), int(within.sum())
    else:
        n_bt = n_wi = len(y) ** 2
    l_bt = total_bt / n_bt if n_bt else torch.zeros((), device=y.device)
    l_wi = total_wi / n_wi if n_wi else torch.zeros((), device=y.device)
    return l_bt - l_wi if form == "paper" else l_bt + within_weight * l_wi


@register
class ReplayDRL(Method):
    """Replay from a class-balanced memory, optionally with DRL (paper Eq. 4:
    L = L_clf + lambda * L_DR on every training mini-batch).

    Strategies (§3, Algorithm 1):
    - none: the stream batch alone (the binary classifiers of Fig. 1);
    - er: the stream batch plus replay.batch_size examples drawn uniformly from memory;
    - ber: the stream batch is added to memory, then replay.batch_size examples are drawn
      evenly over the classes (or tasks, ber.unit) in memory (Algorithm 1);
    - shuffle: the memory as it was when the task began is merged with the task's data,
      shuffled, and trained on in mini-batches of replay.batch_size: every stored example is
      visited once per task. Mini-batches are formed as the stream arrives, so the merged
      order is exactly a shuffle of (memory U task) cut into mini-batches.
    After training on a stream batch, its examples enter the memory (ER, shuffle; BER adds
    them first; none keeps no memory).
    """

    name = "replay_drl"
    hyperparameters = {
        "replay.strategy": "none | shuffle | er | ber (§3)",
        "replay.batch_size": "memory examples per ER step; BER's and shuffle's mini-batch size",
        "replay.per_class": "memory slots per class (suite default §4.3)",
        "drl.lambda": "weight of L_DR (Eq. 4); 0 switches DRL off",
        "drl.form": "paper (L_bt - L_wi) | code (L_bt + alpha L_wi), D1",
        "drl.norm": "pairs | b_squared (D2)",
        "drl.layers": "default | all_stages (pretrained backbones, §4.2)",
        "ber.unit": "class | task: what BER balances over (D5)",
    }
    optional_hyperparameters = {
        "drl.within_weight": "alpha of the code form (2)",
        "augment.flip": "flip a random half of every training mini-batch horizontally",
    }
    state_attrs = ("memory", "pending")
    stored_data_attrs = ("memory",)

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        for key, allowed in (("replay.strategy", STRATEGIES), ("drl.form", FORMS),
                             ("drl.norm", NORMS), ("ber.unit", ("class", "task"))):
            if hp[key] not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {hp[key]!r}")
        self.strategy = hp["replay.strategy"]
        self.memory = ClassBalancedMemory(hp["replay.per_class"], ctx.input_shape, self.device,
                                          ctx.generator)
        self.pending: dict[str, torch.Tensor] = {}  # shuffle: the task's merged order so far

    # -- the loss of one training mini-batch ---------------------------------------------
    def batch_loss(self, x: torch.Tensor, y: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        lam = self.hp["drl.lambda"]
        if not lam:
            return self.loss(x, y, tasks)
        reps = dict(self.model.representations(x, layers=self.hp["drl.layers"]))
        logits = reps["logits"]
        if self.ctx.class_mask is not None:  # multi-head: only the head in use is a layer
            reps["logits"] = logits.masked_fill(~self.ctx.class_mask[tasks], 0.0)
        l_dr = drl_loss(reps.values(), y, self.hp["drl.form"], self.hp["drl.norm"],
                        self.hp.get("drl.within_weight", 2.0))
        return F.cross_entropy(self.mask_logits(logits, tasks), y) + lam * l_dr

    def train_on(self, x: torch.Tensor, y: torch.Tensor, tasks: torch.Tensor) -> None:
        if self.hp.get("augment.flip"):
            flip = torch.rand(len(y), generator=self.ctx.generator).to(x.device) < 0.5
            x = torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)
        self.opt.zero_grad(set_to_none=True)
        self.batch_loss(x, y, tasks).backward()
        self.opt.step()

    # -- strategies ----------------------------------------------------------------------
    def observe(self, x, y, tasks):
        mem, k = self.memory, self.hp["replay.batch_size"]
        if self.strategy == "none":  # no replay, no memory
            self.train_on(x, y, tasks)
            return
        if self.strategy == "er":
            idx = mem.uniform(k)
            self.hold_during_batch(mem.x[idx])
            self.train_on(torch.cat([x, mem.x[idx]]), torch.cat([y, mem.y[idx]]),
                          torch.cat([tasks, mem.t[idx]]))
        elif self.strategy == "ber":
            mem.add(x, y, tasks)
            units = y if self.hp["ber.unit"] == "class" else tasks
            idx = mem.balanced(k, self.hp["ber.unit"], set(units.tolist()))
            self.hold_during_batch(mem.x[idx])
            self.train_on(mem.x[idx], mem.y[idx], mem.t[idx])
            return
        else:
            self._shuffle_step(x, y, tasks)
        mem.add(x, y, tasks)

    def begin_task(self, t: int, data: TaskStream | None = None) -> None:
        super().begin_task(t, data)
        if self.strategy != "shuffle":
            return
        n_mem, n_new = len(self.memory), len(data)
        order = torch.randperm(n_mem, generator=self.ctx.generator).to(self.device)
        slots = torch.zeros(n_mem + n_new, dtype=torch.bool)  # True: the next stream example
        slots[torch.randperm(n_mem + n_new, generator=self.ctx.generator)[:n_new]] = True
        self.pending = {"mem_x": self.memory.x[order].clone(), "mem_y": self.memory.y[order],
                        "mem_t": self.memory.t[order], "slots": slots.to(self.device),
                        "pos": torch.zeros(2, dtype=torch.long),  # merged position, memory used
                        "x": self.memory.x[:0], "y": self.memory.y[:0], "t": self.memory.t[:0]}

    def _shuffle_step(self, x, y, tasks, flush: bool = False) -> None:
        p = self.pending
        p["x"], p["y"], p["t"] = torch.cat([p["x"], x]), torch.cat([p["y"], y]), torch.cat([p["t"], tasks])
        size = self.hp["replay.batch_size"]
        while True:
            pos, used = p["pos"].tolist()
            window = p["slots"][pos:pos + size]
            n_new = int(window.sum())
            if len(window) == 0 or (n_new > len(p["y"]) or (len(window) < size and not flush)):
                break
            n_old = len(window) - n_new
            bx = torch.cat([p["x"][:n_new], p["mem_x"][used:used + n_old]])
            by = torch.cat([p["y"][:n_new], p["mem_y"][used:used + n_old]])
            bt = torch.cat([p["t"][:n_new], p["mem_t"][used:used + n_old]])
            p["x"], p["y"], p["t"] = p["x"][n_new:], p["y"][n_new:], p["t"][n_new:]
            p["pos"] = torch.tensor([pos + len(window), used + n_old])
            self.hold_during_batch(p["mem_x"])
            self.train_on(bx, by, bt)

    def end_task(self, t: int, data: TaskStream | None = None) -> None:
        if self.strategy == "shuffle":  # the merged order's last, possibly short, mini-batch
            empty = self.pending["x"][:0]
            self._shuffle_step(empty, self.pending["y"][:0], self.pending["t"][:0], flush=True)
            self.pending = {}
