"""LUCIR (Hou et al., CVPR 2019) as Mnemonics builds on it (Liu et al. 2020, Tables 1-2).

A cosine-normalised head (sigma * cos, learnable sigma); when a phase begins the old-class
weights are frozen and the new classes' weights are imprinted from the normalised mean
feature of their training images. The loss on a batch (official LUCIR code):

  L = CE(sigma cos) + lambda * (1 - cos(f(x), f_old(x)))                 less-forget
        + margin_ranking(cos_gt, top-K new-class cos, margin m)          old-class samples

with lambda = lambda_base * sqrt(#old / #new classes) (spec §4.3: lambda_base 5, K 2, m 0.5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clrepro.methods.base import register
from clrepro.methods.cil import ClassIncremental
from clrepro.models.lucir import CosineLinear, SplitCosineLinear


@register
class LUCIR(ClassIncremental):
    name = "lucir"
    head_kind = "cosine"
    hyperparameters = {
        "lucir.lambda_base": "base weight of the less-forget constraint",
        "lucir.k": "hard negatives of the margin ranking loss",
        "lucir.margin": "its margin",
    }

    def grow_head(self, n_new: int) -> None:
        head = self.model.head
        if isinstance(head, CosineLinear):
            self.model.head = SplitCosineLinear.from_cosine(head, n_new)
        else:
            head.add_classes(n_new)

    def init_new_classes(self, t, data):
        """Weight imprinting (Hou et al. §3): features of the new classes' training images,
        network in eval mode, no augmentation."""
        feats = torch.cat([self.features(x) for x, _ in data.batches(500)])
        self.model.head.imprint_new(feats, data.y)

    def classification_loss(self, x, y):
        feats = self.model.features(x)
        head = self.model.head
        loss = F.cross_entropy(head(feats), y)
        if self.old_model is None:
            return loss
        with torch.no_grad():
            old_feats = self.old_model.features(x)
        n_old, n_new = head.n_old, head.n_new
        lam = self.hp["lucir.lambda_base"] * (n_old / n_new) ** 0.5
        loss = loss + lam * (1 - F.cosine_similarity(feats, old_feats.detach(), dim=1)).mean()
        return loss + self.margin_ranking(head, feats, y, n_old, n_new)

    def margin_ranking(self, head, feats, y, n_old: int, n_new: int) -> torch.Tensor:
        """On the CPU the old-class rows are selected (a host check costs nothing there); on
        an accelerator every row is scored and the new rows masked out, so that no step
        waits for the host."""
        k, margin = min(self.hp["lucir.k"], n_new), self.hp["lucir.margin"]
        if feats.device.type == "cpu":
            old_rows = y < n_old
            if not old_rows.any():
                return torch.zeros((), device=feats.device)
            return margin_ranking_selected(head.cosine(feats[old_rows]), y[old_rows], n_old, k, margin)
        return margin_ranking_masked(head.cosine(feats), y, n_old, k, margin)


def margin_ranking_selected(cos: torch.Tensor, y: torch.Tensor, n_old: int, k: int,
                            margin: float) -> torch.Tensor:
    """mean over (old-class sample, top-k new class) of max(0, m - cos_gt + cos_new); `cos`
    and `y` hold the old-class samples only."""
    gt = cos.gather(1, y[:, None])  # [b, 1]
    hard = cos[:, n_old:].topk(k, dim=1).values  # [b, K]
    return F.margin_ranking_loss(gt.expand_as(hard).reshape(-1), hard.reshape(-1),
                                 torch.ones(hard.numel(), device=cos.device), margin=margin)


def margin_ranking_masked(cos: torch.Tensor, y: torch.Tensor, n_old: int, k: int,
                          margin: float) -> torch.Tensor:
    """The same over every row of the batch, new-class rows masked out (0 without old rows)."""
    old_rows = y < n_old
    gt = cos.gather(1, y.clamp(max=n_old - 1)[:, None])
    hard = cos[:, n_old:].topk(k, dim=1).values
    pairs = (margin - gt + hard).clamp(min=0) * old_rows[:, None]
    return pairs.sum() / (old_rows.sum() * k).clamp(min=1)
