"""Decoding throughput of file-backed ImageNet batches (clrepro.data.images): images/s of the
training transform (JPEG decode, random-resized crop 224, flip) by 0..--workers DataLoader
workers, and of the test transform (resize 256, centre crop 224) by a thread pool, against
PIL's bare decode of the same files in this process (the reference).

    python bench/decode.py [--images 256] [--workers 2] [--side 500x375]

Synthetic JPEGs of ImageNet's typical size are written to a temporary folder. A GPU training
ResNet-18 at N images/s needs about N / (training images/s per worker) workers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clrepro.data.images import ImageFiles


def write_jpegs(folder: Path, n: int, w: int, h: int) -> list[str]:
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        coarse = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
        names.append(f"{i:05d}.JPEG")
        image.save(folder / names[-1], quality=90)
    return names


def rate(n: int, run, repeats: int = 2) -> float:
    """Best of `repeats` (the first also pays for imports and worker start-up)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--side", default="500x375")
    args = ap.parse_args()
    torch.set_num_threads(1)
    w, h = (int(v) for v in args.side.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        names = write_jpegs(Path(tmp), args.images, w, h)
        files = ImageFiles(tmp, names, torch.zeros(len(names), dtype=torch.long))
        rows = torch.arange(len(names)).split(64)

        def bare():
            for name in names:
                with Image.open(Path(tmp) / name) as im:
                    np.asarray(im.convert("RGB"))

        reference = rate(len(names), bare)
        print(f"PIL decode alone, 1 process     {reference:7.1f} images/s (reference)")
        for k in range(args.workers + 1):
            r = rate(len(names), lambda: list(files.loader(rows, range(len(rows)), workers=k)))
            print(f"training transform, {k} workers  {r:7.1f} images/s = {r / reference:.2f}x reference")
        for k in (1, args.workers):
            r = rate(len(names), lambda: list(files.loader(rows, workers=k)))
            print(f"test transform, {k} threads     {r:7.1f} images/s = {r / reference:.2f}x reference")


if __name__ == "__main__":
    main()
