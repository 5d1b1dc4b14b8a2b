"""Dataset resolution: local copies (IDX and the CIFAR python release), checksums, errors."""

import pickle

import numpy as np
import pytest
import torch

from clrepro.data import sources
from clrepro.data.idx import read_idx, write_idx
from clrepro.data.sources import ChecksumError, DataSettings, MissingDataError, load_source

from conftest import FASHION, needs_fashion


def write_mnist_copy(directory, n_train=30, n_test=10):
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_idx(directory / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (n_train, 28, 28)))
    write_idx(directory / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, n_train))
    write_idx(directory / "t10k-images-idx3-ubyte", rng.integers(0, 255, (n_test, 28, 28)))
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, n_test))


def test_idx_roundtrip_and_truncation(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), a)
    write_idx(tmp_path / "b", a)
    (tmp_path / "b").write_bytes((tmp_path / "b").read_bytes()[:-5])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "b")


def test_local_mnist_copy_is_found(tmp_path):
    write_mnist_copy(tmp_path / "mnist")
    raw = load_source("mnist", DataSettings(tmp_path, download=False, verify_checksums=False))
    assert raw.train_x.shape == (30, 1, 28, 28) and raw.test_x.shape == (10, 1, 28, 28)
    assert raw.train_x.dtype == torch.uint8 and raw.origin == str(tmp_path / "mnist")


def test_local_copy_with_wrong_checksum_is_refused(tmp_path):
    write_mnist_copy(tmp_path / "mnist")
    with pytest.raises(ChecksumError, match="verify_checksums"):
        load_source("mnist", DataSettings(tmp_path, download=False, verify_checksums=True))


def test_missing_data_names_files_directories_and_fix(tmp_path):
    with pytest.raises(MissingDataError) as err:
        load_source("mnist", DataSettings(tmp_path, download=False))
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "mnist") in msg and "download" in msg


def test_failed_download_is_reported(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(tvd, "MNIST", type("MNIST", (), {"__init__": offline,
                                                        "resources": tvd.MNIST.resources}))
    with pytest.raises(MissingDataError, match="download failed: RuntimeError"):
        load_source("mnist", DataSettings(tmp_path, download=True))


def test_cifar_release_format_copy(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train", 20), ("test", 8)):
        entry = {"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                 "fine_labels": list(rng.integers(0, 100, n))}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    raw = load_source("cifar100", DataSettings(tmp_path, download=False, verify_checksums=False))
    assert raw.train_x.shape == (20, 3, 32, 32) and raw.n_classes == 100
    with pytest.raises(ChecksumError):
        load_source("cifar100", DataSettings(tmp_path, download=False, verify_checksums=True))
    with pytest.raises(MissingDataError, match="cifar-10-batches-py"):
        load_source("cifar10", DataSettings(tmp_path, download=False))


@needs_fashion
def test_debian_fashion_mnist_passes_its_checksums(tmp_path):
    raw = load_source("fashion_mnist", DataSettings(tmp_path, download=False))
    assert raw.origin == str(FASHION) and len(raw.train_y) == 60000 and len(raw.test_y) == 10000


def test_synthetic_source_is_deterministic():
    a = sources.synthetic("x", (1, 8, 8), 4)
    b = sources.synthetic("x", (1, 8, 8), 4)
    assert torch.equal(a.train_x, b.train_x) and a.n_classes == 4
    assert load_source("cifar100", DataSettings(synthetic=True)).image_shape == (3, 32, 32)


def _mini_images(rng, n):
    return rng.integers(0, 255, (n, 84, 84, 3), dtype=np.uint8)


def test_miniimagenet_pickle_release(tmp_path):
    folder = tmp_path / "miniimagenet"
    folder.mkdir()
    rng = np.random.default_rng(0)
    wnids = ["n03", "n01", "n02", "n04"]
    for part, classes in (("train", wnids[:2]), ("val", wnids[2:3]), ("test", wnids[3:])):
        data = _mini_images(rng, 10 * len(classes))
        entry = {"image_data": data,
                 "class_dict": {w: list(range(10 * i, 10 * i + 10)) for i, w in enumerate(classes)}}
        with open(folder / f"mini-imagenet-cache-{part}.pkl", "wb") as f:
            pickle.dump(entry, f)
    raw = load_source("miniimagenet", DataSettings(tmp_path, download=False))
    assert raw.n_classes == 4 and raw.image_shape == (3, 84, 84)
    assert len(raw.train_y) == 32 and len(raw.test_y) == 8  # 80/20 per class
    assert sorted(set(raw.test_y.tolist())) == [0, 1, 2, 3]
    # classes are numbered by sorted WordNet ID: "n01" (first in the train pickle) is class 0
    first = pickle.load(open(folder / "mini-imagenet-cache-train.pkl", "rb"))["image_data"][10]
    together = torch.cat([raw.train_x, raw.test_x])
    labels = torch.cat([raw.train_y, raw.test_y])
    match = (together == torch.from_numpy(first).permute(2, 0, 1)).flatten(1).all(1)
    assert labels[match].tolist() == [0]


def test_miniimagenet_folder_release_resizes(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for part, wnid in (("train", "n01"), ("val", "n02")):
        d = tmp_path / "miniimagenet" / part / wnid
        d.mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)).save(d / f"{i}.png")
    raw = load_source("miniimagenet", DataSettings(tmp_path, download=False))
    assert raw.train_x.shape == (8, 3, 84, 84) and raw.n_classes == 2


def test_miniimagenet_missing_says_where_and_what(tmp_path):
    with pytest.raises(MissingDataError, match="cannot be downloaded.*mini-imagenet-cache"):
        load_source("miniimagenet", DataSettings(tmp_path))
