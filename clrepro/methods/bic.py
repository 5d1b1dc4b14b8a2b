"""BiC (Wu et al., CVPR 2019) under the Mnemonics protocol (Liu et al. 2020, Table 1).

Stage 1 trains the network on D_i and the exemplars, minus a held-out part (`bic.val_fraction`
of each class: spec §4.3 suite default 10 %), with
    L = lambda * L_d + (1 - lambda) * L_c,  lambda = #old / #seen classes,
L_d the soft-target distillation (temperature tau) of the previous network's -- bias
corrected -- old-class outputs. Stage 2 freezes the network and fits the bias-correction
layer alpha * z + beta on the newest classes' logits (clrepro.models.lucir.BiasCorrection)
by cross-entropy on the held-out images; predictions use the corrected logits.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from clrepro.data.benchmarks import derive_seed
from clrepro.methods.base import register
from clrepro.methods.cil import ClassIncremental, soft_distillation
from clrepro.models.lucir import BiasCorrection
from clrepro.trainset import TrainingSet


class Corrected(nn.Module):
    """A network followed by its bias correction (the previous model BiC distils from)."""

    def __init__(self, net: nn.Module, bias: BiasCorrection):
        super().__init__()
        self.net, self.bias = net, bias

    def forward(self, x):
        return self.bias(self.net(x))


@register
class BiC(ClassIncremental):
    name = "bic"
    hyperparameters = {
        "kd.tau": "temperature of the distillation",
        "bic.val_fraction": "held-out part of each class for the bias correction",
        "bic.epochs": "epochs of the bias-correction stage",
        "bic.lr": "its learning rate",
    }
    state_attrs = ClassIncremental.state_attrs + ("bias", "held_out")

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        self.bias = BiasCorrection(0).to(self.device)
        self.held_out: dict[str, torch.Tensor] = {}

    def grow(self, phase):
        super().grow(phase)
        self.old_model = Corrected(self.old_model, copy.deepcopy(self.bias)).eval()
        self.bias = BiasCorrection(len(self.phase_classes[phase])).to(self.device)

    def training_set(self, t, data):
        """D_i and the exemplars without each class's held-out images (kept for stage 2: the
        in-memory ones as images, a file-backed task's as its rows)."""
        full = super().training_set(t, data)
        y = full.labels()
        gen = torch.Generator().manual_seed(derive_seed(self.ctx.seed, f"bic:{t}"))
        keep = torch.ones(len(y), dtype=torch.bool)
        for c in y.unique().tolist():
            rows = torch.nonzero(y.cpu() == c).flatten()
            n = int(round(self.hp["bic.val_fraction"] * len(rows)))
            keep[rows[torch.randperm(len(rows), generator=gen)[:n]]] = False
        keep = keep.to(y.device)
        held = full.subset(~keep)
        self.held_out = {"x": held.x, "y": held.y,
                         "rows": torch.nonzero(~keep[:full.n_files]).flatten().cpu()}
        return full.subset(keep)

    def classification_loss(self, x, y):
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        if self.old_model is None:
            return ce
        old = self.old_logits(x)
        lam = old.shape[1] / logits.shape[1]
        return lam * soft_distillation(logits, old, self.hp["kd.tau"]) + (1 - lam) * ce

    def end_phase(self, t, data):
        if t == 0 or "bias_done" in self.end_state or not self.held_out:
            return
        rows = self.held_out.get("rows")
        files = data.x.subset(rows) if rows is not None and len(rows) else None
        held = TrainingSet(self.held_out["x"], self.held_out["y"], files)
        if not len(held):
            return
        y = held.labels()
        opt = torch.optim.SGD(self.bias.parameters(), lr=self.hp["bic.lr"])
        self.model.eval()
        with torch.no_grad():
            logits = torch.cat([self.model(x) for x in held.eval_batches(256, self.ctx.workers)])
        for _ in range(self.hp["bic.epochs"]):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(self.bias(logits), y).backward()
            opt.step()
        self.model.train()
        self.end_state["bias_done"] = True

    def predict(self, x, tasks):
        return self.bias(self.model(x)).argmax(1)
