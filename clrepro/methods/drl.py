"""Discriminative Representation Loss with the replay strategies it was evaluated with
(Chen, Diethe & Flach, CLVision 2020; spec drl-2020.md §4.2-4.3).

One method covers the six configurations of a track: the replay strategy (none, shuffle,
ER, BER) chooses what each training mini-batch holds, and DRL (on when drl.lambda > 0) adds
its loss on that mini-batch. The class-balanced memory and BER's balanced draw live in
clrepro.memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

import torch
import torch.nn.functional as F

from clrepro.data.transforms import as_float
from clrepro.memory import (BER_VARIANTS, CLASS_UPDATES, Balanced, ClassBalancedMemory,
                            ClassSplit, to_storage)
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
    within = same & ~torch.eye(len(y), dtype=torch.bool, device=y.device)
    between = ~same
    total_bt = total_wi = 0.0
    for h in layers:
        h = h.flatten(1)
        sims = h @ h.T
        # masks as weights, not boolean indexing: no nonzero, no host synchronisation
        total_bt = total_bt + (sims * between).sum()
        total_wi = total_wi + (sims * within).sum()
    if norm == "pairs":  # the pair counts stay tensors; an empty group contributes 0
        n_bt, n_wi = between.sum().clamp(min=1), within.sum().clamp(min=1)
    else:
        n_bt = n_wi = len(y) ** 2
    l_bt, l_wi = total_bt / n_bt, total_wi / n_wi
    return l_bt - l_wi if form == "paper" else l_bt + within_weight * l_wi


@register
class ReplayDRL(Method):
    """Replay from a class-balanced memory, optionally with DRL (paper Eq. 4:
    L = L_clf + lambda * L_DR on every training mini-batch).

    Strategies (§3, Algorithm 1; batch sizes and step counts as the official code,
    models/replay.py and models/drl.py, spec §4.3 Amended 2026-12-07):
    - none: the stream batch alone (the binary classifiers of Fig. 1);
    - er: the stream batch is added to memory, then one update on replay.batch_size
      examples: half from the current classes' buffers, half from the other classes';
    - ber: the stream batch is added to memory, then one update on replay.batch_size
      examples drawn evenly over the classes (or tasks, ber.unit) in memory (Algorithm 1);
    - shuffle: the memory as it was when the task began is merged with the task's data,
      shuffled, and trained on in mini-batches of replay.batch_size: every stored example is
      visited once per task (paper). Mini-batches are formed as the stream arrives; a last
      mini-batch of one example is folded into the one before (BatchNorm needs two).
      The stream batch enters the memory after it was trained on.
    ER and BER thus make one update per stream batch, on batches of the same size; shuffle
    makes one per mini-batch of (memory U task), as the paper's "train as usual" says.
    (During the first task the official code draws uniformly from the whole buffer for both
    ER and BER; here the strategies' rules apply from the start.)
    """

    name = "replay_drl"
    hyperparameters = {
        "replay.strategy": "none | shuffle | er | ber (§3)",
        "replay.batch_size": "training mini-batch size of ER, BER and shuffle (§4.3)",
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
        "memory.update": "ring (default, official code) | reservoir (per class), §4.3",
        "ber.variant": "even (default) | ber0 | ber1 | ber2 (D5)",
    }
    state_attrs = ("memory", "pending")
    stored_data_attrs = ("memory",)

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        for key, allowed in (("replay.strategy", STRATEGIES), ("drl.form", FORMS),
                             ("drl.norm", NORMS), ("ber.unit", ("class", "task")),
                             ("memory.update", CLASS_UPDATES), ("ber.variant", BER_VARIANTS)):
            value = hp.get(key, allowed[0])
            if value not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {value!r}")
        self.strategy = hp["replay.strategy"]
        self.memory = ClassBalancedMemory(hp["replay.per_class"], ctx.n_classes, ctx.input_shape,
                                          self.device, ctx.generator,
                                          hp.get("memory.update", "ring"), ctx.n_tasks)
        self.retrieval = (ClassSplit() if self.strategy == "er" else
                          Balanced(hp.get("ber.unit", "class"), hp.get("ber.variant", "even")))
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
        if self.strategy == "shuffle":
            self._shuffle_step(x, y, tasks)
            mem.add(x, y, tasks)
            return
        mem.add(x, y, tasks)  # ER and BER draw from a memory that holds the stream batch
        bx, by, bt = mem.batch(self.retrieval(mem, k, x, y, tasks))
        self.hold_during_batch(bx)
        self.train_on(bx, by, bt)

    def begin_task(self, t: int, data: TaskStream | None = None) -> None:
        super().begin_task(t, data)
        if data is not None and data.x.dtype == torch.uint8 and t == 0 and \
                self.memory.x.dtype != torch.uint8:
            self.memory.store_uint8()  # the stream is uint8: store it so, 4x smaller
        if self.strategy != "shuffle":
            return
        # at a task boundary host synchronisation is harmless: plan the whole merged order
        held = self.memory.slots()
        n_mem, n_new = len(held), len(data)
        order = held[torch.randperm(n_mem, generator=self.ctx.generator).to(self.device)]
        slots = torch.zeros(n_mem + n_new, dtype=torch.bool)  # True: the next stream example
        slots[torch.randperm(n_mem + n_new, generator=self.ctx.generator)[:n_new]] = True
        cuts = shuffle_cuts(n_mem + n_new, self.hp["replay.batch_size"])
        new_per_batch = torch.tensor([int(slots[lo:hi].sum()) for lo, hi in pairwise(cuts)])
        self.pending = {"mem_x": self.memory.x[order], "mem_y": self.memory.y[order],
                        "mem_t": self.memory.t[order], "new": new_per_batch,
                        "cuts": torch.tensor(cuts),
                        "pos": torch.zeros(2, dtype=torch.long),  # next mini-batch, memory used
                        "x": self.memory.x[:0], "y": self.memory.y[:0], "t": self.memory.t[:0]}

    def _shuffle_step(self, x, y, tasks) -> None:
        """Train on every planned mini-batch whose stream examples have all arrived."""
        p = self.pending
        p["x"] = torch.cat([p["x"], to_storage(x, p["x"].dtype)])
        p["y"], p["t"] = torch.cat([p["y"], y]), torch.cat([p["t"], tasks])
        cuts, new = p["cuts"].tolist(), p["new"].tolist()  # host tensors: no synchronisation
        batch, used = p["pos"].tolist()
        arrived = len(p["y"])
        while batch < len(new) and new[batch] <= arrived:
            n_new = new[batch]
            n_old = cuts[batch + 1] - cuts[batch] - n_new
            bx = torch.cat([p["x"][:n_new], p["mem_x"][used:used + n_old]])
            by = torch.cat([p["y"][:n_new], p["mem_y"][used:used + n_old]])
            bt = torch.cat([p["t"][:n_new], p["mem_t"][used:used + n_old]])
            p["x"], p["y"], p["t"] = p["x"][n_new:], p["y"][n_new:], p["t"][n_new:]
            arrived -= n_new
            batch, used = batch + 1, used + n_old
            p["pos"] = torch.tensor([batch, used])
            self.hold_during_batch(p["mem_x"])
            self.train_on(as_float(bx), by, bt)

    def end_task(self, t: int, data: TaskStream | None = None) -> None:
        if self.strategy == "shuffle":  # mini-batches of memory examples after the last arrival
            empty = self.pending["y"][:0]
            self._shuffle_step(torch.zeros(0, *self.ctx.input_shape, device=self.device),
                               empty, empty)
            self.pending = {}


def shuffle_cuts(n: int, size: int) -> list[int]:
    """Boundaries of the mini-batches of `size` over n merged examples; a last mini-batch of
    one example joins the one before (BatchNorm in training mode needs two per channel)."""
    cuts = list(range(0, n, size)) + [n]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] < 2:
        del cuts[-2]
    return cuts
