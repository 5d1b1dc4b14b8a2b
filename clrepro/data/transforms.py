"""Per-task input transformations: pixel permutations and rotations."""

from __future__ import annotations

import numpy as np
import torch


def permute_pixels(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Apply one fixed permutation of the C*H*W input values to every image."""
    return x.reshape(len(x), len(perm))[:, perm].reshape(x.shape)


def rotate_nearest(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Counter-clockwise rotation about the centre with PIL's defaults (nearest neighbour,
    same size, zero fill), as GEM's mnist_rotations.py does. uint8 in, uint8 out."""
    from PIL import Image

    if x.dtype != torch.uint8 or x.shape[1] != 1:
        raise ValueError("rotate_nearest expects uint8 single-channel images")
    if len(x) == 0:
        return x.clone()
    arr = x[:, 0].numpy()
    out = np.stack([np.asarray(Image.fromarray(im, mode="L").rotate(angle)) for im in arr])
    return torch.from_numpy(out).unsqueeze(1)


def rotate_cubic(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Cubic-spline rotation about the centre keeping the size (scipy.ndimage.rotate,
    reshape=False), applied to the uint8 images as GMED's data code does (scipy rounds and
    clips the result back to uint8). uint8 in, uint8 out."""
    from scipy.ndimage import rotate

    if x.dtype != torch.uint8:
        raise ValueError("rotate_cubic expects uint8 images")
    if len(x) == 0:
        return x.clone()
    out = rotate(x.numpy(), angle, axes=(3, 2), reshape=False, order=3)
    return torch.from_numpy(np.ascontiguousarray(out))


ROTATIONS = {"nearest": rotate_nearest, "cubic": rotate_cubic}


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Network input: uint8 images become float in [0, 1]; float images pass through."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x
