"""A tiny ILSVRC-2012-shaped tree for the tests: train/<wnid>/*.JPEG and val/<wnid>/*.JPEG
for the ImageNet-Subset classes, small JPEGs of varying size whose colour encodes the class
(so a network can learn them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from clrepro.data.imagenet_classes import IMAGENET_SUBSET_WNIDS


def image(wnid_index: int, k: int) -> Image.Image:
    rng = np.random.default_rng([wnid_index, k])
    h, w = 36 + 4 * (k % 3), 44 - 4 * (k % 2)
    base = np.array([(wnid_index * 37) % 256, (wnid_index * 91) % 256, (wnid_index * 53) % 256])
    pixels = np.clip(base + rng.integers(-30, 31, (h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def make_tree(root: Path, wnids=IMAGENET_SUBSET_WNIDS, train: int = 3, val: int = 1) -> Path:
    """root/{train,val}/<wnid>/<wnid>_<k>.JPEG; returns root."""
    for i, wnid in enumerate(wnids):
        for part, n in (("train", train), ("val", val)):
            folder = root / part / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                image(i, k + (100 if part == "val" else 0)).save(folder / f"{wnid}_{k}.JPEG",
                                                                 quality=90)
    return root
