"""Bayesian Gradient Descent (Zeno et al. 2018), task-free (GMED spec §4.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from clrepro.methods.base import Method, register


@register
class BGD(Method):
    """BGD keeps a factorised Gaussian over the weights, N(mu, sigma^2), and replaces SGD by
    the closed-form online variational update (Zeno et al., Eqs. 9-10), with K Monte-Carlo
    samples theta_k = mu + eps_k * sigma per mini-batch:

        mu    <- mu - eta * sigma^2 * E[g]
        sigma <- sigma * sqrt(1 + (sigma * E[g eps] / 2)^2) - sigma^2 * E[g eps] / 2

    where g = dL/dtheta at theta_k. Predictions use the mean mu (held in the model's
    parameters). hp: bgd.eta (1), bgd.std_init (0.02), bgd.mc_samples (10) — suite defaults
    (spec §4.5); `lr` is unused."""

    name = "bgd"
    hyperparameters = {
        "bgd.eta": "learning-rate scale of the mean update",
        "bgd.std_init": "initial posterior std",
        "bgd.mc_samples": "Monte-Carlo weight samples per step",
    }
    state_attrs = ("sigma",)

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        self.names = [n for n, _ in self.model.named_parameters()]
        self.sigma = [torch.full_like(p, hp["bgd.std_init"]) for p in self.model.parameters()]

    def observe(self, x, y, tasks):
        mu = [p.detach() for p in self.model.parameters()]
        k = self.hp["bgd.mc_samples"]
        mean_g = [torch.zeros_like(m) for m in mu]
        mean_ge = [torch.zeros_like(m) for m in mu]
        for _ in range(k):
            eps = [torch.randn(m.shape, generator=self.ctx.generator).to(m.device) for m in mu]
            theta = {n: (m + e * s).requires_grad_(True)
                     for n, m, e, s in zip(self.names, mu, eps, self.sigma)}
            out = self.mask_logits(functional_call(self.model, theta, (x,)), tasks)
            grads = torch.autograd.grad(F.cross_entropy(out, y), list(theta.values()))
            for mg, mge, g, e in zip(mean_g, mean_ge, grads, eps):
                mg.add_(g, alpha=1.0 / k)
                mge.add_(g * e, alpha=1.0 / k)
        eta = self.hp["bgd.eta"]
        with torch.no_grad():
            for p, s, g, ge in zip(self.model.parameters(), self.sigma, mean_g, mean_ge):
                p.sub_(eta * s * s * g)
                half = 0.5 * s * ge
                s.copy_(s * torch.sqrt(1.0 + half * half) - s * half)
