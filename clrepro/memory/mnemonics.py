"""Mnemonics exemplars (Liu et al. 2020, §4, Eqs. 7-10): the exemplars a class-incremental
method selected (random or herding: `mnemonics.init`, D3; clrepro.memory.exemplars) are
optimised as image-sized tensors by a local bilevel program -- the meta-gradient through the
unrolled inner steps (clrepro.bilevel) -- new classes against D_i (Eqs. 8-9), old classes by
A/B halves (Eq. 10, also after herding or random selection: Table 2 "with adj.").
`code_single_level_gradient` is the official code's simplified variant (spec D2).
Optimised exemplars are kept as float (they move off the stream's 1/255 grid).

MnemonicsProgram works on a clrepro.methods.cil.ClassIncremental: its exemplars, network,
hyperparameters, resumable end-of-phase state and checkpoints (all read through the method
at call time: the memory pre-flight swaps the method's classes and hyperparameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from clrepro import bilevel
from clrepro.seeds import derive_seed
from clrepro.data.transforms import as_float
from clrepro.methods.base import FileStream, TaskStream


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


class MnemonicsProgram:
    """The bilevel program on the exemplars of the class-incremental method `method` (its
    `mnemonics.*` hyperparameters are declared there: the plan reads declarations from the
    methods' source, clrepro.methods.catalog)."""

    def __init__(self, method):
        self.m = method

    def optimise_new(self, t: int, data: TaskStream) -> None:
        """Eqs. 8-9: phase t's new exemplars optimised against D_t."""
        self.optimise_exemplars(self.m.phase_classes[t], data, "new")

    def adjust_old(self, t: int) -> None:
        """Eq. 10: each old class's exemplars split into halves A and B; A is optimised with B
        as the validation data, then B with (the new) A."""
        old = [c for c in sorted(self.m.exemplars) if c not in self.m.phase_classes[t]]
        half = {c: len(self.m.exemplars[c]) // 2 for c in old}

        def part(lo, hi):
            return TaskStream(torch.cat([as_float(self.m.exemplars[c][lo(c):hi(c)]) for c in old]),
                              torch.cat([torch.full((hi(c) - lo(c),), c, dtype=torch.long,
                                                    device=self.m.device) for c in old]))

        first, second = (lambda c: 0, lambda c: half[c]), (lambda c: half[c], lambda c: len(self.m.exemplars[c]))
        self.optimise_exemplars(old, part(*second), "adjust_a", *first)
        self.optimise_exemplars(old, part(*first), "adjust_b", *second)

    def optimise_exemplars(self, classes: list[int], validation: TaskStream, tag: str,
                           lo=lambda c: 0, hi=None) -> None:
        """Exemplars exemplars[c][lo(c):hi(c)] of `classes` trained against `validation`
        (Eqs. 8-9 for new exemplars with D_i; Eq. 10 with the other half of the old ones),
        optimised in the network's normalised input space and clamped to valid pixels.
        Schedule (spec §4.5, Amended 2026-12-07): an outer epoch is one pass over the
        validation data in mini-batches, reshuffled per epoch; each mini-batch gives one
        meta-update (`mnemonics.schedule` per_epoch: one per pass, the gradient accumulated
        over it). One checkpoint per outer epoch. Records the movement and the bilevel
        objective before/after (`bilevel_log`)."""
        hi = hi or (lambda c: len(self.m.exemplars[c]))
        sizes = [hi(c) - lo(c) for c in classes]
        labels = torch.cat([torch.full((n,), c, dtype=torch.long, device=self.m.device)
                            for c, n in zip(classes, sizes)])
        mean, std = self.input_stats()
        # a leaf tensor, not nn.Parameter: the pre-flight counts a storage through the tensors
        # that ops return, and Parameter(...) re-wraps one without an op
        z = torch.cat([(as_float(self.m.exemplars[c][lo(c):hi(c)]) - mean) / std
                       for c in classes]).requires_grad_(True)
        lr = self.m.hp["mnemonics.lr"]
        opt = torch.optim.SGD([z], lr=lr)
        was = self.m.model.training
        self.m.model.eval()
        batch = self.m.hp.get("mnemonics.val_batch", 128)
        bilevel_mode = self.m.hp.get("mnemonics.mode", "bilevel") == "bilevel"
        per_batch = self.m.hp.get("mnemonics.schedule", "per_batch") == "per_batch"
        start = self.m.end_state.get(f"{tag}_epoch", 0)
        if start:
            z.data.copy_(self.m.end_state[f"{tag}_z"])
        else:
            initial = (z.detach() * std + mean).clamp(0, 1)
            self.m.end_state[f"{tag}_init"] = initial.cpu()
            self.m.end_state[f"{tag}_before"] = self.bilevel_objective(initial, labels, validation, batch)
            del initial  # its host copy is kept: not a copy of the set on the device all along
        updates = self.m.end_state.get(f"{tag}_updates", 0)
        for epoch in range(start, self.m.hp["mnemonics.outer_epochs"]):
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 ** (epoch // 10)
            gen = torch.Generator().manual_seed(derive_seed(self.m.ctx.seed, f"mnemonics:{tag}:{self.m.task}:{epoch}"))
            shuffled = shuffle_stream(validation, gen)
            passes = (([b] for b in shuffled.batches(batch)) if per_batch  # lazily: ImageNet decodes
                      else [shuffled.batches(batch)])
            for part in passes:
                with torch.no_grad():  # meta_gradient differentiates through its own copy
                    pixels = (z * std + mean).clamp(0, 1)
                if bilevel_mode:
                    grad, _ = bilevel.meta_gradient(
                        self.m.model, pixels, labels, part, sum(len(y) for _, y in part) if per_batch
                        else len(validation), self.m.hp["mnemonics.inner_steps"],
                        self.m.hp["mnemonics.inner_lr"], self.m.hp.get("mnemonics.truncate_k"),
                        recompute=self.m.hp.get("mnemonics.recompute", True),
                        inner_batch=self.m.hp.get("mnemonics.inner_batch"))
                    z.grad = grad.mul_(std)  # d/dz of pixels = z * std + mean
                    del grad
                else:
                    z.grad = self.single_level_gradient(z, mean, std, classes, sizes, part, batch)
                opt.step()
                z.grad = None  # not alive during the next meta-update's unroll
                updates += 1
                with torch.no_grad():
                    z.copy_(((z * std + mean).clamp(0, 1) - mean) / std)
            if not torch.isfinite(z).all():
                raise FloatingPointError(f"mnemonics exemplars became non-finite ({tag}, "
                                         f"outer epoch {epoch}): lower mnemonics.lr")
            # kept for resuming, on the host (a checkpoint writes it there anyway)
            self.m.end_state[f"{tag}_epoch"], self.m.end_state[f"{tag}_z"] = epoch + 1, host_copy(z)
            self.m.end_state[f"{tag}_updates"] = updates
            self.m.checkpoint()
        pixels = (z.detach() * std + mean).clamp(0, 1)
        self.log_movement(tag, self.m.end_state[f"{tag}_init"], pixels, labels, validation, batch, updates)
        self.m.model.train(was)
        for c, part in zip(classes, pixels.split(sizes)):  # float from now on: they moved
            stored = as_float(self.m.exemplars[c])
            self.m.exemplars[c] = torch.cat([stored[:lo(c)], part, stored[hi(c):]])

    def bilevel_objective(self, pixels, labels, validation: TaskStream, batch: int) -> float:
        """L_c(Theta_K(E); D): the validation loss of the temporary model trained on E."""
        return bilevel.objective(self.m.model, pixels, labels, validation.batches(batch),
                                 len(validation), self.m.hp["mnemonics.inner_steps"],
                                 self.m.hp["mnemonics.inner_lr"], self.m.hp.get("mnemonics.inner_batch"))

    def log_movement(self, tag, initial, pixels, labels, validation, batch, updates) -> None:
        """Evidence that the exemplars moved (spec §4.5, Amended 2026-12-07): mean |dE| in
        grey levels (1/255 of the [0, 1] pixel range) and the bilevel objective of the
        initial and the optimised exemplars; flagged when both barely changed."""
        moved = float((pixels.cpu() - initial.cpu()).abs().mean()) * 255
        before = self.m.end_state[f"{tag}_before"]
        after = self.bilevel_objective(pixels, labels, validation, batch)
        fell = (before - after) / abs(before) if before else 0.0
        self.m.bilevel_log.append({
            "phase": self.m.task, "set": tag, "exemplars": len(labels), "meta_updates": updates,
            "moved_grey_levels": moved, "objective_before": before, "objective_after": after,
            "objective_fell_rel": fell, "not_moved": moved < 1.0 and fell < 0.01})

    def single_level_gradient(self, z, mean, std, classes, sizes, validation, batch) -> torch.Tensor:
        """The official code's variant (D2), summed over the validation mini-batches given."""
        total = torch.zeros_like(z)
        old = [c for c in range(self.m.model.head.out_features) if c not in classes]
        with torch.no_grad():
            old_means = (torch.stack([self.m.features(as_float(self.m.exemplars[c])).mean(0) for c in old])
                         if old else None)
        for vx, vy in validation:
            zz = z.detach().requires_grad_(True)
            per_class = ((zz * std + mean).clamp(0, 1)).split(sizes)
            loss = code_single_level_gradient(self.m.model.features, list(per_class), classes,
                                                 old_means, vx, vy)
            (g,) = torch.autograd.grad(loss, zz)
            total += g
        return total

    def input_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-channel mean and std of the network's input normalisation (1 and 0 when
        it has none), shaped to broadcast over images."""
        mean = getattr(self.m.model, "mean", None)
        std = getattr(self.m.model, "std", None)
        if mean is None:
            return torch.zeros((), device=self.m.device), torch.ones((), device=self.m.device)
        return mean, std

    # -- memory pre-flight ----------------------------------------------------------------
    def preflight_peak(self, t: int, peak_during) -> int:
        """The peak of the method's end_task work with this program (clrepro.preflight: meta
        tensors at full-scale shapes, no data): every seen class's stored exemplars and one
        outer epoch of the base phase's new set (the largest), of the last phase's new set
        and of the last phase's old-exemplar adjustment (Eq. 10), each on one validation
        mini-batch (every meta-update of an epoch allocates the same). `peak_during(fn)`:
        the most memory alive while fn runs. Two things are measured small and extrapolated
        linearly, because only one allocation grows with each: the K inner steps (measured
        at K = 1 and 2: the unroll keeps Theta_0..Theta_K) and, where the exemplars are split
        into inner mini-batches, the number of classes (each phase's classes cut to a share
        f that keeps every optimised set at least one mini-batch, at f and 1.5 f: one
        mini-batch's work is alive at a time, the stored and optimised images grow with the
        classes)."""
        steps = self.m.hp.get("mnemonics.inner_steps", 1)
        chunk = self.m.hp.get("mnemonics.inner_batch")
        full = self.m.phase_classes
        m = self.m.per_class(t)
        smallest = min(m * len(full[0]), m // 2 * sum(len(c) for c in full[:t]) if t else 10**12)
        share = min(1.0, 1.5 * chunk / smallest) if chunk else 1.0

        def measure(k: int, f: float) -> tuple[int, int]:
            return self.m.preflight_measure(peak_during, lambda: self.preflight_work(t), f,
                                            {"mnemonics.outer_epochs": 1, "mnemonics.inner_steps": k})

        ks = (1, 2) if steps > 2 else (steps,)
        (p1, n1), *rest = [measure(k, share) for k in ks]
        peak = p1 if not rest else rest[0][0] + (steps - 2) * (rest[0][0] - p1)
        if share < 1.0:  # the classes: a second share, extrapolated to all of them
            p2, n2 = measure(ks[0], 1.5 * share)
            peak += (p2 - p1) * (sum(len(c) for c in full) - n1) / (n2 - n1)
        return int(peak)

    def preflight_work(self, t: int) -> None:
        """end_task's exemplar work of phases 0 and t on zero exemplars and one validation
        mini-batch. Exemplars are float32 once an optimisation moved them: mnemonics ones, and
        old ones adjusted in an earlier phase (the previous phase's are counted so too);
        herding/random ones only phase t's adjustment is measured (phase 0's have been
        adjusted by then)."""
        validation = self.m.preflight_validation()
        new_sets = self.m.hp["exemplars.kind"] == "mnemonics"
        seen = [c for q in range(t + 1) for c in self.m.phase_classes[q]]
        for phase, keep in ((0, self.m.phase_classes[0]), (t, seen)):
            newest = self.m.phase_classes[phase if new_sets else t]
            self.m.preflight_store(keep, moved=[c for c in keep if c not in newest])
            if new_sets:
                self.m.task = phase
                self.optimise_exemplars(self.m.phase_classes[phase], validation, f"new{phase}")
        if t > 0 and self.m.hp.get("mnemonics.adjust_old"):
            self.adjust_old(t)


def shuffle_stream(stream: TaskStream, gen: torch.Generator) -> TaskStream:
    """The stream's images in a seeded random order (one meta-update's mini-batch mixes
    classes; a stream is stored class by class), gathered one mini-batch at a time (a
    shuffled copy of the whole would be one more copy of the validation set)."""
    perm = torch.randperm(len(stream), generator=gen)
    y = stream.y[perm.to(stream.y.device)]
    if isinstance(stream, FileStream):
        return FileStream(stream.x.subset(perm), y, stream.workers)
    return PermutedStream(stream.x, y, perm.to(stream.x.device))


@dataclass
class PermutedStream(TaskStream):
    """A stream's images read in the order `order` (labels `y` already in that order)."""

    order: torch.Tensor | None = None

    def batches(self, size: int):
        for lo in range(0, len(self.y), size):
            yield as_float(self.x[self.order[lo:lo + size]]), self.y[lo:lo + size]


def host_copy(t: torch.Tensor) -> torch.Tensor:
    """A detached copy of t in host memory (a copy even when t is already there)."""
    return t.detach().clone() if t.device.type == "cpu" else t.detach().cpu()
