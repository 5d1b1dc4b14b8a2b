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


def make_archives(root: Path, wnids=IMAGENET_SUBSET_WNIDS) -> dict[str, tuple[str, str]]:
    """The three official archives, shaped as torchvision's ImageNet expects them, with one
    training and one validation image per class; returns {part: (file name, md5)}."""
    import hashlib
    import io
    import tarfile

    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)

    def add(tar, name, data: bytes):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    def jpeg(i, k):
        buf = io.BytesIO()
        image(i, k).save(buf, format="JPEG")
        return buf.getvalue()

    synsets = np.array([(i + 1, w, f"class {i}", "", 0) for i, w in enumerate(wnids)],
                       dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"),
                              ("gloss", "O"), ("num_children", "O")])
    meta = io.BytesIO()
    savemat(meta, {"synsets": synsets})
    order = [(i * 7) % len(wnids) for i in range(len(wnids))]  # validation images shuffled
    with tarfile.open(root / "ILSVRC2012_devkit_t12.tar.gz", "w:gz") as tar:
        add(tar, "ILSVRC2012_devkit_t12/data/meta.mat", meta.getvalue())
        add(tar, "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt",
            "".join(f"{i + 1}\n" for i in order).encode())
    with tarfile.open(root / "ILSVRC2012_img_val.tar", "w") as tar:
        for n, i in enumerate(order):
            add(tar, f"ILSVRC2012_val_{n + 1:08d}.JPEG", jpeg(i, 100))
    with tarfile.open(root / "ILSVRC2012_img_train.tar", "w") as tar:
        for i, w in enumerate(wnids):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as t:
                add(t, f"{w}_0.JPEG", jpeg(i, 0))
            add(tar, f"{w}.tar", inner.getvalue())
    names = {"train": "ILSVRC2012_img_train.tar", "val": "ILSVRC2012_img_val.tar",
             "devkit": "ILSVRC2012_devkit_t12.tar.gz"}
    return {part: (name, hashlib.md5((root / name).read_bytes()).hexdigest())
            for part, name in names.items()}
