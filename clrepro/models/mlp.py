"""Fully connected networks for the MNIST-family benchmarks."""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def xavier_uniform_zero_bias(module: nn.Module) -> None:
    """GEM's init (model/common.py): U(-a, a), a = sqrt(3) * sqrt(2 / (fan_in + fan_out)),
    i.e. Xavier-uniform with gain 1, and zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight, gain=1.0)
        nn.init.zeros_(module.bias)


class MLP(nn.Module):
    """input -> hidden[0] -> ... -> n_outputs with ReLU between layers (GEM §4.2: 784-100-100-10)."""

    takes_task = False

    def __init__(self, input_shape: tuple[int, int, int], n_outputs: int,
                 hidden: list[int] = (100, 100), init: str = "xavier"):
        super().__init__()
        sizes = [math.prod(input_shape), *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(nn.Flatten(), *layers)
        self.head = nn.Linear(sizes[-1], n_outputs)
        if init == "xavier":
            self.apply(xavier_uniform_zero_bias)
        elif init != "default":
            raise ValueError(f"unknown init '{init}' (xavier | default)")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def representations(self, x: torch.Tensor, layers: str = "default") -> dict[str, torch.Tensor]:
        """Every layer's output: the hidden layers after their ReLU, and the logits (the
        layers DRL's loss and the similarity study of DRL Fig. 1 read; `layers` is
        accepted for the pretrained backbones' choice and has one value here)."""
        out, h = {}, x
        for i, layer in enumerate(self.body):
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                out[f"hidden{len(out) + 1}"] = h
        out["logits"] = self.head(h)
        return out


class MultimodalMLP(nn.Module):
    """GEM's "multimodal" baseline: a task-specific input layer (784 -> h per task), then
    one shared h -> h hidden layer and a shared h -> n_outputs output (official code:
    PyTorch default init with all biases zeroed)."""

    takes_task = True

    def __init__(self, input_shape: tuple[int, int, int], n_outputs: int, n_tasks: int,
                 hidden: int = 100):
        super().__init__()
        n_in = math.prod(input_shape)
        self.inputs = nn.ModuleList(nn.Linear(n_in, hidden) for _ in range(n_tasks))
        self.shared = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, n_outputs)
        for layer in [*self.inputs, self.shared, self.head]:
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, tasks: torch.Tensor | int) -> torch.Tensor:
        """`tasks`: one task id for the whole batch, or a tensor of per-example ids."""
        x = x.flatten(1)
        if isinstance(tasks, int):
            h = self.inputs[tasks](x)
        else:
            h = torch.empty(len(x), self.shared.in_features, device=x.device, dtype=x.dtype)
            for t in torch.unique(tasks).tolist():
                rows = tasks == t
                h[rows] = self.inputs[t](x[rows])
        h = torch.relu(self.shared(torch.relu(h)))
        return self.head(h)


class SmallCNN(nn.Module):
    """The DRL quick stand-ins' network (spec §6): two 3x3 conv layers of 32 and 64 channels,
    each followed by ReLU and 2x2 max-pooling, one hidden layer of 128 units, the output."""

    takes_task = False

    def __init__(self, input_shape: tuple[int, int, int], n_outputs: int, hidden: int = 128):
        super().__init__()
        c, h, w = input_shape
        self.input_shape = tuple(input_shape)
        self.convs = nn.Sequential(nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(64 * (h // 4) * (w // 4), hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.convs(x.reshape(len(x), *self.input_shape)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def representations(self, x: torch.Tensor, layers: str = "default") -> dict[str, torch.Tensor]:
        """The hidden layer (after ReLU) and the logits."""
        h = self.features(x)
        return {"hidden": h, "logits": self.head(h)}
