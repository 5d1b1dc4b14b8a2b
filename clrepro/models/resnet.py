"""Reduced ResNet-18 (GEM §4.2; also GMED's CIFAR/mini-ImageNet network)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ReducedResNet18(nn.Module):
    """ResNet-18 with base width nf (20 = "three times fewer feature maps"): 3x3 stem,
    four stages of two BasicBlocks (strides 1, 2, 2, 2), 4x4 average pooling, one linear
    layer. With nf=20, 3x32x32 input and 100 outputs it has 1,109,240 parameters (GEM C11)."""

    takes_task = False

    def __init__(self, input_shape: tuple[int, int, int], n_outputs: int, nf: int = 20):
        super().__init__()
        channels, height, width = input_shape
        self.input_shape = input_shape
        self.conv1 = _conv3x3(channels, nf)
        self.bn1 = nn.BatchNorm2d(nf)
        stages, cin = [], nf
        for mult, stride in [(1, 1), (2, 2), (4, 2), (8, 2)]:
            stages += [BasicBlock(cin, nf * mult, stride), BasicBlock(nf * mult, nf * mult, 1)]
            cin = nf * mult
        self.stages = nn.Sequential(*stages)
        side = lambda s: (((s + 1) // 2 + 1) // 2 + 1) // 2  # three stride-2 convs, padding 1
        # 4x4 average pooling as in GEM's code; inputs below 25 pixels end on a smaller map,
        # which is pooled whole
        self.pool = min(4, side(height), side(width))
        self.n_features = cin * (side(height) // self.pool) * (side(width) // self.pool)
        self.head = nn.Linear(self.n_features, n_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(len(x), *self.input_shape)
        out = self.stages(F.relu(self.bn1(self.conv1(x))))
        return F.avg_pool2d(out, self.pool).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
