"""The in-memory form every source returns: uint8 images and int64 labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class RawData:
    """A train/test image dataset. Images are uint8 [N, C, H, W]; labels int64 [N]."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int
    origin: str  # where the bytes came from (directory, "download", "synthetic")
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256

    def __post_init__(self) -> None:
        for x in (self.train_x, self.test_x):
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise ValueError(f"{self.name}: images must be uint8 [N, C, H, W], got "
                                 f"{x.dtype} {tuple(x.shape)}")
        if len(self.train_x) != len(self.train_y) or len(self.test_x) != len(self.test_y):
            raise ValueError(f"{self.name}: image and label counts differ")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])
