"""Optimisers and learning-rate schedules a method declares through its hyperparameters.

hp["optimizer"] (optional; default plain SGD, as GEM, GMED and BLD's algorithms write it):

    {"name": "sgd", "momentum": 0.9, "weight_decay": 5e-4}
    {"name": "adam", "betas": [0.9, 0.999], "weight_decay": 0.0}

hp["lr_schedule"] (optional; read by the phase trainer once per epoch):

    {"milestones": [80, 120], "gamma": 0.1}      # multiply lr by gamma at these epochs
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

OPTIMIZERS = {"sgd": ("momentum", "weight_decay", "nesterov"), "adam": ("betas", "weight_decay")}


def build_optimizer(params: Iterable[torch.Tensor], lr: float,
                    spec: dict[str, Any] | None = None) -> torch.optim.Optimizer:
    spec = dict(spec or {"name": "sgd"})
    name = spec.pop("name", "sgd")
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer '{name}' is not one of {', '.join(OPTIMIZERS)}")
    unknown = set(spec) - set(OPTIMIZERS[name])
    if unknown:
        raise ValueError(f"optimizer {name}: unknown setting(s) {', '.join(sorted(unknown))}; "
                         f"valid: {', '.join(OPTIMIZERS[name])}")
    if name == "adam":
        if "betas" in spec:
            spec["betas"] = tuple(spec["betas"])
        return torch.optim.Adam(params, lr=lr, **spec)
    return torch.optim.SGD(params, lr=lr, **spec)


def build_schedule(optimizer: torch.optim.Optimizer, spec: dict[str, Any] | None):
    """A per-epoch schedule (None: constant lr)."""
    if not spec:
        return None
    if set(spec) - {"milestones", "gamma"}:
        raise ValueError(f"lr_schedule takes milestones and gamma, got {sorted(spec)}")
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(spec["milestones"]),
                                                gamma=spec.get("gamma", 0.1))
