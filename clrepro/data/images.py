"""Images read from files on demand (ImageNet): decoding, the ImageNet transforms, loaders.

A file-backed task keeps paths and labels, never pixels (ImageNet's 1.28 M training images are
about 190 GB as 224x224 uint8). Training batches are decoded by DataLoader workers with a
random-resized crop and a horizontal flip drawn per image from a generator seeded by (epoch
seed, row): a batch is the same whatever the number of workers, and a resumed epoch sees the
images the interrupted one would have. Evaluation, exemplar selection and imprinting decode
with the test transform: shorter side resized to 256, centre crop 224 (Mnemonics spec §4.1),
in a thread pool (PIL and torch release the GIL while decoding and resizing), because they
read a class or a test set at a time and worker processes would cost more to start than
the decoding.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from clrepro.augment import flip, random_resized_crop
from clrepro.data.transforms import as_float

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE, CROP = 256, 224


@dataclass
class ImageFiles:
    """Images of one set (a task's training or test images): paths relative to `root`, labels."""

    root: str
    paths: list[str]
    y: torch.Tensor
    size: int = CROP

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, rows: torch.Tensor) -> "ImageFiles":
        rows = rows.cpu()
        return ImageFiles(self.root, [self.paths[i] for i in rows.tolist()], self.y.cpu()[rows],
                          self.size)

    @staticmethod
    def cat(parts: list["ImageFiles"]) -> "ImageFiles":
        if len({(p.root, p.size) for p in parts}) != 1:
            raise ValueError("cannot join image files from different roots or sizes")
        return ImageFiles(parts[0].root, [f for p in parts for f in p.paths],
                          torch.cat([p.y for p in parts]), parts[0].size)

    def loader(self, batches: Iterable[torch.Tensor], seeds: Iterable[int] | None = None,
               workers: int = 0, pin: bool = False) -> Iterator[torch.Tensor | None]:
        """uint8 [n, 3, size, size] per batch of rows, in order (None for an empty batch):
        the training transform, by DataLoader worker processes, when `seeds` gives one seed
        per batch; else the test transform, by a pool of `workers` threads."""
        from torch.utils.data import DataLoader

        if seeds is None:
            return _threaded(_Decode(self), [[(r, None) for r in rows.tolist()] for rows in batches],
                             workers, pin)
        items = [[(r, image_seed(s, r)) for r in rows.tolist()] for rows, s in zip(batches, seeds)]
        return iter(DataLoader(_Decode(self), batch_sampler=items, num_workers=workers,
                               collate_fn=_stack, pin_memory=pin,
                               prefetch_factor=4 if workers else None))

    def inputs(self, batches: Iterable[torch.Tensor], device: torch.device,
               workers: int = 0) -> Iterator[torch.Tensor]:
        """Network inputs in [0, 1] on `device` per batch of rows (test transform), copied
        from pinned memory without blocking on CUDA."""
        for b in self.loader(batches, workers=workers, pin=device.type == "cuda"):
            yield as_float(b.to(device, non_blocking=True))

    def decode(self, rows: torch.Tensor, workers: int = 0, chunk: int = 256) -> torch.Tensor:
        """The test-transformed images of `rows`, uint8 [n, 3, size, size]."""
        parts = [b for b in self.loader(rows.cpu().split(chunk), workers=workers) if b is not None]
        return torch.cat(parts) if parts else torch.zeros((0, 3, self.size, self.size), dtype=torch.uint8)


def image_seed(batch_seed: int, row: int) -> int:
    return (batch_seed + 0x9E3779B97F4A7C15 * (row + 1)) % (2 ** 63)


class _Decode(torch.utils.data.Dataset):
    def __init__(self, files: ImageFiles):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: tuple[int, int | None]) -> torch.Tensor:
        row, seed = item
        image = read_rgb(Path(self.files.root) / self.files.paths[row])
        if seed is None:
            return test_transform(image, self.files.size)
        gen = torch.Generator().manual_seed(seed)
        return flip(random_resized_crop(image, self.files.size, gen), gen)


def _stack(items: list[torch.Tensor]) -> torch.Tensor | None:
    return torch.stack(items) if items else None


def _threaded(dataset: "_Decode", batches: list[list], workers: int, pin: bool):
    """The batches decoded in order, a few in flight at a time."""
    if workers <= 0:
        for items in batches:
            yield _stack([dataset[i] for i in items])
        return

    def one(items):
        out = _stack(list(pool.map(dataset.__getitem__, items)))
        return out.pin_memory() if pin and out is not None else out

    with ThreadPoolExecutor(workers) as pool, ThreadPoolExecutor(1) as ahead:
        pending: deque = deque()
        for items in batches:
            pending.append(ahead.submit(one, items))
            if len(pending) > 2:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def read_rgb(path: Path) -> torch.Tensor:
    """An image file as uint8 [3, H, W] RGB."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is listed in the prepared benchmark but missing: restore it, or delete "
            f"the benchmark's results/data files so that the data rule lists the folder again"
        ) from None
    except Exception as exc:  # damaged data: name the file and the fix, not only PIL's words
        from clrepro.data.imagecheck import decode_failure

        raise decode_failure(path, exc) from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def test_transform(image: torch.Tensor, size: int = CROP) -> torch.Tensor:
    """Shorter side to size * 256/224, then the centre size x size crop."""
    from torchvision.transforms.v2 import functional as TF

    image = TF.resize(image, round(size * RESIZE / CROP), antialias=True)
    return TF.center_crop(image, [size, size]).contiguous()
