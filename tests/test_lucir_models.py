"""LUCIR building blocks for Mnemonics (clrepro/models/lucir.py): backbones, cosine head,
imprinting, BiC layer and weight transfer, checked against hand computations."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn

from clrepro.models.lucir import (BiasCorrection, CosineLinear, LucirBasicBlock, SplitCosineLinear,
                                  TransferConv2d, imprint_weights, resnet18_lucir, resnet32_lucir,
                                  trainable_parameters, weight_transfer)


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _resnet32_backbone_params(n: int, in_channels: int = 3) -> int:
    """By hand: 3x3 convs without bias, BN = 2 per channel, 1x1 projection + BN where
    the shape changes (stages 2 and 3)."""
    def conv(cin: int, cout: int, k: int = 3) -> int:
        return k * k * cin * cout

    total = conv(in_channels, 16) + 2 * 16
    for cin, c in [(16, 16), (16, 32), (32, 64)]:
        total += conv(cin, c) + conv(c, c) + 4 * c                       # first block
        if cin != c:
            total += conv(cin, c, 1) + 2 * c                             # projection
        total += (n - 1) * (2 * conv(c, c) + 4 * c)                     # other blocks
    return total


# --------------------------------------------------------------------------- backbones

def test_resnet32_shapes_blocks_and_parameter_count():
    torch.manual_seed(0)
    model = resnet32_lucir((3, 32, 32), n_outputs=100)
    blocks = [m for m in model.modules() if isinstance(m, LucirBasicBlock)]
    assert len(blocks) == 15
    assert [b.last for b in blocks] == [False] * 14 + [True]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 30 + 2                  # 31 layers with weights + fc = "32"
    assert _resnet32_backbone_params(5) == 466_256
    assert _n_params(model) == 466_256 + 100 * 64 + 1  # cosine head: weights + sigma
    assert model.n_features == 64
    x = torch.randn(2, 3, 32, 32)
    assert model.features(x).shape == (2, 64)
    assert model(x).shape == (2, 100)


def test_resnet32_quick_variant_on_fashion_mnist_shape():
    model = resnet32_lucir((1, 28, 28), n_outputs=5, blocks_per_stage=1)
    assert sum(isinstance(m, LucirBasicBlock) for m in model.modules()) == 3
    assert _n_params(model) == _resnet32_backbone_params(1, in_channels=1) + 5 * 64 + 1
    x = torch.randn(3, 784)                          # flattened input is reshaped
    assert model.features(x).shape == (3, 64)
    assert model(x).shape == (3, 5)


def test_no_relu_after_last_block_so_features_can_be_negative():
    torch.manual_seed(0)
    model = resnet32_lucir((1, 28, 28), n_outputs=5, blocks_per_stage=1).eval()
    last = model.blocks[-1]
    with torch.no_grad():
        last.bn2.bias.fill_(-100.0)                  # push the residual branch far below 0
        # the block before still ends with a ReLU: its output is >= 0
        assert (model.blocks[:-1](model.stem(torch.randn(4, 1, 28, 28))) >= 0).all()
        feats = model.features(torch.randn(4, 1, 28, 28))
    assert (feats < -50).all()


def test_resnet18_imagenet_layout():
    torch.manual_seed(0)
    model = resnet18_lucir((3, 224, 224), n_outputs=10).eval()
    blocks = [m for m in model.modules() if isinstance(m, LucirBasicBlock)]
    assert [b.last for b in blocks] == [False] * 7 + [True]
    assert model.n_features == 512
    # torchvision's ResNet-18 without its 512x1000 fc has 11,176,512 parameters
    assert _n_params(model) - (10 * 512 + 1) == 11_176_512
    with torch.no_grad():
        blocks[-1].bn2.bias.fill_(-100.0)
        feats = model.features(torch.randn(1, 3, 224, 224))
    assert feats.shape == (1, 512) and (feats < 0).all()


# --------------------------------------------------------------------------- cosine head

def test_cosine_linear_by_hand():
    head = CosineLinear(2, 3)
    assert head.sigma.item() == 1.0                  # official init
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]]))
        head.sigma.fill_(2.0)
    f = torch.tensor([[3.0, 4.0], [-5.0, 0.0]])
    # f/|f| = (0.6, 0.8) and (-1, 0); w/|w| = (1, 0), (0, 1), (-1, -1)/sqrt(2)
    r = 1 / math.sqrt(2)
    expected = 2.0 * torch.tensor([[0.6, 0.8, -1.4 * r], [-1.0, 0.0, r]])
    torch.testing.assert_close(head(f), expected)
    torch.testing.assert_close(head.cosine(f), expected / 2)
    # scale invariance in both features and weights
    torch.testing.assert_close(head(7 * f), expected)


def test_split_cosine_linear_grows_and_freezes_old_classes():
    torch.manual_seed(0)
    base = CosineLinear(4, 3)
    with torch.no_grad():
        base.sigma.fill_(3.0)
    split = SplitCosineLinear.from_cosine(base, n_new=2)
    assert (split.n_old, split.n_new, split.out_features) == (3, 2, 5)
    assert torch.equal(split.weight_old, base.weight) and split.sigma.item() == 3.0
    assert not split.weight_old.requires_grad and split.weight_new.requires_grad
    f = torch.randn(6, 4)
    ref = CosineLinear(4, 5)
    with torch.no_grad():
        ref.weight.copy_(split.weight)
        ref.sigma.fill_(3.0)
    torch.testing.assert_close(split(f), ref(f))
    # old rows are untouched by a training step, new rows and sigma move
    old, new = split.weight_old.clone(), split.weight_new.clone()
    opt = torch.optim.SGD(trainable_parameters(split).values(), lr=0.5, momentum=0.9)
    nn.functional.cross_entropy(split(f), torch.tensor([0, 1, 2, 3, 4, 3])).backward()
    opt.step()
    assert torch.equal(split.weight_old, old) and not torch.equal(split.weight_new, new)
    # next phase: the new block joins the frozen old block
    grown_new = split.weight_new.detach().clone()
    split.add_classes(4)
    assert (split.n_old, split.n_new) == (5, 4)
    assert torch.equal(split.weight_old, torch.cat([old, grown_new]))
    assert not split.weight_old.requires_grad and split(f).shape == (6, 9)


def test_imprinting_by_hand():
    features = torch.tensor([[3.0, 4.0], [0.0, 2.0], [-2.0, 0.0], [9.0, 9.0]])
    labels = torch.tensor([5, 5, 6, 0])              # class 0 is old and must be ignored
    old = torch.tensor([[0.0, 2.0], [3.0, 4.0]])     # row norms 2 and 5 -> mean 3.5
    # class 5: unit features (0.6, 0.8), (0, 1) -> mean (0.3, 0.9) -> /sqrt(0.9)
    # class 6: (-1, 0)
    unit5 = torch.tensor([0.3, 0.9]) / math.sqrt(0.9)
    expected = 3.5 * torch.stack([unit5, torch.tensor([-1.0, 0.0])])
    torch.testing.assert_close(imprint_weights(features, labels, [5, 6], old), expected)
    torch.testing.assert_close(imprint_weights(features, labels, [5, 6]), expected / 3.5)
    with pytest.raises(ValueError):
        imprint_weights(features, labels, [7], old)

    head = SplitCosineLinear(2, n_old=2, n_new=2)
    with torch.no_grad():
        head.weight_old.copy_(old)
    head.imprint_new(features, torch.tensor([2, 2, 3, 0]))  # new classes are outputs 2 and 3
    torch.testing.assert_close(head.weight_new.detach(), expected)
    # an imprinted class's cosine with its own normalised mean feature is 1
    torch.testing.assert_close(head.cosine(unit5[None])[0, 2], torch.tensor(1.0))


# --------------------------------------------------------------------------- BiC

def test_bias_correction_by_hand():
    layer = BiasCorrection(n_new=2)
    z = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.0, 0.5, -2.0]])
    assert torch.equal(layer(z), z)                  # identity at init
    with torch.no_grad():
        layer.alpha.fill_(2.0)
        layer.beta.fill_(-1.0)
    expected = torch.tensor([[1.0, 2.0, 5.0, 7.0], [-1.0, 0.0, 0.0, -5.0]])
    assert torch.equal(layer(z), expected)
    layer(z).sum().backward()
    # d/dalpha = sum of the new-class logits (3 + 4 + 0.5 - 2), d/dbeta = their count
    assert layer.alpha.grad.item() == 5.5 and layer.beta.grad.item() == 4.0
    with pytest.raises(ValueError):
        BiasCorrection(n_new=5)(z)


# --------------------------------------------------------------------------- weight transfer

def _trained_resnet32() -> nn.Module:
    """A float64 ResNet-32 whose BN statistics and weights are no longer at their init."""
    torch.manual_seed(0)
    model = resnet32_lucir((3, 32, 32), n_outputs=10, blocks_per_stage=2).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 3, 32, 32, dtype=torch.float64), torch.arange(8) % 10
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    return model


def test_weight_transfer_matches_base_network_at_init():
    base = _trained_resnet32()
    transferred = weight_transfer(copy.deepcopy(base))
    assert not any(isinstance(m, nn.Conv2d) for m in transferred.modules())
    x = torch.randn(5, 3, 32, 32, dtype=torch.float64)
    for train in (False, True):
        base.train(train)
        transferred.train(train)
        assert torch.equal(transferred.features(x), base.features(x))
        assert torch.equal(transferred(x), base(x))
    with pytest.raises(ValueError):                  # only once: no nn.Conv2d left
        weight_transfer(transferred)


def test_weight_transfer_trainable_parameters_and_frozen_convs():
    base = _trained_resnet32()
    model = weight_transfer(copy.deepcopy(base))
    trainable = trainable_parameters(model)
    n_convs = sum(isinstance(m, nn.Conv2d) for m in base.modules())
    n_bns = sum(isinstance(m, nn.BatchNorm2d) for m in base.modules())
    assert sum(n.endswith(".scale") for n in trainable) == n_convs
    bn_or_head = {n for n, _ in base.named_parameters()
                  if ".bn" in n or "downsample.1" in n or n.startswith(("stem.1", "head."))}
    assert set(trainable) == {n for n in trainable if n.endswith(".scale")} | bn_or_head
    assert len([n for n in trainable if not n.endswith(".scale")]) == 2 * n_bns + 2
    # the conv weights are buffers now, out of reach of any optimiser
    assert set(dict(model.named_parameters())) == set(trainable)
    frozen = {n: b.clone() for n, b in model.named_buffers() if n.endswith(".weight")}
    assert len(frozen) == n_convs
    scales = {n: p.detach().clone() for n, p in trainable.items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(8, 3, 32, 32, dtype=torch.float64), torch.arange(8) % 10
    model.train()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    assert all(torch.equal(b, frozen[n]) for n, b in model.named_buffers() if n in frozen)
    moved = [n for n, p in trainable.items() if not torch.equal(p.detach(), scales[n])]
    assert sum(n.endswith(".scale") for n in moved) == n_convs
    # and the base network's weights are those frozen buffers
    for (n, p), (m, b) in zip(((n, p) for n, p in base.named_parameters() if p.dim() == 4),
                              ((m, b) for m, b in model.named_buffers() if m.endswith(".weight"))):
        assert n == m and torch.equal(p, b)


def test_transfer_conv_by_hand():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=True).double()
    tconv = TransferConv2d(conv)                      # official: bias -> a shift exists
    assert tconv.scale.shape == (3, 2, 1, 1) and tconv.shift.shape == (3,)
    scale = torch.tensor([[2.0, -1.0], [0.5, 0.0], [1.0, 3.0]], dtype=torch.float64)
    scale = scale[..., None, None]
    shift = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    with torch.no_grad():
        tconv.scale.copy_(scale)
        tconv.shift.copy_(shift)
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    w = conv.weight.detach() * scale                 # per (out, in) kernel slice
    expected = nn.functional.conv2d(x, w, conv.bias.detach() + shift, stride=2, padding=1)
    torch.testing.assert_close(tconv(x), expected)
    # options: one scale per output filter; shift on every conv or none
    assert TransferConv2d(conv, scale="filter").scale.shape == (3, 1, 1, 1)
    no_bias = nn.Conv2d(2, 3, 3, bias=False)
    assert TransferConv2d(no_bias).shift is None     # official code: no bias, no shift
    assert TransferConv2d(no_bias, shift="all").shift.shape == (3,)
    assert TransferConv2d(conv, shift="none").shift is None


def test_shift_before_batchnorm_gets_no_gradient_in_training_mode():
    torch.manual_seed(0)
    model = weight_transfer(resnet32_lucir((1, 28, 28), 5, blocks_per_stage=1).double(),
                            shift="all").train()
    x = torch.randn(6, 1, 28, 28, dtype=torch.float64)
    nn.functional.cross_entropy(model(x), torch.arange(6) % 5).backward()
    shifts = [m.shift.grad for m in model.modules() if isinstance(m, TransferConv2d)]
    scales = [m.scale.grad for m in model.modules() if isinstance(m, TransferConv2d)]
    assert max(g.abs().max().item() for g in shifts) < 1e-10
    assert min(g.abs().max().item() for g in scales) > 1e-6
