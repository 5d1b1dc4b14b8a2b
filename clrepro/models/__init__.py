"""Networks used by the papers, built from a small JSON-able spec."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from clrepro.models.mlp import MLP, MultimodalMLP
from clrepro.models.resnet import ReducedResNet18

# "resnet18" is the same CIFAR-style network at the full width (nf = 64) BLD uses
MODELS = {"mlp": MLP, "multimodal_mlp": MultimodalMLP, "resnet18_reduced": ReducedResNet18,
          "resnet18": ReducedResNet18}


def build_model(spec: dict[str, Any], input_shape: tuple[int, int, int], n_outputs: int,
                n_tasks: int = 1, input_norm: tuple[list[float], list[float]] | None = None) -> nn.Module:
    """spec = {"name": <one of MODELS>, "normalize": bool (optional), **constructor arguments}.
    With normalize, the network's first layer standardises each input channel with the
    dataset's mean and std (`input_norm`), so that data and augmentation stay in [0, 1]."""
    spec = dict(spec)
    name = spec.pop("name")
    normalize = spec.pop("normalize", False)
    if name not in MODELS:
        raise KeyError(f"unknown model '{name}'; known: {', '.join(MODELS)}")
    if name == "multimodal_mlp":
        spec["n_tasks"] = n_tasks
    model = MODELS[name](input_shape=tuple(input_shape), n_outputs=n_outputs, **spec)
    if normalize:
        if input_norm is None:
            raise ValueError("model.normalize needs the data's per-channel mean and std")
        model = InputNormalized(model, *input_norm)
    return model


class InputNormalized(nn.Module):
    """(x - mean) / std per channel, then the wrapped network (its attributes pass through)."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.net, name)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(self.normalise(x))

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        return self.net(self.normalise(x), *args)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
