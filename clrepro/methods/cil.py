"""Class-incremental learning under the Mnemonics protocol (Liu et al. 2020, §3-§5), for the
phase trainer (clrepro.phases): the machinery LwF, iCaRL, BiC and LUCIR share, and the first
two of them.

Per phase i the network's head covers the classes seen so far (phase 0: the base classes);
it grows when a phase begins, and a frozen copy of the previous network is kept for
distillation. The phase trains on D_i and the exemplars of every old class; at its end the
new classes' exemplars are chosen by the exemplar strategy (clrepro.exemplars: random,
herding, or mnemonics with old-exemplar adjustment), optionally followed by class-balanced
fine-tuning on the exemplars alone. "X w/ ours" (Table 1) is X with mnemonics exemplars,
weight transfer from phase 1 and balanced fine-tuning.

Stored images stay as the stream gave them where nothing optimises them: random and herding
exemplars (and BiC's held-out images) of a uint8 stream are kept as uint8, 4x smaller than
float32 (ImageNet's 20,000 exemplars: 3 GB instead of 12 GB), and read through `as_float`,
the stream's own conversion, so the network sees the same float32 input bit for bit.
Mnemonics-optimised exemplars are float (they move off the 1/255 grid).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from clrepro import bilevel
from clrepro import exemplars as ex
from clrepro.data.benchmarks import derive_seed
from clrepro.data.transforms import as_float
from clrepro.methods.base import FileStream, Method, TaskStream, register
from clrepro.models.lucir import weight_transfer
from clrepro.optim import build_optimizer
from clrepro.trainset import TrainingSet, augment

KINDS = ("random", "herding", "mnemonics")
POLICIES = ("per_class", "fixed_total")


def grow_linear(head: nn.Linear, n_new: int) -> nn.Linear:
    """A linear head with n_new more outputs; the old rows and biases are kept."""
    grown = nn.Linear(head.in_features, head.out_features + n_new).to(head.weight)
    with torch.no_grad():
        grown.weight[:head.out_features] = head.weight
        grown.bias[:head.out_features] = head.bias
    return grown


def soft_distillation(logits: torch.Tensor, old_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """-sum_k pi_hat_k log pi_k over the old classes, softmaxes at temperature tau (Eq. 5 with
    the soft targets, spec D7), mean over the batch."""
    n_old = old_logits.shape[1]
    target = F.softmax(old_logits / tau, dim=1)
    return -(target * F.log_softmax(logits[:, :n_old] / tau, dim=1)).sum(1).mean()


class ClassIncremental(Method):
    """Shared machinery; subclasses define `head_kind` and `classification_loss`."""

    trainer = "phases"
    settings = ("class_incremental",)
    needs_memory = True  # exemplars of the old classes
    head_kind = "linear"
    hyperparameters = {
        "optimizer": "SGD with momentum and weight decay (§4.3)",
        "exemplars.kind": "random | herding | mnemonics",
        "exemplars.policy": "per_class (20 per class) | fixed_total (D1)",
        "exemplars.per_class": "exemplars per class (per_class policy)",
        "weight_transfer": "from phase 1: convs frozen, learnable scales (D11)",
        "finetune.epochs": "class-balanced fine-tuning epochs on the exemplars (0: none)",
        "finetune.lr": "its initial lr, halved every 10 epochs",
        "finetune.batch_size": "its batch size",
    }
    optional_hyperparameters = {
        "exemplars.total": "total exemplars of the fixed_total policy (2000)",
        "mnemonics.outer_epochs": "exemplar-level epochs (Eq. 9)",
        "mnemonics.inner_steps": "unrolled steps of the temporary model (Eq. 8)",
        "mnemonics.inner_lr": "alpha_2",
        "mnemonics.lr": "beta_1 = beta_2, halved every 10 epochs",
        "mnemonics.truncate_k": "back-propagate through the last k inner steps only",
        "mnemonics.adjust_old": "adjust old exemplars with A/B halves (Eq. 10)",
        "mnemonics.init": "random | herding (D3)",
        "mnemonics.mode": "bilevel | code_single_level (D2)",
        "mnemonics.val_batch": "mini-batch of the validation pass over D_i",
        "mnemonics.schedule": "per_batch (one meta-update per validation mini-batch) | per_epoch",
        "mnemonics.recompute": "recompute the unrolled steps in the backward pass (exact, less memory)",
        "mnemonics.inner_batch": "exemplars per inner-step mini-batch (None: all at once)",
        "weight_transfer.scale": "kernel (official code, default) | filter: one scale per filter",
        "weight_transfer.shift": "code (default: only convs with a bias) | all | none",
        "log.artifacts": "keep exemplar and real-image features per phase (Figs. 1 and 5)",
    }
    state_attrs = ("exemplars", "old_model", "end_state", "logged", "bilevel_log")
    stored_data_attrs = ("exemplars",)

    def __init__(self, ctx, hp):
        self.phase_classes = ctx.task_classes  # output index = class id (labels remapped)
        super().__init__(ctx, hp)
        for key, valid in (("exemplars.kind", KINDS), ("exemplars.policy", POLICIES)):
            if hp[key] not in valid:
                raise ValueError(f"{key} must be one of {valid}")
        # class -> images in rank order: uint8 as the stream gave them, float once optimised
        self.exemplars: dict[int, torch.Tensor] = {}
        self.old_model: nn.Module | None = None
        self.end_state: dict = {}  # progress of a phase's end work (resumable)
        self.logged: dict[str, torch.Tensor] = {}
        self.bilevel_log: list[dict] = []  # per phase and exemplar set: movement, objective
        self.gen = ctx.generator

    # -- structure ----------------------------------------------------------------------
    def make_model(self) -> nn.Module:
        spec = {**self.hp["model"], "head": self.head_kind}
        return self.build_model(spec, n_outputs=len(self.phase_classes[0]))

    def seen(self, phase: int) -> int:
        return sum(len(c) for c in self.phase_classes[:phase + 1])

    def grow(self, phase: int) -> None:
        """Phase `phase` begins: keep a frozen copy of the network, add the new classes'
        outputs, transfer the weights once (phase 1)."""
        self.old_model = copy.deepcopy(self.model).eval()
        for p in self.old_model.parameters():
            p.requires_grad_(False)
        self.grow_head(len(self.phase_classes[phase]))
        if phase == 1 and self.hp["weight_transfer"]:
            weight_transfer(self.model, self.hp.get("weight_transfer.scale", "kernel"),
                            self.hp.get("weight_transfer.shift", "code"))

    def grow_head(self, n_new: int) -> None:
        self.model.head = grow_linear(self.model.head, n_new)

    def restore_structure(self, phase: int, stage: str) -> None:
        for q in range(1, phase + (stage != "begin")):
            self.grow(q)
        self.opt = self.make_optimizer([p for p in self.model.parameters() if p.requires_grad])

    def begin_task(self, t, data=None):
        super().begin_task(t, data)
        self.end_state = {}
        if t > 0:
            self.grow(t)
            self.init_new_classes(t, data)
        self.opt = self.make_optimizer([p for p in self.model.parameters() if p.requires_grad])

    def init_new_classes(self, t: int, data: TaskStream) -> None:
        """New outputs at random (a linear head); LUCIR imprints them."""

    # -- training -----------------------------------------------------------------------
    def training_set(self, t, data):
        """D_i and the exemplars of every old class (a file-backed D_i stays files)."""
        base = super().training_set(t, data)
        x, y = [base.x], [base.y]
        for c, images in sorted(self.exemplars.items()):
            x.append(images)
            y.append(torch.full((len(images),), c, dtype=torch.long, device=images.device))
        return TrainingSet(stack_images(x), torch.cat(y), base.files)

    def observe(self, x, y, tasks):
        self.opt.zero_grad(set_to_none=True)
        self.classification_loss(x, y).backward()
        self.opt.step()

    def classification_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def old_logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.old_model(x)

    def load_state_dict(self, state):
        """A checkpoint from before uint8 storage (same protocol key, so it is loaded) holds
        the stream's images as float32: they are kept as uint8 again, exactly, as a fresh
        run keeps them; exemplars that an optimisation may have moved stay as saved."""
        super().load_state_dict(state)
        optimised = self.hp["exemplars.kind"] == "mnemonics" or self.hp.get("mnemonics.adjust_old")
        stores = [getattr(self, a) for a in self.stored_data_attrs if not (a == "exemplars" and optimised)]
        for images in stores + [self.end_state.get("initial", {})]:
            for c in images:
                images[c] = compact(images[c])

    # -- phase end: exemplars, fine-tuning ------------------------------------------------
    def per_class(self, phase: int) -> int:
        if self.hp["exemplars.policy"] == "per_class":
            return self.hp["exemplars.per_class"]
        return -(-self.hp["exemplars.total"] // self.seen(phase))  # ceil, as the code does

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        was = self.model.training
        self.model.eval()
        out = torch.cat([self.model.features(x[lo:lo + 500]) for lo in range(0, len(x), 500)])
        self.model.train(was)
        return out

    def end_task(self, t, data=None):
        m = self.per_class(t)
        if "selected" not in self.end_state:
            for c in self.phase_classes[t]:
                members = data.class_pixels(c)  # stored as the stream holds them (uint8)
                init = self.hp.get("mnemonics.init", "random") if self.hp["exemplars.kind"] == "mnemonics" \
                    else self.hp["exemplars.kind"]
                order = (ex.herding_ranking(self.features(as_float(members))) if init == "herding"
                         else ex.random_ranking(len(members), self.gen).to(members.device))
                self.exemplars[c] = members[order[:m]].clone()
            if self.hp.get("log.artifacts") and self.hp["exemplars.kind"] == "mnemonics":
                # the optimised exemplars' own starting point, for C11's comparison
                self.end_state["initial"] = {c: self.exemplars[c].clone() for c in self.phase_classes[t]}
            self.end_state["selected"] = True
            self.checkpoint()
        if self.hp["exemplars.kind"] == "mnemonics" and "new_done" not in self.end_state:
            self.optimise_exemplars(self.phase_classes[t], data, "new")
            self.end_state["new_done"] = True
            self.checkpoint()
        if t > 0 and self.hp.get("mnemonics.adjust_old") and "adjusted" not in self.end_state:
            self.adjust_old(t)
            self.end_state["adjusted"] = True
            self.checkpoint()
        for c in self.exemplars:  # a smaller budget keeps the best-ranked (fixed_total policy)
            self.exemplars[c] = self.exemplars[c][:m]
        if t > 0 and self.hp["finetune.epochs"] and "finetuned" not in self.end_state:
            self.balanced_finetune(t)
            self.end_state["finetuned"] = True
            self.checkpoint()
        self.end_phase(t, data)
        if self.hp.get("log.artifacts"):
            self.log_phase(t, data)

    def preflight_end_task(self, peak_during) -> int:
        """The peak of end_task's work at its largest, for the memory pre-flight
        (clrepro.preflight: run on `meta` tensors at full-scale shapes, no data): every seen
        class's stored exemplars, and with mnemonics exemplars one outer epoch of the base
        phase's new set (the largest), of the last phase's new set and of the last phase's
        old-exemplar adjustment (Eq. 10), each on one validation mini-batch (every
        meta-update of an epoch allocates the same). `peak_during(fn)`: the most memory alive
        while fn runs. Two things are measured small and extrapolated linearly, because only
        one allocation grows with each: the K inner steps (measured at K = 1 and 2: the
        unroll keeps Theta_0..Theta_K) and, where the exemplars are split into inner
        mini-batches, the number of classes (each phase's classes cut to a share f that keeps
        every optimised set at least one mini-batch, at f and 1.5 f: one mini-batch's work is
        alive at a time, the stored and optimised images grow with the classes)."""
        t = len(self.phase_classes) - 1
        missing = self.seen(t) - self.model.head.out_features  # the last phase's head: all classes
        if missing > 0:
            self.grow_head(missing)
        mnemonics = self.hp["exemplars.kind"] == "mnemonics" or bool(self.hp.get("mnemonics.adjust_old"))
        steps = self.hp.get("mnemonics.inner_steps", 1) if mnemonics else 1
        chunk = self.hp.get("mnemonics.inner_batch")
        full, hp, task = self.phase_classes, self.hp, self.task
        m = self.per_class(t)
        smallest = min(m * len(full[0]), m // 2 * sum(len(c) for c in full[:t]) if t else 10**12)
        share = min(1.0, 1.5 * chunk / smallest) if mnemonics and chunk else 1.0

        def measure(k: int, f: float) -> tuple[int, int]:
            self.phase_classes = [c[:max(1, round(f * len(c)))] for c in full]
            self.hp = {**hp, "mnemonics.outer_epochs": 1, "mnemonics.inner_steps": k}
            try:
                peak = peak_during(lambda: self._preflight_end_work(t, mnemonics))
                return peak, sum(len(c) for c in self.phase_classes)
            finally:
                self.phase_classes, self.hp, self.task = full, hp, task
                self.exemplars, self.end_state = {}, {}

        ks = (1, 2) if steps > 2 else (steps,)
        (p1, n1), *rest = [measure(k, share) for k in ks]
        peak = p1 if not rest else rest[0][0] + (steps - 2) * (rest[0][0] - p1)
        if share < 1.0:  # the classes: a second share, extrapolated to all of them
            p2, n2 = measure(ks[0], 1.5 * share)
            peak += (p2 - p1) * (sum(len(c) for c in full) - n1) / (n2 - n1)
        return int(peak)

    def _preflight_end_work(self, t: int, mnemonics: bool) -> None:
        m, batch = self.per_class(t), self.hp.get("mnemonics.val_batch", 128)
        shape = self.ctx.input_shape
        stored = [c for q in range(t + 1) for c in self.phase_classes[q]]
        validation = TaskStream(torch.zeros(batch, *shape, dtype=torch.uint8, device=self.device),
                                torch.zeros(batch, dtype=torch.long, device=self.device))
        # end_task stores the stream's uint8 images (meta tensors have no values to tell);
        # exemplars are float32 once an optimisation moved them: mnemonics ones, and old
        # ones adjusted in an earlier phase (the previous phase's are counted so too)
        moved = self.hp["exemplars.kind"] == "mnemonics" or mnemonics
        for phase, keep in ((0, self.phase_classes[0]), (t, stored)):
            # (herding/random: only phase t is measured, where phase 0's have been adjusted)
            newest = self.phase_classes[phase if self.hp["exemplars.kind"] == "mnemonics" else t]
            for c in keep:
                dtype = torch.float32 if moved and c not in newest else torch.uint8
                self.exemplars.setdefault(c, torch.zeros(m, *shape, dtype=dtype, device=self.device))
            if self.hp["exemplars.kind"] == "mnemonics":
                self.task = phase
                self.optimise_exemplars(self.phase_classes[phase], validation, f"new{phase}")
        if mnemonics and t > 0 and self.hp.get("mnemonics.adjust_old"):
            self.adjust_old(t)

    def log_phase(self, t: int, data: TaskStream, per_class: int = 50) -> None:
        """Features (in this phase's network) of the phase's classes' exemplars, of their
        initialisation (mnemonics) and of some of their real images, for the t-SNE figures
        (Mnemonics Figs. 1 and 5) and C11."""
        for c in self.phase_classes[t]:
            real = data.class_images(c, per_class)
            self.logged[f"p{t}/c{c}/exemplars"] = self.features(as_float(self.exemplars[c])).cpu()
            if c in self.end_state.get("initial", {}):
                self.logged[f"p{t}/c{c}/initial"] = self.features(as_float(self.end_state["initial"][c])).cpu()
            self.logged[f"p{t}/c{c}/real"] = self.features(real).cpu()

    def artifacts(self):
        return dict(self.logged)

    def details(self):
        return {"exemplar_optimisation": list(self.bilevel_log)} if self.bilevel_log else {}

    def end_phase(self, t: int, data: TaskStream) -> None:
        """Method-specific work after the exemplars are set (BiC's bias correction)."""

    def balanced_finetune(self, t: int) -> None:
        """Fine-tune on the exemplars only, the same number per class (§4.3): SGD at
        finetune.lr halved every 10 epochs."""
        x, y = self.exemplar_set()
        opt = build_optimizer([p for p in self.model.parameters() if p.requires_grad],
                              self.hp["finetune.lr"], self.hp["optimizer"])
        sched = torch.optim.lr_scheduler.StepLR(opt, 10, 0.5)
        batch = self.hp["finetune.batch_size"]
        for e in range(self.hp["finetune.epochs"]):
            gen = torch.Generator().manual_seed(derive_seed(self.ctx.seed, f"finetune:{t}:{e}"))
            order = torch.randperm(len(y), generator=gen).to(y.device)
            for lo in range(0, len(y), batch):
                idx = order[lo:lo + batch]
                opt.zero_grad(set_to_none=True)
                xb = augment(as_float(x[idx]), self.hp, gen)
                F.cross_entropy(self.model(xb), y[idx]).backward()
                opt.step()
            sched.step()

    def exemplar_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All exemplars as stored (uint8 while none is float: as_float reads them), labels."""
        classes = sorted(self.exemplars)
        x = stack_images([self.exemplars[c] for c in classes])
        y = torch.cat([torch.full((len(self.exemplars[c]),), c, dtype=torch.long,
                                  device=x.device) for c in classes])
        return x, y

    # -- mnemonics (§4, Eqs. 7-10) ------------------------------------------------------
    def adjust_old(self, t: int) -> None:
        """Eq. 10: each old class's exemplars split into halves A and B; A is optimised with B
        as the validation data, then B with (the new) A."""
        old = [c for c in sorted(self.exemplars) if c not in self.phase_classes[t]]
        half = {c: len(self.exemplars[c]) // 2 for c in old}

        def part(lo, hi):
            return TaskStream(torch.cat([as_float(self.exemplars[c][lo(c):hi(c)]) for c in old]),
                              torch.cat([torch.full((hi(c) - lo(c),), c, dtype=torch.long,
                                                    device=self.device) for c in old]))

        first, second = (lambda c: 0, lambda c: half[c]), (lambda c: half[c], lambda c: len(self.exemplars[c]))
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
        hi = hi or (lambda c: len(self.exemplars[c]))
        sizes = [hi(c) - lo(c) for c in classes]
        labels = torch.cat([torch.full((n,), c, dtype=torch.long, device=self.device)
                            for c, n in zip(classes, sizes)])
        mean, std = self.input_stats()
        # a leaf tensor, not nn.Parameter: the pre-flight counts a storage through the tensors
        # that ops return, and Parameter(...) re-wraps one without an op
        z = torch.cat([(as_float(self.exemplars[c][lo(c):hi(c)]) - mean) / std
                       for c in classes]).requires_grad_(True)
        lr = self.hp["mnemonics.lr"]
        opt = torch.optim.SGD([z], lr=lr)
        was = self.model.training
        self.model.eval()
        batch = self.hp.get("mnemonics.val_batch", 128)
        bilevel_mode = self.hp.get("mnemonics.mode", "bilevel") == "bilevel"
        per_batch = self.hp.get("mnemonics.schedule", "per_batch") == "per_batch"
        start = self.end_state.get(f"{tag}_epoch", 0)
        if start:
            z.data.copy_(self.end_state[f"{tag}_z"])
        else:
            initial = (z.detach() * std + mean).clamp(0, 1)
            self.end_state[f"{tag}_init"] = initial.cpu()
            self.end_state[f"{tag}_before"] = self.bilevel_objective(initial, labels, validation, batch)
            del initial  # its host copy is kept: not a copy of the set on the device all along
        updates = self.end_state.get(f"{tag}_updates", 0)
        for epoch in range(start, self.hp["mnemonics.outer_epochs"]):
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 ** (epoch // 10)
            gen = torch.Generator().manual_seed(derive_seed(self.ctx.seed, f"mnemonics:{tag}:{self.task}:{epoch}"))
            shuffled = shuffle_stream(validation, gen)
            passes = (([b] for b in shuffled.batches(batch)) if per_batch  # lazily: ImageNet decodes
                      else [shuffled.batches(batch)])
            for part in passes:
                with torch.no_grad():  # meta_gradient differentiates through its own copy
                    pixels = (z * std + mean).clamp(0, 1)
                if bilevel_mode:
                    grad, _ = bilevel.meta_gradient(
                        self.model, pixels, labels, part, sum(len(y) for _, y in part) if per_batch
                        else len(validation), self.hp["mnemonics.inner_steps"],
                        self.hp["mnemonics.inner_lr"], self.hp.get("mnemonics.truncate_k"),
                        recompute=self.hp.get("mnemonics.recompute", True),
                        inner_batch=self.hp.get("mnemonics.inner_batch"))
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
            self.end_state[f"{tag}_epoch"], self.end_state[f"{tag}_z"] = epoch + 1, host_copy(z)
            self.end_state[f"{tag}_updates"] = updates
            self.checkpoint()
        pixels = (z.detach() * std + mean).clamp(0, 1)
        self.log_movement(tag, self.end_state[f"{tag}_init"], pixels, labels, validation, batch, updates)
        self.model.train(was)
        for c, part in zip(classes, pixels.split(sizes)):  # float from now on: they moved
            stored = as_float(self.exemplars[c])
            self.exemplars[c] = torch.cat([stored[:lo(c)], part, stored[hi(c):]])

    def bilevel_objective(self, pixels, labels, validation: TaskStream, batch: int) -> float:
        """L_c(Theta_K(E); D): the validation loss of the temporary model trained on E."""
        return bilevel.objective(self.model, pixels, labels, validation.batches(batch),
                                 len(validation), self.hp["mnemonics.inner_steps"],
                                 self.hp["mnemonics.inner_lr"], self.hp.get("mnemonics.inner_batch"))

    def log_movement(self, tag, initial, pixels, labels, validation, batch, updates) -> None:
        """Evidence that the exemplars moved (spec §4.5, Amended 2026-12-07): mean |dE| in
        grey levels (1/255 of the [0, 1] pixel range) and the bilevel objective of the
        initial and the optimised exemplars; flagged when both barely changed."""
        moved = float((pixels.cpu() - initial.cpu()).abs().mean()) * 255
        before = self.end_state[f"{tag}_before"]
        after = self.bilevel_objective(pixels, labels, validation, batch)
        fell = (before - after) / abs(before) if before else 0.0
        self.bilevel_log.append({
            "phase": self.task, "set": tag, "exemplars": len(labels), "meta_updates": updates,
            "moved_grey_levels": moved, "objective_before": before, "objective_after": after,
            "objective_fell_rel": fell, "not_moved": moved < 1.0 and fell < 0.01})

    def single_level_gradient(self, z, mean, std, classes, sizes, validation, batch) -> torch.Tensor:
        """The official code's variant (D2), summed over the validation mini-batches given."""
        total = torch.zeros_like(z)
        old = [c for c in range(self.model.head.out_features) if c not in classes]
        with torch.no_grad():
            old_means = (torch.stack([self.features(as_float(self.exemplars[c])).mean(0) for c in old])
                         if old else None)
        for vx, vy in validation:
            zz = z.detach().requires_grad_(True)
            per_class = ((zz * std + mean).clamp(0, 1)).split(sizes)
            loss = ex.code_single_level_gradient(self.model.features, list(per_class), classes,
                                                 old_means, vx, vy)
            (g,) = torch.autograd.grad(loss, zz)
            total += g
        return total

    def input_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-channel mean and std of the network's input normalisation (1 and 0 when
        it has none), shaped to broadcast over images."""
        mean = getattr(self.model, "mean", None)
        std = getattr(self.model, "std", None)
        if mean is None:
            return torch.zeros((), device=self.device), torch.ones((), device=self.device)
        return mean, std

    # -- prediction -----------------------------------------------------------------------
    def predict(self, x, tasks):
        return self.model(x).argmax(1)


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


@register
class LwFCIL(ClassIncremental):
    """LwF with herding exemplars (Mnemonics Table 1: "we add herding exemplars to [LwF] for
    a fair comparison"): L = lambda L_c + (1 - lambda) L_d (Eq. 5), L_c the cross-entropy
    over all seen classes, L_d the soft-target distillation of the previous network's old
    classes at temperature tau (spec D7; kd.form code: KL x tau^2 x 0.25 x #old + CE)."""

    name = "lwf_cil"
    hyperparameters = {"kd.lambda": "lambda of Eq. 5", "kd.tau": "temperature",
                       "kd.form": "soft_targets_eq5 | code (D7)"}

    def classification_loss(self, x, y):
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        if self.old_model is None:
            return ce
        old = self.old_logits(x)
        tau = self.hp["kd.tau"]
        if self.hp["kd.form"] == "code":
            kl = F.kl_div(F.log_softmax(logits[:, :old.shape[1]] / tau, dim=1),
                          F.softmax(old / tau, dim=1), reduction="batchmean")
            return ce + kl * tau * tau * 0.25 * old.shape[1]
        lam = self.hp["kd.lambda"]
        return lam * ce + (1 - lam) * soft_distillation(logits, old, tau)


@register
class ICaRLCIL(ClassIncremental):
    """iCaRL (Rebuffi et al. 2017) under the Mnemonics protocol: sigmoid outputs trained with
    binary cross-entropy, the old classes' targets being the previous network's sigmoid
    outputs (distillation) and the new ones one-hot; prediction by the nearest mean of
    exemplars on L2-normalised features (NME)."""

    name = "icarl_cil"
    optional_hyperparameters = {
        "icarl.loss": "bce (iCaRL) | ce_kd (the official README's iCaRL row: LwF's loss, NME; D5)",
        "kd.lambda": "ce_kd: lambda", "kd.tau": "ce_kd: temperature", "kd.form": "ce_kd: form",
    }
    state_attrs = ClassIncremental.state_attrs + ("class_means",)

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        self.class_means: torch.Tensor | None = None

    def classification_loss(self, x, y):
        if self.hp.get("icarl.loss", "bce") == "ce_kd":
            return LwFCIL.classification_loss(self, x, y)
        logits = self.model(x)
        # one-hot targets by scatter: F.one_hot reads the labels' range back to the host
        target = torch.zeros_like(logits).scatter_(1, y[:, None], 1.0)
        if self.old_model is not None:
            old = torch.sigmoid(self.old_logits(x))
            target[:, :old.shape[1]] = old
        return F.binary_cross_entropy_with_logits(logits, target)

    @torch.no_grad()
    def prepare_eval(self):
        if self.exemplars:
            self.class_means = torch.stack([F.normalize(F.normalize(self.features(as_float(self.exemplars[c])),
                                                                    dim=1).mean(0), dim=0)
                                            for c in sorted(self.exemplars)])

    @torch.no_grad()
    def predict(self, x, tasks):
        if self.class_means is None or len(self.class_means) < self.model.head.out_features:
            return self.model(x).argmax(1)  # no exemplars of some class yet: CNN output
        return torch.cdist(F.normalize(self.model.features(x), dim=1), self.class_means).argmin(1)


@register
class JointTraining(ClassIncremental):
    """The upper bound of Mnemonics Fig. 4: one network trained from scratch on all data of
    the classes seen so far (the phase trainer merges those phases into one), cross-entropy,
    no exemplars."""

    name = "joint_cil"

    def classification_loss(self, x, y):
        return F.cross_entropy(self.model(x), y)

    def end_task(self, t, data=None):
        pass
