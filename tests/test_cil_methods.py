"""Class-incremental methods of the Mnemonics protocol against hand computations: LUCIR's
loss terms and iCaRL's nearest-mean-of-exemplars prediction."""

import math

import torch
import torch.nn as nn

from clrepro.methods import METHODS
from clrepro.loop import make_context

from test_mnemonics import HP, bench

CPU = torch.device("cpu")


def test_lucir_loss_terms_by_hand():
    """L = CE(sigma cos) + lambda_base sqrt(#old/#new) mean(1 - cos(f, f_old))
    + mean over (old-class sample, top-K new class) of max(0, m - cos_gt + cos_new),
    recomputed in float64 from the network's features and head weights (Hou et al. 2019)."""
    torch.manual_seed(0)
    method = METHODS["lucir"](make_context(bench(), CPU, 0, 1), {**HP, "exemplars.kind": "herding"})
    method.restore_structure(1, "train")  # phase 1: 4 old classes (frozen) + 2 new
    model, old = method.model.eval(), method.old_model.eval()
    head = model.head
    with torch.no_grad():  # make the old network differ, as after a phase of training
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        head.sigma.fill_(4.0)
    b = bench()
    x = torch.cat([b.tasks[0].train_x[:5], b.tasks[1].train_x[:3]]).float() / 255
    y = torch.cat([b.tasks[0].train_y[:5], b.tasks[1].train_y[:3]])
    assert (y < 4).sum() == 5 and (y >= 4).sum() == 3

    with torch.no_grad():
        f = model.features(x).double()
        f_old = old.features(x).double()
        w = torch.cat([head.weight_old, head.weight_new]).double()
    cos = torch.tensor([[float(f[i] @ w[k] / (f[i].norm() * w[k].norm())) for k in range(6)]
                        for i in range(8)], dtype=torch.float64)
    logits = 4.0 * cos
    ce = sum(math.log(sum(math.exp(v) for v in logits[i].tolist())) - float(logits[i, y[i]])
             for i in range(8)) / 8
    lam = 5.0 * math.sqrt(4 / 2)
    less_forget = sum(1 - float(f[i] @ f_old[i] / (f[i].norm() * f_old[i].norm())) for i in range(8)) / 8
    pairs = []
    for i in range(8):
        if y[i] < 4:
            gt = float(cos[i, y[i]])
            for hard in sorted(cos[i, 4:].tolist(), reverse=True)[:2]:  # K = 2 of 2 new classes
                pairs.append(max(0.0, 0.5 - gt + hard))
    ranking = sum(pairs) / len(pairs)
    expected = ce + lam * less_forget + ranking
    got = method.classification_loss(x, y)
    assert abs(got.item() - expected) < 1e-4 * max(1.0, abs(expected))
    assert less_forget > 1e-4 and ranking > 0  # every term contributes


class Identity(nn.Module):
    """features(x) = x (2-d points), so the class means are hand-checkable."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.head = nn.Linear(2, n_classes)

    def features(self, x):
        return x

    def forward(self, x):
        return self.head(x)


def test_icarl_nearest_mean_of_exemplars_by_hand():
    """iCaRL predicts the class whose mean of L2-normalised exemplar features (normalised
    again) is nearest to the normalised feature (Rebuffi et al. Alg. 1)."""
    method = METHODS["icarl_cil"](make_context(bench(), CPU, 0, 1), {**HP, "exemplars.kind": "herding"})
    method.model = Identity(3)
    # class 0: unit exemplars (1, 0) and (1, 0.1)/sqrt(1.01) -> mean, normalised again
    # (without normalising first, the long exemplar would dominate: (5.5, 0.05))
    method.exemplars = {0: torch.tensor([[10.0, 0.0], [1.0, 0.1]]),
                        1: torch.tensor([[0.0, 1.0], [0.0, 3.0]]),
                        2: torch.tensor([[-1.0, -1.0]])}
    method.prepare_eval()
    r = math.sqrt(1.01)
    unit = torch.tensor([[1.0 + 1 / r, 0.1 / r]]) / math.hypot(1.0 + 1 / r, 0.1 / r)
    torch.testing.assert_close(method.class_means[0:1], unit)
    torch.testing.assert_close(method.class_means[1], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(method.class_means[2], torch.tensor([-1.0, -1.0]) / math.sqrt(2))
    # (100, 1) is far from every mean in plain distance, at angle ~0 to class 0;
    # (0.1, 0.3) is nearer to (1, 0) than to (0, 1) unnormalised, but points 72 deg up;
    # (-3, -2.5) is nearest to class 2's direction
    x = torch.tensor([[100.0, 1.0], [0.1, 0.3], [-3.0, -2.5], [0.7, 0.6]])
    assert method.predict(x, torch.zeros(4, dtype=torch.long)).tolist() == [0, 1, 2, 0]
    # the head's argmax would not give these: prediction does not go through the head
    with torch.no_grad():
        method.model.head.weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]))
        method.model.head.bias.zero_()
    assert method.predict(x, torch.zeros(4, dtype=torch.long)).tolist() == [0, 1, 2, 0]


def test_lucir_margin_ranking_masked_equals_selected():
    """The accelerator form (all rows, new rows masked: no host sync) equals the selection."""
    from clrepro.methods.lucir import margin_ranking_masked, margin_ranking_selected

    gen = torch.Generator().manual_seed(0)
    cos = torch.rand(9, 7, generator=gen, dtype=torch.float64) * 2 - 1
    y = torch.tensor([0, 5, 2, 6, 3, 1, 4, 6, 2])  # 4 old classes, 3 new
    old = y < 4
    for k in (1, 2, 3):
        torch.testing.assert_close(margin_ranking_masked(cos, y, 4, k, 0.5),
                                   margin_ranking_selected(cos[old], y[old], 4, k, 0.5))
    assert margin_ranking_masked(cos[~old], y[~old], 4, 2, 0.5) == 0
