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


def reshape_images(x: torch.Tensor, size: int | None, resize: str, channels: int | None) -> torch.Tensor:
    """Bring uint8 images [N, C, H, W] to size x size (zero padding around the centre, or
    bilinear / area resampling) and replicate grey images to `channels`. uint8 in and out."""
    import torch.nn.functional as F

    if size is not None and tuple(x.shape[-2:]) != (size, size):
        if resize == "pad":
            h, w = x.shape[-2:]
            if h > size or w > size:
                raise ValueError(f"cannot pad {h}x{w} images to {size}x{size}")
            top, left = (size - h) // 2, (size - w) // 2
            x = F.pad(x, (left, size - w - left, top, size - h - top))
        else:
            y = F.interpolate(x.float(), size=(size, size), mode=resize,
                              **({"align_corners": False} if resize == "bilinear" else {}))
            x = y.round_().clamp_(0, 255).to(torch.uint8)
    if channels is not None and x.shape[1] != channels:
        if x.shape[1] != 1:
            raise ValueError(f"only grey images can be replicated to {channels} channels")
        x = x.expand(-1, channels, -1, -1).contiguous()
    return x


ROTATIONS = {"nearest": rotate_nearest, "cubic": rotate_cubic}


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Network input: uint8 images become float in [0, 1]; float images pass through."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x
