"""What a phase of the phase trainer trains on, and how its batches are made.

A TrainingSet is a phase's task data plus the method's exemplars. On tensor benchmarks every
row is in memory (x, y): a batch is cut from them and augmented on the device -- random crop
after zero padding and a horizontal flip, CIFAR's augmentation (clrepro.augment.crop_flip). On file-backed
benchmarks (ImageNet) the task's images stay files: they are rows 0 .. len(files)-1, decoded
and augmented (random-resized crop, flip) by DataLoader workers while the device trains, and
copied from pinned memory without blocking; the in-memory rows (exemplars) get the same
transform on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch

from clrepro.augment import augment
from clrepro.data.images import ImageFiles, image_seed
from clrepro.data.transforms import as_float
from clrepro.devices import to_device


@dataclass
class TrainingSet:
    x: torch.Tensor  # in-memory images (float in [0, 1], or uint8)
    y: torch.Tensor
    files: ImageFiles | None = None  # a file-backed task's images, rows before x's

    @property
    def n_files(self) -> int:
        return 0 if self.files is None else len(self.files)

    def __len__(self) -> int:
        return self.n_files + len(self.y)

    def labels(self) -> torch.Tensor:
        if self.files is None:
            return self.y
        return torch.cat([self.files.y.to(self.y.device), self.y])

    def subset(self, keep: torch.Tensor) -> "TrainingSet":
        """The rows where `keep` (bool over all rows, files first) is true."""
        nf = self.n_files
        files = None if self.files is None else self.files.subset(torch.nonzero(keep[:nf].cpu()).flatten())
        mine = keep[nf:].to(self.y.device)
        return TrainingSet(self.x[mine.to(self.x.device)], self.y[mine], files)

    def batches(self, order: torch.Tensor, size: int, gen: torch.Generator, hp: dict[str, Any],
                epoch_seed: int, workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Augmented (input, labels) batches of `order`, `size` rows at a time."""
        if self.files is None:
            for lo in range(0, len(order), size):
                idx = order[lo:lo + size]
                yield augment(as_float(self.x[idx]), hp, gen), self.y[idx]
            return
        nf, device = self.n_files, self.y.device
        cpu_chunks = order.cpu().split(size)  # one copy of the order, not one per batch
        decoded = self.files.loader([c[c < nf] for c in cpu_chunks],
                                    [image_seed(epoch_seed, i) for i in range(len(cpu_chunks))],
                                    workers, pin=device.type == "cuda")
        for idx, from_files in zip(cpu_chunks, decoded):
            xs, ys = [], []
            if from_files is not None:
                xs.append(as_float(from_files.to(device, non_blocking=True)))
                ys.append(to_device(self.files.y[idx[idx < nf]], device))
            mem = to_device(idx[idx >= nf] - nf, device)
            if len(mem):
                xs.append(augment(as_float(self.x[mem]), hp, gen))
                ys.append(self.y[mem])
            yield torch.cat(xs), torch.cat(ys)

    def eval_batches(self, size: int, workers: int = 0) -> Iterator[torch.Tensor]:
        """Inputs of every row in order (files first), test transform, no augmentation."""
        if self.files is not None:
            yield from self.files.inputs(torch.arange(self.n_files).split(size), self.y.device, workers)
        for lo in range(0, len(self.y), size):
            yield as_float(self.x[lo:lo + size])
