"""BiC (Wu et al., CVPR 2019) under the Mnemonics protocol (Liu et al. 2020, Table 1).

The exemplars of the old classes and the samples of the new classes are split into a
training and a validation part (Wu et al. §4, Fig. 2; spec §4.3, amended): the validation
part is *balanced* -- the same number of images of every class seen so far,
ceil(`bic.val_fraction` x the exemplars per class), 2 of 20 at BiC's 9:1 split -- and taken
out of everything the network trains on: a new class's validation images are drawn from
D_i when the class arrives, never trained on, never chosen as exemplars (so never in the
balanced fine-tuning of "w/ ours"), and kept for the later phases beside the exemplar
memory, which holds the rest of each class's budget.

Stage 1 trains the network on D_i and the exemplars (less the validation part) with
    L = lambda * L_d + (1 - lambda) * L_c,  lambda = #old / #seen classes,
L_d the soft-target distillation (temperature tau) of the previous network's -- bias
corrected -- old-class outputs. Stage 2 freezes the network and fits the bias-correction
layer alpha * z + beta on the newest classes' logits (Eq. 5; clrepro.models.lucir
.BiasCorrection) by cross-entropy on the validation part, the optimisation of BiC's code as
FACIL (`approach/bic.py`) documents it: `bic.epochs` epochs of mini-batch SGD with momentum
`bic.momentum` at `bic.lr`, plus `bic.beta_l2` x beta^2 / 2. The network's logits of the
validation images are computed once (frozen network, eval mode, no augmentation).

`bic.bias_layers`: "newest" (default, Eq. 5: the old classes' logits are kept, only this
phase's layer corrects) | "all" (FACIL / the original code: every phase keeps its layer,
frozen after its stage 2, and all of them correct their classes' logits in training,
distillation and prediction).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from clrepro.seeds import derive_seed
from clrepro.data.transforms import as_float
from clrepro.memory.exemplars import ExemplarSet
from clrepro.methods.base import FileStream, TaskStream, register
from clrepro.methods.cil import ClassIncremental, soft_distillation
from clrepro.models.lucir import BiasCorrection

BIAS_LAYERS = ("newest", "all")


def correct_ranges(logits: torch.Tensor, layers: torch.Tensor) -> torch.Tensor:
    """alpha * z + beta on the logits of each (lo, hi, alpha, beta) row of `layers`."""
    if layers.numel() == 0:  # the default ("newest"): nothing to read back from the device
        return logits
    for lo, hi, alpha, beta in layers.tolist():
        lo, hi = int(lo), int(hi)
        logits = torch.cat([logits[:, :lo], alpha * logits[:, lo:hi] + beta, logits[:, hi:]], dim=1)
    return logits


class Corrected(nn.Module):
    """A network followed by its bias correction (the previous model BiC distils from):
    the earlier phases' layers (`previous`, "all") and its newest one."""

    def __init__(self, net: nn.Module, bias: BiasCorrection, previous: torch.Tensor | None = None):
        super().__init__()
        self.net, self.bias = net, bias
        self.register_buffer("previous", torch.zeros(0, 4) if previous is None else previous)

    def forward(self, x):
        return self.bias(correct_ranges(self.net(x), self.previous))


@register
class BiC(ClassIncremental):
    name = "bic"
    hyperparameters = {
        "kd.tau": "temperature of the distillation",
        "bic.val_fraction": "validation share of each class's exemplar budget (BiC 9:1: 0.1)",
        "bic.epochs": "epochs of the bias-correction stage",
        "bic.lr": "its learning rate",
    }
    optional_hyperparameters = {
        "bic.momentum": "its SGD momentum (0: plain steps)",
        "bic.beta_l2": "weight of beta^2 / 2 in its loss (BiC's code: 0.1)",
        "bic.batch_size": "its mini-batch (default: batch_size)",
        "bic.bias_layers": "newest (Eq. 5, default) | all (every phase's layer, FACIL)",
    }
    state_attrs = ClassIncremental.state_attrs + ("bias", "validation", "previous")
    stored_data_attrs = ("exemplars", "validation")

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        if hp.get("bic.bias_layers", "newest") not in BIAS_LAYERS:
            raise ValueError(f"bic.bias_layers must be one of {BIAS_LAYERS}")
        self.bias = BiasCorrection(0).to(self.device)
        self.validation = ExemplarSet()  # class -> held-out images, as the stream holds them
        # finished phases' layers (lo, hi, alpha, beta), applied with bias_layers "all"
        self.previous = torch.zeros(0, 4, device=self.device)

    @property
    def keep_all(self) -> bool:
        return self.hp.get("bic.bias_layers", "newest") == "all"

    def grow(self, phase):
        if phase > 1 and self.keep_all:  # the finished phase's layer joins the frozen ones
            hi = self.seen(phase - 1)
            row = torch.tensor([[hi - self.bias.n_new, hi, self.bias.alpha.item(), self.bias.beta.item()]],
                               device=self.device)
            self.previous = torch.cat([self.previous, row])
        super().grow(phase)
        self.old_model = Corrected(self.old_model, copy.deepcopy(self.bias), self.previous.clone()).eval()
        self.bias = BiasCorrection(len(self.phase_classes[phase])).to(self.device)

    # -- the balanced validation part ---------------------------------------------------
    def n_validation(self, phase: int) -> int:
        """Validation images per class: BiC's share of the per-class exemplar budget."""
        m = super().per_class(phase)
        return math.ceil(self.hp["bic.val_fraction"] * m - 1e-9)

    def per_class(self, phase: int) -> int:
        """Training exemplars per class: the budget less the validation part."""
        return super().per_class(phase) - self.n_validation(phase)

    def held_rows(self, t: int, data: TaskStream) -> torch.Tensor:
        """Rows of D_t held out for validation: n_validation(t) random images of each new
        class (seeded by the run and phase, so a resumed phase holds out the same)."""
        gen = torch.Generator().manual_seed(derive_seed(self.ctx.seed, f"bic:{t}"))
        y = data.y.cpu()
        n = self.n_validation(t)
        rows = []
        for c in self.phase_classes[t]:
            members = torch.nonzero(y == c).flatten()
            if n > len(members):
                raise ValueError(f"bic: class {c} has {len(members)} images, fewer than the "
                                 f"{n} its validation part needs")
            rows.append(members[torch.randperm(len(members), generator=gen)[:n]])
        return torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)

    def training_data(self, t: int, data: TaskStream) -> TaskStream:
        """D_t without its held-out rows."""
        keep = torch.ones(len(data.y), dtype=torch.bool)
        keep[self.held_rows(t, data)] = False
        if isinstance(data, FileStream):
            return FileStream(data.x.subset(torch.nonzero(keep).flatten()),
                              data.y[keep.to(data.y.device)], data.workers)
        keep = keep.to(data.y.device)
        return TaskStream(data.x[keep], data.y[keep])

    def begin_task(self, t, data=None):
        super().begin_task(t, data)
        if data is None:
            return
        rows = self.held_rows(t, data)
        for c in self.phase_classes[t]:
            mine = rows[data.y.cpu()[rows] == c]
            images = (data.x.decode(mine, data.workers).to(self.device) if isinstance(data, FileStream)
                      else data.x[mine.to(data.x.device)])
            self.validation[c] = images.clone()  # as the stream holds them: as_float reads them
        n = self.n_validation(t)
        self.validation.trim(n)  # a smaller budget keeps the first (fixed_total policy)

    def training_set(self, t, data):
        """D_t less its validation rows, and the training exemplars."""
        return super().training_set(t, self.training_data(t, data))

    def end_task(self, t, data=None):
        """Exemplars are chosen (and, in "w/ ours", optimised against D_t) without the
        validation images."""
        super().end_task(t, self.training_data(t, data))
        self.counters["bic_held_out_per_class"] = {str(c): len(v) for c, v in sorted(self.validation.items())}

    # -- stage 1 ---------------------------------------------------------------------------
    def corrected_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The network's logits with the finished phases' layers ("all"; the newest is
        applied by the caller where it belongs)."""
        out = self.model(x)
        return correct_ranges(out, self.previous) if self.keep_all else out

    def classification_loss(self, x, y):
        logits = self.corrected_logits(x)
        ce = F.cross_entropy(logits, y)
        if self.old_model is None:
            return ce
        old = self.old_logits(x)
        lam = old.shape[1] / logits.shape[1]
        return lam * soft_distillation(logits, old, self.hp["kd.tau"]) + (1 - lam) * ce

    # -- stage 2 ---------------------------------------------------------------------------
    def end_phase(self, t, data):
        if t == 0 or "bias_done" in self.end_state:
            return
        x, y = self.validation.stacked()
        x = as_float(x)
        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            logits = torch.cat([self.corrected_logits(x[lo:lo + 500]) for lo in range(0, len(x), 500)])
        self.model.train(was)
        self.fit_bias(logits, y, t)
        self.end_state["bias_done"] = True

    def fit_bias(self, logits: torch.Tensor, y: torch.Tensor, t: int) -> None:
        """Cross-entropy of the corrected logits (+ beta_l2 * beta^2 / 2), mini-batch SGD."""
        opt = torch.optim.SGD(self.bias.parameters(), lr=self.hp["bic.lr"],
                              momentum=self.hp.get("bic.momentum", 0.0))
        batch = self.hp.get("bic.batch_size", self.hp.get("batch_size", len(y)))
        gen = torch.Generator().manual_seed(derive_seed(self.ctx.seed, f"bic-stage2:{t}"))
        for _ in range(self.hp["bic.epochs"]):
            order = torch.randperm(len(y), generator=gen).to(y.device)
            for lo in range(0, len(y), batch):
                idx = order[lo:lo + batch]
                loss = F.cross_entropy(self.bias(logits[idx]), y[idx])
                loss = loss + self.hp.get("bic.beta_l2", 0.0) * self.bias.beta ** 2 / 2
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    def predict(self, x, tasks):
        return self.bias(self.corrected_logits(x)).argmax(1)
