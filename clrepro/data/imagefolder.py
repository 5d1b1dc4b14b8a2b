"""ImageNet and ImageNet-Subset from a local ILSVRC-2012 copy (Mnemonics spec §4.1).

Layout (the usual ImageFolder one): `<data.dir>/imagenet/train/<wnid>/*.JPEG` and
`<data.dir>/imagenet/val/<wnid>/*.JPEG` (the 50,000 validation images sorted into class
folders). ImageNet-Subset reads the same folder with its 100 committed classes, or a folder
`<data.dir>/imagenet_subset` holding exactly those classes (LUCIR's subset scripts make one).
ImageNet cannot be downloaded (its licence needs a login at image-net.org); the official
archives placed in `<data.dir>/imagenet` (ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar,
ILSVRC2012_devkit_t12.tar.gz) are md5-checked and unpacked into that layout by torchvision.

The data rule (`prepare_folder`) lists the files of every class a benchmark uses, checks the
class list against its committed sha256 and stores per task the relative paths, labels and the
lists' sha256 -- no pixels. Each job (`materialize_folder`) turns them into lazily decoded
clrepro.data.images.ImageFiles.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import torch

from clrepro.data import imagecheck
from clrepro.data.benchmarks import Benchmark, TaskData, task_bounds
from clrepro.data.definitions import BenchmarkDef, DataSettings
from clrepro.data.imagenet_classes import CLASS_LISTS, CLASS_LISTS_SHA256, list_sha256
from clrepro.data.images import CROP, IMAGENET_MEAN, IMAGENET_STD, ImageFiles
from clrepro.data.sources import ChecksumError, MissingDataError

SPLITS = {"train": "train", "test": "val"}  # the validation images serve as the test set
EXTENSIONS = (".jpeg", ".jpg", ".png")
SHOW = 10  # missing class folders named in an error


class ClassListError(ValueError):
    """A class list that is not the committed one."""


def class_list(source: str) -> tuple[str, ...]:
    wnids = CLASS_LISTS[source]
    if list_sha256(wnids) != CLASS_LISTS_SHA256[source]:
        raise ClassListError(
            f"the {source} class list in clrepro/data/imagenet_classes.py does not match its "
            f"committed sha256 {CLASS_LISTS_SHA256[source][:12]}...: refusing to train on other "
            f"classes than the protocol's. Restore the file (git checkout).")
    return wnids


def resolve_root(source: str, settings: DataSettings) -> Path:
    subset = settings.dir / "imagenet_subset"
    if source == "imagenet_subset" and subset.is_dir():
        return subset
    return settings.dir / "imagenet"


def _layout_error(root: Path, source: str, missing: list[str], n_needed: int) -> MissingDataError:
    shown = "\n".join(f"  - {m}" for m in missing[:SHOW])
    more = f"\n  ... and {len(missing) - SHOW} more" if len(missing) > SHOW else ""
    val = root / "val"
    flat = val.is_dir() and any(f.suffix.lower() in EXTENSIONS for f in val.iterdir())
    if flat:
        more += (f"\n{val} holds images directly, as the ILSVRC2012_img_val.tar archive unpacks: "
                 f"sort them into val/<wnid>/ folders with the devkit's ground truth (torchvision's "
                 f"ImageNet(root, split='val') does this from ILSVRC2012_devkit_t12.tar.gz).")
    return MissingDataError(
        f"Dataset '{source}' is missing or incomplete under {root}: {len(missing)} of the "
        f"{n_needed} folders it needs are absent or empty, first:\n{shown}{more}\n"
        f"Expected layout (ILSVRC-2012, from image-net.org; it cannot be downloaded "
        f"automatically): {root}/train/<wnid>/*.JPEG and {root}/val/<wnid>/*.JPEG, one folder "
        f"per WordNet ID, the validation images sorted into class folders -- or the archives "
        f"ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz in "
        f"{root}, which are md5-checked and unpacked into it. Point data.dir at the directory holding "
        f"'imagenet' (--config data='{{dir: /path}}').")


def unpack_archives(root: Path) -> None:
    """Unpack the official archives found in `root` into train/ and val/ (torchvision checks
    their md5 and sorts the validation images by the devkit's ground truth). Each folder is
    unpacked under a temporary name and renamed when complete, so a killed unpack is redone."""
    from torchvision.datasets import imagenet as tv

    for part in ("train", "val"):
        archive = root / tv.ARCHIVE_META[part][0]
        if (root / part).is_dir() or not archive.is_file():
            continue
        partial = root / f"{part}.unpacking"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            if part == "val":
                if not (root / tv.META_FILE).is_file():
                    tv.parse_devkit_archive(str(root))
                tv.parse_val_archive(str(root), folder=partial.name)
            else:
                tv.parse_train_archive(str(root), folder=partial.name)
        except RuntimeError as exc:  # torchvision: absent or corrupted archive
            raise ChecksumError(f"{exc} (md5 {tv.ARCHIVE_META[part][1]}; the devkit "
                                f"{tv.ARCHIVE_META['devkit'][0]} is needed for val)") from exc
        partial.rename(root / part)


def scan(source: str, settings: DataSettings) -> tuple[Path, dict[str, list[list[str]]]]:
    """(root, {train|test: per class of the source's label order, its sorted relative paths})."""
    wnids = class_list(source)
    root = resolve_root(source, settings)
    if root.is_dir():
        unpack_archives(root)
    if root.name == "imagenet_subset":
        present = sorted(p.name for p in (root / "train").iterdir() if p.is_dir()) \
            if (root / "train").is_dir() else []
        if present and tuple(present) != wnids:  # wnids: the committed list, checked above
            extra = sorted(set(present) - set(wnids))[:SHOW]
            absent = sorted(set(wnids) - set(present))[:SHOW]
            raise ClassListError(
                f"{root}/train holds {len(present)} class folders whose list does not match the "
                f"committed ImageNet-Subset (sha256 {list_sha256(present)[:12]}..., expected "
                f"{CLASS_LISTS_SHA256[source][:12]}...); not in the protocol: {extra}, missing: "
                f"{absent}. Remove or rename {root} to read the subset from {root.parent}/imagenet.")
    files: dict[str, list[list[str]]] = {}
    missing = []
    for part, folder in SPLITS.items():
        files[part] = []
        for wnid in wnids:
            directory = root / folder / wnid
            names = sorted(f.name for f in directory.iterdir()
                           if f.suffix.lower() in EXTENSIONS) if directory.is_dir() else []
            if not names:
                missing.append(f"{folder}/{wnid}")
            files[part].append([f"{folder}/{wnid}/{n}" for n in names])
    if missing:
        raise _layout_error(root, source, missing, 2 * len(wnids))
    return root, files


def lists_digest(tensors: dict[str, Any]) -> str:
    lists = sorted((k, v) for k, v in tensors.items() if k.startswith(("train_files/", "test_files/")))
    return hashlib.sha256(repr(lists).encode()).hexdigest()


def prepare_folder(defn: BenchmarkDef, settings: DataSettings) -> tuple[dict[str, Any], dict]:
    """Per task: relative paths and labels (position in the class order) of its training and
    test images, its classes, and the lists' sha256. Returns (cache dict, source manifest)."""
    root, files = scan(defn.source, settings)
    order = list(defn.class_list) if defn.class_list else list(range(len(files["train"])))
    bounds = task_bounds(defn)
    out: dict[str, Any] = {"n_classes": torch.tensor(len(order))}
    for t, (a, b) in enumerate(zip(bounds, bounds[1:])):
        out[f"classes/{t}"] = torch.arange(a, b)
        for part in SPLITS:
            paths, labels = [], []
            for position in range(a, b):
                members = files[part][order[position]]
                paths += members
                labels += [position] * len(members)
            out[f"{part}_files/{t}"] = paths
            out[f"{part}_y/{t}"] = torch.tensor(labels, dtype=torch.long)
    imagecheck.check(root, folder_images(out))
    digest = lists_digest(out)
    out["lists_sha256"] = digest
    source = {"name": defn.source, "origin": str(root), "files_md5": {},
              "class_list_sha256": CLASS_LISTS_SHA256[defn.source], "lists_sha256": digest,
              "train": sum(len(v) for k, v in out.items() if k.startswith("train_files/")),
              "test": sum(len(v) for k, v in out.items() if k.startswith("test_files/")),
              "n_classes": len(order)}
    return out, source


def folder_images(prepared: dict[str, Any]) -> list[str]:
    """Every image a prepared folder benchmark lists (relative to its root)."""
    return [p for k, v in sorted(prepared.items()) if k.startswith(("train_files/", "test_files/"))
            for p in v]


def materialize_folder(prepared: dict[str, Any], defn: BenchmarkDef,
                       settings: DataSettings) -> Benchmark:
    """The run's tasks as ImageFiles under the folder data.dir points at now, cropped to
    defn.image_size (default 224)."""
    if lists_digest(prepared) != prepared["lists_sha256"]:
        raise ValueError(f"the file lists of {defn.name} do not match their sha256: delete its "
                         f"results/data files to prepare it again")
    root = resolve_root(defn.source, settings)
    if not root.is_dir():
        raise _layout_error(root, defn.source, ["train/", "val/"], 2)
    side = defn.image_size or CROP
    empty = torch.zeros((0, 3, side, side), dtype=torch.uint8)
    tasks = []
    for t in range(defn.n_tasks):
        train = ImageFiles(str(root), prepared[f"train_files/{t}"], prepared[f"train_y/{t}"], side)
        test = ImageFiles(str(root), prepared[f"test_files/{t}"], prepared[f"test_y/{t}"], side)
        tasks.append(TaskData(train, train.y, empty, torch.zeros(0, dtype=torch.long), test, test.y,
                              prepared[f"classes/{t}"], {}))
    return Benchmark(defn, tasks, int(prepared["n_classes"]), (3, side, side), 3 * side * side,
                     norm=(list(IMAGENET_MEAN), list(IMAGENET_STD)))
