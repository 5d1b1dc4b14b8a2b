"""Networks used by the papers, built from a small JSON-able spec."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from clrepro.models.mlp import MLP, MultimodalMLP
from clrepro.models.resnet import ReducedResNet18

MODELS = {"mlp": MLP, "multimodal_mlp": MultimodalMLP, "resnet18_reduced": ReducedResNet18}


def build_model(spec: dict[str, Any], input_shape: tuple[int, int, int], n_outputs: int,
                n_tasks: int = 1) -> nn.Module:
    """spec = {"name": <one of MODELS>, **constructor arguments}."""
    spec = dict(spec)
    name = spec.pop("name")
    if name not in MODELS:
        raise KeyError(f"unknown model '{name}'; known: {', '.join(MODELS)}")
    if name == "multimodal_mlp":
        spec["n_tasks"] = n_tasks
    return MODELS[name](input_shape=tuple(input_shape), n_outputs=n_outputs, **spec)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
