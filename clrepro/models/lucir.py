"""LUCIR-style networks and heads for Mnemonics (Liu et al., CVPR 2020, spec §4.2, D11).

Backbones and cosine head follow LUCIR (Hou et al., CVPR 2019), whose code the Mnemonics
code reuses: `models/modified_resnet_cifar.py`, `models/modified_resnet.py` and
`models/modified_linear.py` of yaoyao-liu/mnemonics-training (commit 987b46db) and of
hshustc/CVPR19_Incremental_Learning. Weight transfer follows `utils/conv2d_mtl.py` of the
Mnemonics code (the "SS" operation of Meta-Transfer Learning, Sun et al., CVPR 2019).
Bias correction follows BiC (Wu et al., CVPR 2019, Eq. 4).

Written from those descriptions; no code is copied from the repositories.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

HeadKind = Literal["cosine", "linear"]


# --------------------------------------------------------------------------- backbones

class LucirBasicBlock(nn.Module):
    """ResNet BasicBlock with LUCIR's `last` flag (official code: `BasicBlock` in
    modified_resnet_cifar.py / modified_resnet.py): with last=True the ReLU after the
    residual sum is dropped, so the penultimate features can be negative and the cosine
    head sees the whole sphere, not just the positive orthant (Hou et al. 2019, §3.2)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, last: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.last = last
        # LUCIR projects the shortcut with a 1x1 conv + BN whenever the shape changes
        # (He et al.'s option B), not with the zero-padding shortcut of the original
        # CIFAR ResNet-32
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        out = out + (x if self.downsample is None else self.downsample(x))
        return out if self.last else F.relu(out)


class CosineLinear(nn.Module):
    """LUCIR cosine-normalised classifier (Hou et al. 2019, Eq. 3; official code:
    `CosineLinear` in models/modified_linear.py):

        logits = sigma * <w_c / |w_c|, f / |f|>

    with a learnable scalar sigma initialised to 1 (both the LUCIR and the Mnemonics code
    fill it with 1) and weights drawn from U(-1/sqrt(d), 1/sqrt(d)) as in that code.
    `sigma=False` gives plain cosine similarities."""

    def __init__(self, in_features: int, out_features: int, sigma: bool = True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        bound = in_features ** -0.5
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.sigma = nn.Parameter(torch.ones(())) if sigma else None

    def cosine(self, features: torch.Tensor) -> torch.Tensor:
        """Cosine similarities without sigma (LUCIR's less-forget and margin losses use
        these)."""
        return F.linear(F.normalize(features, dim=1), F.normalize(self.weight, dim=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.cosine(features)
        return out if self.sigma is None else self.sigma * out

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, sigma={self.sigma is not None}"


def _uniform_rows(n: int, d: int, like: torch.Tensor) -> torch.Tensor:
    bound = d ** -0.5
    return torch.empty(n, d, dtype=like.dtype, device=like.device).uniform_(-bound, bound)


class SplitCosineLinear(nn.Module):
    """LUCIR's growing cosine head (official code: `SplitCosineLinear` in
    models/modified_linear.py, and how trainer/mnemonics.py / class_incremental_cosine_
    cifar100.py rebuild it each phase). It holds the old-class weights `weight_old` and
    the current phase's new-class weights `weight_new` under one shared sigma; the
    logits are sigma * cos for [old classes..., new classes...].

    The old block is frozen during a phase (requires_grad=False), which is what the
    official code achieves by giving fc1 a learning rate and weight decay of 0.
    `add_classes(n)` starts the next phase: the current new block joins the old one and
    `n` freshly initialised rows become the new block (to be imprinted with
    `imprint_new`)."""

    def __init__(self, in_features: int, n_old: int, n_new: int, sigma: bool = True):
        super().__init__()
        self.in_features = in_features
        bound = in_features ** -0.5
        self.weight_old = nn.Parameter(torch.empty(n_old, in_features).uniform_(-bound, bound),
                                       requires_grad=False)
        self.weight_new = nn.Parameter(torch.empty(n_new, in_features).uniform_(-bound, bound))
        self.sigma = nn.Parameter(torch.ones(())) if sigma else None

    @classmethod
    def from_cosine(cls, head: CosineLinear, n_new: int) -> SplitCosineLinear:
        """Phase 0 -> 1 (official trainer): all of `head`'s classes become the old block and
        its sigma is carried over."""
        split = cls(head.in_features, head.out_features, n_new, sigma=head.sigma is not None)
        split.to(head.weight)
        with torch.no_grad():
            split.weight_old.copy_(head.weight)
            if head.sigma is not None:
                split.sigma.copy_(head.sigma)
        return split

    @property
    def n_old(self) -> int:
        return self.weight_old.shape[0]

    @property
    def n_new(self) -> int:
        return self.weight_new.shape[0]

    @property
    def out_features(self) -> int:
        return self.n_old + self.n_new

    @property
    def weight(self) -> torch.Tensor:
        return torch.cat([self.weight_old, self.weight_new])

    def add_classes(self, n_new: int) -> None:
        """Next phase: old <- [old; new] (frozen), new <- n_new fresh rows. Any optimiser
        built on the previous parameters must be rebuilt."""
        old = torch.cat([self.weight_old, self.weight_new]).detach().clone()
        self.weight_old = nn.Parameter(old, requires_grad=False)
        self.weight_new = nn.Parameter(_uniform_rows(n_new, self.in_features, old))

    def imprint_new(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Set the new block by weight imprinting (see `imprint_weights`); `labels` are
        output indices, the new classes being n_old .. n_old + n_new - 1. Pass features
        of the new classes' training images computed in eval mode without augmentation,
        as the official code does."""
        classes = range(self.n_old, self.out_features)
        old = self.weight_old if self.n_old else None
        with torch.no_grad():
            self.weight_new.copy_(imprint_weights(features, labels, classes, old))

    def cosine(self, features: torch.Tensor) -> torch.Tensor:
        """Cosine similarities without sigma, old classes first."""
        f = F.normalize(features, dim=1)
        return torch.cat([F.linear(f, F.normalize(self.weight_old, dim=1)),
                          F.linear(f, F.normalize(self.weight_new, dim=1))], dim=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.cosine(features)
        return out if self.sigma is None else self.sigma * out

    def extra_repr(self) -> str:
        return (f"{self.in_features}, old={self.n_old}, new={self.n_new}, "
                f"sigma={self.sigma is not None}")


def imprint_weights(features: torch.Tensor, labels: torch.Tensor, classes: range | list[int],
                    old_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Weight imprinting for new classes (Hou et al. 2019, §3; official code: the
    "imprint weights" block of class_incremental_cosine_cifar100.py in LUCIR and of
    trainer/mnemonics.py in Mnemonics). For each class c in `classes`:

        w_c = normalize(mean_i normalize(f_i)) * mean_j |w_old_j|

    i.e. the features are L2-normalised one by one, averaged over the class's examples,
    the mean is L2-normalised again, and the result is rescaled to the average L2 norm of
    the old-class weight rows (1 when `old_weight` is None). The rescaling leaves the
    cosine logits unchanged; it keeps the new rows on the same scale as the old ones so
    that their effective learning rate and weight decay match. Returns
    (len(classes), d)."""
    scale = 1.0 if old_weight is None else old_weight.norm(dim=1).mean()
    unit = F.normalize(features, dim=1)
    rows = []
    for c in classes:
        members = unit[labels == c]
        if len(members) == 0:
            raise ValueError(f"no features for class {c} to imprint")
        rows.append(F.normalize(members.mean(0), dim=0))
    return torch.stack(rows) * scale


def _make_head(kind: HeadKind, n_features: int, n_outputs: int) -> nn.Module:
    if kind == "cosine":
        return CosineLinear(n_features, n_outputs)
    if kind == "linear":
        return nn.Linear(n_features, n_outputs)
    raise ValueError(f"unknown head '{kind}' (cosine | linear)")


class LucirResNet(nn.Module):
    """ResNet feature extractor + head, as in LUCIR's modified ResNets: the last block of
    the network has no final ReLU, global average pooling gives `n_features` features,
    and `head` maps them to logits (LUCIR: `CosineLinear`; the iCaRL/BiC/LwF baselines:
    `nn.Linear`). Build it with `resnet32_lucir` or `resnet18_lucir`. LUCIR's phase
    1 swaps the head: `model.head = SplitCosineLinear.from_cosine(model.head, n_new)`.

    Global average pooling equals the official fixed AvgPool2d(8) on 32x32 CIFAR input
    and AvgPool2d(7) on 224x224 ImageNet input, and also works on other sizes (28x28)."""

    takes_task = False

    def __init__(self, input_shape: tuple[int, int, int], stem: nn.Module, stem_channels: int,
                 widths: list[int], strides: list[int], blocks_per_stage: int,
                 n_outputs: int, head: HeadKind):
        super().__init__()
        if blocks_per_stage < 1:
            raise ValueError("blocks_per_stage must be >= 1")
        self.input_shape = tuple(input_shape)
        self.stem = stem
        blocks: list[nn.Module] = []
        cin = stem_channels
        for width, stride in zip(widths, strides):
            for b in range(blocks_per_stage):
                blocks.append(LucirBasicBlock(cin, width, stride if b == 0 else 1))
                cin = width
        blocks[-1].last = True
        self.blocks = nn.Sequential(*blocks)
        self.n_features = cin
        self.head = _make_head(head, cin, n_outputs)
        # official init: Kaiming-normal (fan_out, ReLU) convs, BN weight 1 and bias 0
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), *self.input_shape)
        return F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def resnet32_lucir(input_shape: tuple[int, int, int], n_outputs: int, blocks_per_stage: int = 5,
                   head: HeadKind = "cosine") -> LucirResNet:
    """LUCIR's CIFAR ResNet-32 (official code: `resnet32` in modified_resnet_cifar.py;
    Mnemonics paper §5 "32-layer ResNet"): 3x3 stem with 16 channels, three stages of
    `blocks_per_stage` BasicBlocks (16/32/64 channels, strides 1/2/2), no ReLU after the
    last block, global average pooling -> 64 features. blocks_per_stage=1 is the quick
    Fashion-MNIST stand-in (spec §6). Unlike the official `_make_layer`, which always
    appends a separate `last` block to stage 3 (so n=1 would give 2 blocks there), every
    stage here has exactly `blocks_per_stage` blocks and the final one is the `last`."""
    channels = input_shape[0]
    stem = nn.Sequential(nn.Conv2d(channels, 16, 3, 1, padding=1, bias=False),
                         nn.BatchNorm2d(16), nn.ReLU())
    return LucirResNet(input_shape, stem, 16, [16, 32, 64], [1, 2, 2], blocks_per_stage,
                       n_outputs, head)


def resnet18_lucir(input_shape: tuple[int, int, int] = (3, 224, 224), n_outputs: int = 1000,
                   head: HeadKind = "cosine") -> LucirResNet:
    """LUCIR's ImageNet ResNet-18 (official code: `resnet18` in modified_resnet.py of both
    repositories, whose layer4 ends with a `last=True` block, commented "remove ReLU in the
    last layer"): 7x7/2 stem with 64 channels, 3x3/2 max-pool, four stages of two
    BasicBlocks (64/128/256/512, strides 1/2/2/2), no ReLU after the last block, global
    average pooling -> 512 features."""
    channels = input_shape[0]
    stem = nn.Sequential(nn.Conv2d(channels, 64, 7, 2, padding=3, bias=False),
                         nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1))
    return LucirResNet(input_shape, stem, 64, [64, 128, 256, 512], [1, 2, 2, 2], 2,
                       n_outputs, head)


# --------------------------------------------------------------------------- BiC

class BiasCorrection(nn.Module):
    """BiC bias-correction layer (Wu et al., CVPR 2019, Eq. 4): the logits of the
    `n_new` newest classes (the last columns) become alpha * z + beta, the others pass
    unchanged. alpha = 1 and beta = 0 at init, so the layer starts as the identity."""

    def __init__(self, n_new: int):
        super().__init__()
        self.n_new = n_new
        self.alpha = nn.Parameter(torch.ones(()))
        self.beta = nn.Parameter(torch.zeros(()))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if not 0 <= self.n_new <= logits.shape[1]:
            raise ValueError(f"n_new={self.n_new} but only {logits.shape[1]} logits")
        split = logits.shape[1] - self.n_new
        # concatenate instead of writing in place, so autograd keeps the original logits
        return torch.cat([logits[:, :split], self.alpha * logits[:, split:] + self.beta], dim=1)


# --------------------------------------------------------------------------- weight transfer

ScaleShape = Literal["kernel", "filter"]
ShiftMode = Literal["code", "all", "none"]


class TransferConv2d(nn.Module):
    """A convolution with frozen weights W (and bias b, if any) and learnable scaling and
    shifting (Mnemonics code: `Conv2dMtl` in utils/conv2d_mtl.py; Meta-Transfer Learning's
    "SS" operation, Sun et al. 2019, Eq. 3):

        y = conv(x, W * scale) + (b + shift)

    - `scale` multiplies the weight, not the output. In the official code it has shape
      (C_out, C_in/groups, 1, 1): one scalar per 2-D kernel slice ("kernel", default);
      "filter" gives one scalar per output filter, (C_out, 1, 1, 1). Initialised to 1.
    - `shift` is added to the conv's output bias, shape (C_out,), initialised to 0. The
      official code creates it only for convolutions that have a bias ("code", default);
      LUCIR's ResNets use bias-free convs, so there the official network has no shift.
      "all" adds one to every conv, "none" to none. A per-channel shift right before a
      BatchNorm in training mode is cancelled by the batch mean, so it gets no gradient.

    W and b are buffers, so they are never handed to an optimiser and stay frozen even if
    someone calls `requires_grad_(True)` on the model. With scale = 1 and shift = 0 the
    output equals the original conv's bit for bit."""

    def __init__(self, conv: nn.Conv2d, scale: ScaleShape = "kernel", shift: ShiftMode = "code"):
        super().__init__()
        if conv.padding_mode != "zeros":
            raise ValueError(f"padding_mode '{conv.padding_mode}' is not supported")
        if scale not in ("kernel", "filter"):
            raise ValueError(f"unknown scale '{scale}' (kernel | filter)")
        if shift not in ("code", "all", "none"):
            raise ValueError(f"unknown shift '{shift}' (code | all | none)")
        self.stride, self.padding = conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        w = conv.weight.detach().clone()
        self.register_buffer("weight", w)
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        shape = (w.shape[0], w.shape[1], 1, 1) if scale == "kernel" else (w.shape[0], 1, 1, 1)
        self.scale = nn.Parameter(torch.ones(shape, dtype=w.dtype, device=w.device))
        has_shift = shift == "all" or (shift == "code" and conv.bias is not None)
        self.shift = (nn.Parameter(torch.zeros(w.shape[0], dtype=w.dtype, device=w.device))
                      if has_shift else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias
        if self.shift is not None:
            bias = self.shift if bias is None else bias + self.shift
        return F.conv2d(x, self.weight * self.scale, bias, self.stride, self.padding,
                        self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, "
                f"kernel_size={tuple(self.weight.shape[2:])}, stride={self.stride}, "
                f"scale={tuple(self.scale.shape)}, shift={self.shift is not None}")


def weight_transfer(model: nn.Module, scale: ScaleShape = "kernel",
                    shift: ShiftMode = "code") -> nn.Module:
    """Mnemonics weight transfer (paper §5 "weight transfer operations", defined in the
    supplementary; spec D11 uses the official code's definition): replace every
    `nn.Conv2d` of `model`, in place, by a `TransferConv2d` that freezes its current
    weights and learns a multiplicative scale (init 1) and, per `shift`, an additive
    shift (init 0). BatchNorm layers, the head and all other parameters are untouched and
    stay trainable. At initialisation the model computes exactly what it computed before.

    The official trainer (trainer/mnemonics.py) does this once, when phase 1 starts, by
    loading the phase-0 state dict into a `resnetmtl32`; the scales keep training through
    the later phases and the frozen weights stay at their phase-0 values, so call this
    once. Calling it on a model without any `nn.Conv2d` (e.g. twice) raises. Returns
    `model`; rebuild any optimiser afterwards."""
    n = _replace_convs(model, scale, shift)
    if n == 0:
        raise ValueError("weight_transfer: the model has no nn.Conv2d (already transferred?)")
    return model


def _replace_convs(module: nn.Module, scale: ScaleShape, shift: ShiftMode) -> int:
    n = 0
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            setattr(module, name, TransferConv2d(child, scale, shift))
            n += 1
        else:
            n += _replace_convs(child, scale, shift)
    return n


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Name -> parameter for every parameter with requires_grad (after `weight_transfer`:
    the scales/shifts, BatchNorm affine parameters and the head; a `SplitCosineLinear`'s
    frozen old block is left out)."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}
