"""Raw datasets and where to find them.

Resolution order for every source (DESIGN principle 5): an explicit directory
(`data.dir` in the config) -> a local mirror such as the Debian package
`dataset-fashion-mnist` -> a torchvision download. Without network and without the
files, `MissingDataError` names the files, the directories searched and how to fix it.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from clrepro.data.definitions import DataSettings
from clrepro.data.idx import read_idx
from clrepro.data.raw import RawData


class MissingDataError(FileNotFoundError):
    """A dataset is not available offline and could not be downloaded."""


class ChecksumError(ValueError):
    """A dataset file does not match its published checksum."""


def _download(tv_cls, settings: DataSettings) -> str | None:
    """Let torchvision fetch (and verify) a dataset; the reason if it could not."""
    try:
        tv_cls(root=str(settings.dir), train=True, download=True)
    except Exception as exc:  # offline machines raise URLError/RuntimeError here
        return f"{type(exc).__name__}: {exc}"
    return None


def _missing(message: str, settings: DataSettings, download_error: str | None) -> MissingDataError:
    if download_error:
        message += f", or retry with network access (download failed: {download_error})"
    elif not settings.download:
        message += ", or allow downloads with --config data='{download: true}'"
    return MissingDataError(message + ".")


# ----------------------------------------------------------------------------- IDX (MNIST)

_IDX_PARTS = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
              "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}

# sha256 of the *decompressed* Fashion-MNIST files, as shipped by Debian's
# dataset-fashion-mnist (its .gz files are recompressed, so their md5s differ from
# torchvision's list while the content is the same).
_FASHION_CONTENT_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _find_idx(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _verify_idx(path: Path, stem: str, gz_md5: dict[str, str], content_sha: dict[str, str]):
    if path.suffix == ".gz" and gz_md5.get(path.name) == _md5(path):
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if content_sha.get(stem) == digest:
        return
    raise ChecksumError(
        f"{path} does not match the published checksum of {stem}. Replace it with the "
        f"original file, or set data.verify_checksums: false to use it anyway.")


def _load_idx_source(name: str, tv_name: str, settings: DataSettings, mirrors: tuple[str, ...],
                     content_sha: dict[str, str]) -> RawData:
    import torchvision.datasets as tvd

    tv_cls = getattr(tvd, tv_name)
    gz_md5 = dict(tv_cls.resources)
    tv_raw = settings.dir / tv_name / "raw"  # torchvision's own layout
    candidates = [settings.dir / name, tv_raw, *map(Path, mirrors)]
    download_error = None
    found = _search_idx(candidates)
    if found is None and settings.download:
        download_error = _download(tv_cls, settings)
        found = _search_idx([tv_raw])
    if found is None:
        files = ", ".join(f"{stem}.gz" for stem in _IDX_PARTS.values())
        where = "\n".join(f"  - {c}" for c in candidates)
        hint = ("`apt-get install dataset-fashion-mnist` provides them under "
                "/usr/share/datasets/fashion-mnist, or " if name == "fashion_mnist" else "")
        raise _missing(f"Dataset '{name}' not found. Needed files: {files} (plain or .gz).\n"
                       f"Searched:\n{where}\n"
                       f"Fix: {hint}copy the four files into {settings.dir / name} "
                       f"(or point data.dir at a directory holding a '{name}' folder)",
                       settings, download_error)
    directory, paths = found
    if settings.verify_checksums:
        for stem, path in paths.items():
            _verify_idx(path, stem, gz_md5, content_sha)
    arrays = {part: read_idx(paths[stem]) for part, stem in _IDX_PARTS.items()}
    return RawData(
        name=name,
        train_x=torch.from_numpy(arrays["train_x"]).unsqueeze(1),
        train_y=torch.from_numpy(arrays["train_y"].astype(np.int64)),
        test_x=torch.from_numpy(arrays["test_x"]).unsqueeze(1),
        test_y=torch.from_numpy(arrays["test_y"].astype(np.int64)),
        n_classes=10, origin=str(directory),
        files={p.name: _md5(p) for p in paths.values()})


def _search_idx(directories: list[Path]) -> tuple[Path, dict[str, Path]] | None:
    for directory in directories:
        paths = {stem: _find_idx(directory, stem) for stem in _IDX_PARTS.values()}
        if all(paths.values()):
            return directory, paths
    return None


def mnist(settings: DataSettings) -> RawData:
    return _load_idx_source("mnist", "MNIST", settings, (), {})


def fashion_mnist(settings: DataSettings) -> RawData:
    return _load_idx_source("fashion_mnist", "FashionMNIST", settings,
                            ("/usr/share/datasets/fashion-mnist",), _FASHION_CONTENT_SHA256)


# ----------------------------------------------------------------------------- CIFAR

def _load_cifar(name: str, tv_name: str, label_key: str, n_classes: int,
                settings: DataSettings) -> RawData:
    import torchvision.datasets as tvd

    tv_cls = getattr(tvd, tv_name)
    folder = settings.dir / tv_cls.base_folder
    parts = tv_cls.train_list + tv_cls.test_list
    missing = [f for f, _ in parts if not (folder / f).is_file()]
    download_error = None
    if missing and settings.download:
        download_error = _download(tv_cls, settings)  # torchvision verifies the tarball's md5
        missing = [f for f, _ in parts if not (folder / f).is_file()]
    if missing:
        raise _missing(f"Dataset '{name}' not found: missing {', '.join(missing)} in {folder}.\n"
                       f"Fix: extract {tv_cls.filename} ({tv_cls.url}) into {settings.dir}",
                       settings, download_error)
    if settings.verify_checksums:
        for fname, md5 in parts:
            if _md5(folder / fname) != md5:
                raise ChecksumError(
                    f"{folder / fname} does not match the published md5 {md5}. Re-extract "
                    f"{tv_cls.filename}, or set data.verify_checksums: false to use it anyway.")

    def load(files: list) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for fname, _ in files:
            with open(folder / fname, "rb") as f:
                entry = pickle.load(f, encoding="latin1")  # the official release format
            xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(entry[label_key], dtype=np.int64))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    train_x, train_y = load(tv_cls.train_list)
    test_x, test_y = load(tv_cls.test_list)
    return RawData(name, train_x, train_y, test_x, test_y, n_classes, origin=str(folder),
                   files={f: _md5(folder / f) for f, _ in parts})


def cifar10(settings: DataSettings) -> RawData:
    return _load_cifar("cifar10", "CIFAR10", "labels", 10, settings)


def cifar100(settings: DataSettings) -> RawData:
    return _load_cifar("cifar100", "CIFAR100", "fine_labels", 100, settings)


# ----------------------------------------------------------------------------- SVHN

SVHN_PARTS = ("train", "test")  # the "extra" split is not used (BLD spec §4.1)


def svhn(settings: DataSettings) -> RawData:
    """SVHN cropped digits (train 73,257 / test 26,032), torchvision's .mat files, md5-checked.
    The .mat labels use 10 for the digit 0; they are mapped to 0 as torchvision does."""
    import torchvision.datasets as tvd
    from scipy.io import loadmat

    folder = settings.dir / "svhn"
    parts = {p: tvd.SVHN.split_list[p] for p in SVHN_PARTS}  # part -> (url, file name, md5)
    missing = [name for _, name, _ in parts.values() if not (folder / name).is_file()]
    download_error = None
    if missing and settings.download:
        for part, (_, name, _) in parts.items():
            if name in missing:
                try:
                    tvd.SVHN(root=str(folder), split=part, download=True)
                except Exception as exc:  # offline machines raise URLError here
                    download_error = f"{type(exc).__name__}: {exc}"
                    break
        missing = [name for _, name, _ in parts.values() if not (folder / name).is_file()]
    if missing:
        urls = ", ".join(url for url, name, _ in parts.values() if name in missing)
        raise _missing(f"Dataset 'svhn' not found: missing {', '.join(missing)} in {folder}.\n"
                       f"Fix: download {urls} into {folder}", settings, download_error)
    if settings.verify_checksums:
        for _, name, md5 in parts.values():
            if _md5(folder / name) != md5:
                raise ChecksumError(f"{folder / name} does not match the published md5 {md5}. "
                                    f"Download it again, or set data.verify_checksums: false.")
    arrays = {}
    for part, (_, name, _) in parts.items():
        mat = loadmat(folder / name)
        arrays[part] = (torch.from_numpy(np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1))),
                        torch.from_numpy(mat["y"].astype(np.int64).flatten() % 10))
    return RawData("svhn", *arrays["train"], *arrays["test"], 10, origin=str(folder),
                   files={name: md5 for _, name, md5 in parts.values()})


# ----------------------------------------------------------------------------- mini-ImageNet

MINI_SIDE = 84
MINI_TEST_FRACTION = 0.2  # every class's 600 images -> 480 train / 120 test (GMED spec §4.1)


def _mini_from_pickles(folder: Path) -> dict[str, list[np.ndarray]] | None:
    """The 'mini-imagenet-cache-{train,val,test}.pkl' release: image_data [N, 84, 84, 3]
    uint8 and class_dict {wnid: [row indices]}."""
    files = [folder / f"mini-imagenet-cache-{part}.pkl" for part in ("train", "val", "test")]
    if not all(f.is_file() for f in files):
        return None
    images: dict[str, list[np.ndarray]] = {}
    for f in files:
        with open(f, "rb") as fh:
            entry = pickle.load(fh)  # the release's own format
        data = np.asarray(entry["image_data"], dtype=np.uint8)
        for wnid, rows in entry["class_dict"].items():
            images.setdefault(wnid, []).extend(data[list(rows)])
    return images


def _load_image(path: Path) -> np.ndarray:
    """RGB, shorter side resized to 84, centre-cropped to 84x84 (GMED's preprocessing)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = MINI_SIDE / min(w, h)
        im = im.resize((max(MINI_SIDE, round(w * scale)), max(MINI_SIDE, round(h * scale))),
                       Image.BILINEAR)
        w, h = im.size
        left, top = (w - MINI_SIDE) // 2, (h - MINI_SIDE) // 2
        return np.asarray(im.crop((left, top, left + MINI_SIDE, top + MINI_SIDE)), dtype=np.uint8)


def _mini_from_folders(folder: Path) -> dict[str, list[np.ndarray]] | None:
    """The image-folder release: {train,val,test}/<wnid>/*.jpg (any size), or images/ with
    Ravi & Larochelle's train/val/test.csv (filename,label)."""
    images: dict[str, list[Path]] = {}
    for part in ("train", "val", "test"):
        if (folder / part).is_dir():
            for class_dir in sorted(p for p in (folder / part).iterdir() if p.is_dir()):
                images.setdefault(class_dir.name, []).extend(
                    sorted(p for p in class_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")))
        elif (folder / f"{part}.csv").is_file() and (folder / "images").is_dir():
            for line in (folder / f"{part}.csv").read_text().splitlines()[1:]:
                name, _, wnid = line.strip().partition(",")
                images.setdefault(wnid, []).append(folder / "images" / name)
    if not images:
        return None
    return {wnid: [_load_image(p) for p in paths] for wnid, paths in images.items()}


def miniimagenet(settings: DataSettings) -> RawData:
    """mini-ImageNet (Vinyals et al. 2016): 100 classes x 600 images, 84x84 RGB. Classes are
    ordered by WordNet ID (spec D8); each class is split 480/120 into train/test with a fixed
    seed. There is no official checksum list: the sha256 of each file is recorded instead."""
    folder = settings.dir / "miniimagenet"
    by_class = (_mini_from_pickles(folder) or _mini_from_folders(folder)) if folder.is_dir() else None
    if not by_class:
        raise MissingDataError(
            f"Dataset 'miniimagenet' not found in {folder}. It cannot be downloaded "
            f"automatically. Put there either mini-imagenet-cache-{{train,val,test}}.pkl, or "
            f"train/ val/ test/ folders with one sub-folder of images per WordNet ID, or "
            f"images/ with train.csv, val.csv and test.csv (Ravi & Larochelle's split).")
    rng = np.random.default_rng(0)
    xs = {"train": [], "test": []}
    ys = {"train": [], "test": []}
    for label, wnid in enumerate(sorted(by_class)):
        imgs = np.stack(by_class[wnid])
        order = rng.permutation(len(imgs))
        n_test = int(round(MINI_TEST_FRACTION * len(imgs)))
        for part, rows in (("test", order[:n_test]), ("train", order[n_test:])):
            xs[part].append(imgs[rows])
            ys[part].append(np.full(len(rows), label, dtype=np.int64))
    x = {part: torch.from_numpy(np.concatenate(v)).permute(0, 3, 1, 2).contiguous()
         for part, v in xs.items()}
    y = {part: torch.from_numpy(np.concatenate(v)) for part, v in ys.items()}
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
             for p in sorted(folder.glob("*.pkl"))}
    return RawData("miniimagenet", x["train"], y["train"], x["test"], y["test"], len(by_class),
                   origin=str(folder), files=files)


# ----------------------------------------------------------------------------- digits, synthetic

def digits(settings: DataSettings) -> RawData:
    """scikit-learn's 8x8 digits (values 0..16 rescaled to 0..255); last 360 images are test."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(np.round(bunch.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    return RawData("digits", x[:-360], y[:-360], x[-360:], y[-360:], 10, origin="scikit-learn")


def synthetic(name: str, shape: tuple[int, int, int], n_classes: int, train_per_class: int = 120,
              test_per_class: int = 30, seed: int = 0) -> RawData:
    """Learnable stand-in data: one smooth random prototype per class plus pixel noise."""
    gen = torch.Generator().manual_seed(seed)
    c, h, w = shape
    coarse = torch.rand(n_classes, c, max(h // 4, 2), max(w // 4, 2), generator=gen)
    protos = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear",
                                             align_corners=False)

    def draw(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n_classes).repeat_interleave(per_class)
        noise = 0.35 * torch.rand(len(y), c, h, w, generator=gen)
        x = (0.65 * protos[y] + noise).clamp(0, 1)
        order = torch.randperm(len(y), generator=gen)
        return (x[order] * 255).round().to(torch.uint8), y[order]

    train_x, train_y = draw(train_per_class)
    test_x, test_y = draw(test_per_class)
    return RawData(f"synthetic:{name}", train_x, train_y, test_x, test_y, n_classes,
                   origin="synthetic")


# ----------------------------------------------------------------------------- registry

SOURCES: dict[str, tuple[Callable[[DataSettings], RawData], tuple[int, int, int], int]] = {
    "mnist": (mnist, (1, 28, 28), 10),
    "fashion_mnist": (fashion_mnist, (1, 28, 28), 10),
    "cifar10": (cifar10, (3, 32, 32), 10),
    "cifar100": (cifar100, (3, 32, 32), 100),
    "svhn": (svhn, (3, 32, 32), 10),
    "digits": (digits, (1, 8, 8), 10),
    "miniimagenet": (miniimagenet, (3, 84, 84), 100),
}


def load_source(name: str, settings: DataSettings) -> RawData:
    if name not in SOURCES:
        raise KeyError(f"unknown data source '{name}'; known: {', '.join(sorted(SOURCES))}")
    loader, shape, n_classes = SOURCES[name]
    if settings.synthetic:
        return synthetic(name, shape, n_classes)
    return loader(settings)
