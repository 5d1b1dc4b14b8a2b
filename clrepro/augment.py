"""Regenerable data augmentation (BLD §3.5): views whose parameters are drawn, never stored.

A view is one transformation (crop offset, flip, rotation angle, colour factors) applied to
every image of a batch, as the paper stores "the transformation type and parameters" per
view. Its parameters come from a generator seeded by (run seed, batch index, view index), so
any pass over the batch -- BLD's warm-up and both joint steps -- regenerates exactly the
same images without keeping them. Views are applied batched on the images' device with
torchvision.transforms.v2 functional ops, to inputs in [0, 1] (normalisation is the
network's first layer, so it comes after).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from clrepro.seeds import derive_seed


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
