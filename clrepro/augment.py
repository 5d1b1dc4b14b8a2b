"""Data augmentation: every training transform of the suite, in one place.

Per image (the phase trainer, clrepro.trainset): `crop_flip`, CIFAR's random crop after zero
padding and horizontal flip, batched on the device; `random_resized_crop` and `flip`,
ImageNet's training transform, applied by the DataLoader workers that decode file-backed
images (clrepro.data.images) and, on images already in memory, by `augment_tensors`. The
run's hyperparameters name which (`augment`: keys augment.crop_pad, augment.flip,
augment.resized_crop).

Per batch (BLD §3.5, regenerable; hp `augment`: {views, crop_pad, flip, rotate, jitter}):
views whose parameters are drawn, never stored. A view is one transformation (crop offset,
flip, rotation angle, colour factors) applied to every image of a batch, as the paper
stores "the transformation type and parameters" per view. Its parameters come from a
generator seeded by (run seed, batch index, view index), so any pass over the batch --
BLD's warm-up and both joint steps -- regenerates exactly the same images without keeping
them. Views are applied batched on the images' device with
torchvision.transforms.v2 functional ops, to inputs in [0, 1] (normalisation is the
network's first layer, so it comes after).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from clrepro.devices import to_device
from clrepro.seeds import derive_seed

RRC_SCALE, RRC_RATIO = (0.08, 1.0), (3 / 4, 4 / 3)  # torchvision's RandomResizedCrop defaults


# -- per image: the phase trainer ---------------------------------------------------------
def augment(x: torch.Tensor, hp: dict[str, Any], gen: torch.Generator) -> torch.Tensor:
    """The training transform a run's hp names, on in-memory images in [0, 1]."""
    if hp.get("augment.resized_crop"):
        return augment_tensors(x, hp["augment.resized_crop"], gen)
    return crop_flip(x, hp["augment.crop_pad"], hp["augment.flip"], gen)


def crop_flip(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Per-image random crop (after zero padding) and horizontal flip, batched: the standard
    CIFAR augmentation of the official code, drawn from `gen` (on the CPU)."""
    n, c, h, w = x.shape
    # the draws (in this order, so that the CPU streams stay as they were) go to the device
    # in one copy, from pinned memory without blocking
    draws = []
    if pad:
        draws += [torch.randint(0, 2 * pad + 1, (n,), generator=gen),
                  torch.randint(0, 2 * pad + 1, (n,), generator=gen)]
    if flip:
        draws.append((torch.rand(n, generator=gen) < 0.5).long())
    if not draws:
        return x.contiguous()
    draws = to_device(torch.stack(draws), x.device)
    if pad:
        top, left = draws[0], draws[1]
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        rows = (top[:, None] + torch.arange(h, device=x.device))[:, :, None]
        cols = (left[:, None] + torch.arange(w, device=x.device))[:, None, :]
        x = padded[torch.arange(n, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mirror = draws[-1].bool()
        x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
    return x.contiguous()


def random_resized_crop(image: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """torchvision's RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3; up to 10 draws, then the
    centre crop of the clamped ratio), its parameters drawn from `gen`."""
    from torchvision.transforms.v2 import functional as TF

    _, h, w = image.shape
    area = h * w
    log_lo, log_hi = math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1])
    for _ in range(10):
        u = torch.rand(2, generator=gen, dtype=torch.float64).tolist()
        target = area * (RRC_SCALE[0] + (RRC_SCALE[1] - RRC_SCALE[0]) * u[0])
        ratio = math.exp(log_lo + (log_hi - log_lo) * u[1])
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
            break
    else:
        ratio = min(max(w / h, RRC_RATIO[0]), RRC_RATIO[1])
        cw, ch = (w, round(w / ratio)) if w / h > ratio else (round(h * ratio), h)
        cw, ch = min(cw, w), min(ch, h)
        top, left = (h - ch) // 2, (w - cw) // 2
    return TF.resized_crop(image, top, left, ch, cw, [size, size], antialias=True)


def flip(image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return image.flip(-1) if float(torch.rand((), generator=gen)) < 0.5 else image


def augment_tensors(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """The training transform on images already in memory (exemplars of a file-backed
    benchmark), one image at a time on their device."""
    return torch.stack([flip(random_resized_crop(image, size, gen), gen) for image in x])


# -- per batch, regenerable: BLD's views ----------------------------------------------------


@dataclass(frozen=True)
class Augmentation:
    """hp["augment"]: {views, crop_pad, flip, rotate, jitter} (BLD spec §4.3 suite defaults)."""

    views: int = 1  # transformations per batch
    crop_pad: int = 0  # random crop back to the input size after zero padding of this many pixels
    flip: bool = False  # horizontal flip with probability 0.5
    rotate: float = 0.0  # rotation angle uniform in [-rotate, rotate] degrees
    jitter: float = 0.0  # brightness, contrast and saturation factors uniform in [1-j, 1+j]

    @classmethod
    def from_hp(cls, spec: dict[str, Any]) -> "Augmentation":
        unknown = set(spec) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"augment: unknown key(s) {', '.join(sorted(unknown))}")
        return cls(**spec)


@dataclass(frozen=True)
class View:
    top: int
    left: int
    flip: bool
    angle: float
    brightness: float
    contrast: float
    saturation: float


class Views:
    """The views of a run: `views(batch)` regenerates the parameters of a batch's views;
    `apply` / `stacked` transform images with them."""

    def __init__(self, aug: Augmentation, seed: int):
        self.aug, self.seed = aug, seed

    def __call__(self, batch: int) -> list[View]:
        return [self._draw(batch, k) for k in range(self.aug.views)]

    def _draw(self, batch: int, k: int) -> View:
        gen = torch.Generator().manual_seed(derive_seed(self.seed, f"augment:{batch}:{k}"))
        u = torch.rand(7, generator=gen, dtype=torch.float64).tolist()
        a = self.aug
        span = 2 * a.crop_pad + 1
        return View(top=int(u[0] * span), left=int(u[1] * span), flip=a.flip and u[2] < 0.5,
                    angle=a.rotate * (2 * u[3] - 1), brightness=1 + a.jitter * (2 * u[4] - 1),
                    contrast=1 + a.jitter * (2 * u[5] - 1), saturation=1 + a.jitter * (2 * u[6] - 1))

    def apply(self, x: torch.Tensor, view: View) -> torch.Tensor:
        """x: [B, C, H, W] in [0, 1]."""
        # imported here: torchvision pulls in torch._dynamo (1.4 s), which every training
        # job would pay for at start, BLD's or not
        import torchvision.transforms.v2.functional as TF

        a = self.aug
        if a.crop_pad:
            h, w = x.shape[-2:]
            x = TF.crop(TF.pad(x, [a.crop_pad]), view.top, view.left, h, w)
        if view.flip:
            x = TF.horizontal_flip(x)
        if a.rotate:
            x = TF.rotate(x, view.angle, interpolation=TF.InterpolationMode.BILINEAR)
        if a.jitter:
            x = TF.adjust_brightness(x, view.brightness)
            x = TF.adjust_contrast(x, view.contrast) if x.shape[1] in (1, 3) else x
            if x.shape[1] == 3:
                x = TF.adjust_saturation(x, view.saturation)
        return x

    def stacked(self, x: torch.Tensor, views: list[View]) -> torch.Tensor:
        """All views of a batch in one tensor [V * B, C, H, W] (view-major)."""
        return torch.cat([self.apply(x, v) for v in views])
