"""Networks used by the papers, built from a small JSON-able spec."""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn

from clrepro.models.lucir import resnet18_lucir, resnet32_lucir
from clrepro.models.mlp import MLP, MultimodalMLP, SmallCNN
from clrepro.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, PretrainedBackbone
from clrepro.models.resnet import ReducedResNet18

# "resnet18" is the same CIFAR-style network at the full width (nf = 64) BLD uses
MODELS = {"mlp": MLP, "multimodal_mlp": MultimodalMLP, "resnet18_reduced": ReducedResNet18,
          "resnet18": ReducedResNet18, "resnet32_lucir": resnet32_lucir,
          "resnet18_lucir": resnet18_lucir, "small_cnn": SmallCNN}


def build_model(spec: dict[str, Any], input_shape: tuple[int, int, int], n_outputs: int,
                n_tasks: int = 1, input_norm: tuple[list[float], list[float]] | None = None,
                weights: Callable[[str], dict[str, torch.Tensor]] | None = None) -> nn.Module:
    """spec = {"name": <one of MODELS>, "normalize": bool (optional), **constructor arguments}.
    With normalize, the network's first layer standardises each input channel with the
    dataset's mean and std (`input_norm`), so that data and augmentation stay in [0, 1].

    {"name": "pretrained", "backbone": "resnet50" | "resnest50d"}: an ImageNet-pretrained
    trunk with a new head; `weights(backbone)` returns its verified state dict (the job
    resolves the files from the config's data.weights), and the input is standardised with
    ImageNet's mean and std, the statistics the weights were trained with."""
    spec = dict(spec)
    name = spec.pop("name")
    normalize = spec.pop("normalize", False)
    if name == "pretrained":
        if weights is None:
            raise ValueError("a pretrained model needs its weights (run it through a job, which "
                             "resolves data.weights)")
        net = PretrainedBackbone(spec["backbone"], n_outputs, weights(spec["backbone"]),
                                 tuple(input_shape))
        return InputNormalized(net, list(IMAGENET_MEAN), list(IMAGENET_STD))
    if name not in MODELS:
        raise KeyError(f"unknown model '{name}'; known: {', '.join([*MODELS, 'pretrained'])}")
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

    def __setattr__(self, name: str, value) -> None:
        """Attributes of the wrapped network (a grown head, say) are set on it; the wrapper's
        own attributes -- `training` above all, which `train()`/`eval()` set on every module
        -- stay on the wrapper (forwarded, its flag would stay True after `eval()`, and code
        that saves and restores `model.training` would switch the network back to training)."""
        net = self.__dict__.get("_modules", {}).get("net")
        if net is not None and name not in ("net", "mean", "std") and name not in self.__dict__ \
                and hasattr(net, name):
            setattr(net, name, value)
        else:
            super().__setattr__(name, value)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(self.normalise(x))

    def representations(self, x: torch.Tensor, **kwargs) -> dict[str, torch.Tensor]:
        return self.net.representations(self.normalise(x), **kwargs)

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        return self.net(self.normalise(x), *args)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
