"""CORe50 and the three CLVision-2020 challenge tracks (DRL spec §4.4).

Layout of an unpacked CORe50 root (what the official archives unpack to):

    <root>/core50_128x128/s<session>/o<object>/C_<ss>_<oo>_<frame>.png   128x128 RGB PNGs
    <root>/batches_filelists/NI_inc/run<r>/train_batch_<NN>_filelist.txt   (+ test_filelist.txt)
    <root>/batches_filelists/NC_inc/run<r>/...
    <root>/NIC_v2_391/run<r>/...

Every list line is "s<session>/o<object>/<file>.png <label>" (caffe filelist format), the path
relative to core50_128x128/. The challenge ran run 0 of the CORe50 scenarios 'ni', 'nc' (as
Multi-Task-NC, one task per batch) and 'nicv2_391'. The evaluation set is the scenario's
test_filelist.txt: the CORe50 test sessions #3, #7 and #10, labelled like the training lists.

Resolution order (as for the other sources): an explicit root, then `data.dir`/core50, where
official .zip archives already placed there are unpacked; then a download (only with
`data.download`), md5-checked, unpacked atomically. There is no system-wide mirror of CORe50.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from clrepro.data.definitions import DataSettings
from clrepro.data.sources import ChecksumError, MissingDataError
from clrepro.fsutil import atomic_path

IMAGE_DIR = "core50_128x128"
IMAGE_SIDE = 128
TEST_SESSIONS = (3, 7, 10)  # CORe50 site: "sessions #3, #7 and #10 have been selected for test"
MANIFEST_FORMAT = 1
_SHOW = 5  # missing paths named in an error message


@dataclass(frozen=True)
class Archive:
    name: str
    url: str
    md5: str  # as recorded by Avalanche's CORe50 downloader (core50_data.py)


ARCHIVES = {
    "images": Archive("core50_128x128.zip",
                      "http://bias.csr.unibo.it/maltoni/download/core50/core50_128x128.zip",
                      "745f3373fed08d69343f1058ee559e13"),
    "lists": Archive("batches_filelists.zip",
                     "https://vlomonaco.github.io/core50/data/batches_filelists.zip",
                     "e3297508a8998ba0c99a83d6b36bde62"),
    "lists_nicv2": Archive("batches_filelists_NICv2.zip",
                           "https://vlomonaco.github.io/core50/data/batches_filelists_NICv2.zip",
                           "460f980a6c85b86b1ec8e7c6067bb7a3"),
}


@dataclass(frozen=True)
class TrackSpec:
    name: str
    challenge_name: str  # the starter kit's --scenario value
    scenario: str  # the CORe50 scenario the challenge maps it to
    list_dir: str  # relative to the root; run<r>/ below it
    n_batches: int
    task_labels: bool  # Multi-Task-NC: one task per batch, task id given at train and test
    lists_archive: str  # key of ARCHIVES


TRACKS = {
    "ni": TrackSpec("ni", "ni", "ni", "batches_filelists/NI_inc", 8, False, "lists"),
    "mtnc": TrackSpec("mtnc", "multi-task-nc", "nc", "batches_filelists/NC_inc", 9, True, "lists"),
    "nic": TrackSpec("nic", "nic", "nicv2_391", "NIC_v2_391", 391, False, "lists_nicv2"),
}

_BATCH_FILE = re.compile(r"train_batch_(\d+)_filelist\.txt")
_EVAL_FILE = "test_filelist.txt"
_LIST_PATH = re.compile(r"s(\d+)/o(\d+)/[^/\s]+\.png")


def track_spec(track: str) -> TrackSpec:
    if track not in TRACKS:
        raise KeyError(f"unknown CORe50 track '{track}'; valid tracks: {', '.join(TRACKS)}")
    return TRACKS[track]


# ----------------------------------------------------------------------------- track content

@dataclass(frozen=True)
class Batch:
    """One training batch: image paths relative to the CORe50 root, labels, task (mtnc only)."""

    paths: tuple[str, ...]
    labels: tuple[int, ...]
    task: int | None
    list_file: str

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def classes(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.labels)))


@dataclass(frozen=True)
class EvalSet:
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    tasks: tuple[int, ...] | None  # mtnc: the task whose classes hold each label
    list_file: str
    stride: int  # every stride-th image kept (the challenge's reduced validation used 20)
    n_dropped: int  # test images of classes the track never trains on

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(frozen=True)
class Track:
    name: str
    run: int
    root: Path
    list_dir: str
    batches: tuple[Batch, ...]
    eval: EvalSet
    list_sha256: dict[str, str]  # list file (relative to root) -> sha256

    @property
    def classes(self) -> tuple[int, ...]:
        return tuple(sorted({c for b in self.batches for c in b.classes}))

    @property
    def task_classes(self) -> tuple[tuple[int, ...], ...] | None:
        if self.batches and self.batches[0].task is None:
            return None
        return tuple(b.classes for b in self.batches)

    @property
    def n_train(self) -> int:
        return sum(len(b) for b in self.batches)

    def manifest(self) -> dict[str, Any]:
        """JSON-able summary a later job compares with what it reads (see verify_manifest)."""
        return {
            "format": MANIFEST_FORMAT,
            "dataset": "core50",
            "track": self.name,
            "run": self.run,
            "image_dir": IMAGE_DIR,
            "list_dir": self.list_dir,
            "files": dict(sorted(self.list_sha256.items())),
            "batches": [{"file": b.list_file, "n": len(b), "classes": list(b.classes),
                         "task": b.task} for b in self.batches],
            "eval": {"file": self.eval.list_file, "n": len(self.eval), "stride": self.eval.stride,
                     "n_dropped": self.eval.n_dropped,
                     "classes": sorted(set(self.eval.labels))},
            "classes": list(self.classes),
            "task_classes": ([list(c) for c in self.task_classes]
                             if self.task_classes is not None else None),
            "n_train": self.n_train,
        }


def verify_manifest(root: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Raise ValueError if a list file recorded in `manifest` is missing or changed under root."""
    root = Path(root)
    problems = []
    for rel, sha in manifest["files"].items():
        path = root / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            problems.append(f"{rel}: sha256 differs from the manifest")
    if problems:
        raise ValueError(f"CORe50 lists under {root} differ from the manifest of track "
                         f"'{manifest.get('track')}':\n  " + "\n  ".join(problems) +
                         "\nRestore the official lists, or rebuild the data step that wrote it.")


def read_filelist(path: Path) -> tuple[list[tuple[str, int]], str]:
    """(path relative to core50_128x128, label) per line, and the file's sha256."""
    data = path.read_bytes()
    entries = []
    for no, line in enumerate(data.decode("utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not _LIST_PATH.fullmatch(parts[0]) or not parts[1].isdigit():
            raise ValueError(f"{path}:{no}: expected 's<session>/o<object>/<name>.png <label>', "
                             f"got {line.strip()!r}")
        entries.append((parts[0], int(parts[1])))
    return entries, hashlib.sha256(data).hexdigest()


def _run_dir(root: Path, spec: TrackSpec, run: int) -> Path | None:
    # Avalanche reads "run0"; the CORe50 site's tree drawing shows "Run0": accept both
    for name in (f"run{run}", f"Run{run}"):
        if (root / spec.list_dir / name).is_dir():
            return root / spec.list_dir / name
    return None


def _where_lists(root: Path, spec: TrackSpec) -> str:
    archive = ARCHIVES[spec.lists_archive]
    return (f"Put the official CORe50 batch filelists there: unzip {archive.name} "
            f"({archive.url}) in {root} (data.dir/core50 by default)")


def _name_missing(what: str, missing: list[str], fix: str) -> MissingDataError:
    shown = "\n".join(f"  - {m}" for m in missing[:_SHOW])
    more = f"\n  ... and {len(missing) - _SHOW} more" if len(missing) > _SHOW else ""
    return MissingDataError(f"{len(missing)} {what} missing:\n{shown}{more}\n{fix}.")


def load_track(root: str | os.PathLike, track: str, run: int = 0, *, check_counts: bool = True,
               check_images: bool = True, eval_stride: int = 1) -> Track:
    """Read a track's training batches (in order) and evaluation set from an unpacked root.

    check_counts: require the challenge's number of batches (8 / 9 / 391); off for small trees.
    eval_stride: keep every n-th evaluation image (per task for mtnc), 1 = all of them.
    """
    spec = track_spec(track)
    if eval_stride < 1:
        raise ValueError("eval_stride must be >= 1")
    root = Path(root)
    run_dir = _run_dir(root, spec, run)
    if run_dir is None:
        raise _name_missing("CORe50 list folder", [str(root / spec.list_dir / f"run{run}")],
                            _where_lists(root, spec))
    found = {int(m.group(1)): p for p in run_dir.iterdir() if (m := _BATCH_FILE.fullmatch(p.name))}
    n = spec.n_batches if check_counts else max(found, default=-1) + 1
    if check_counts and len(found) > n:
        raise ValueError(f"{run_dir} holds {len(found)} training batch lists; the challenge's "
                         f"'{spec.challenge_name}' track has {n}. Use the official lists.")
    missing = [str(run_dir / f"train_batch_{i:02d}_filelist.txt")
               for i in range(max(n, 1)) if i not in found]
    if not (run_dir / _EVAL_FILE).is_file():
        missing.append(str(run_dir / _EVAL_FILE))
    if missing:
        raise _name_missing("CORe50 list file(s)", missing, _where_lists(root, spec))

    def rel(p: Path) -> str:
        return p.relative_to(root).as_posix()

    sha: dict[str, str] = {}
    train_lists = []
    for i in range(n):
        entries, sha[rel(found[i])] = read_filelist(found[i])
        if not entries:
            raise ValueError(f"{found[i]} is empty")
        train_lists.append((rel(found[i]), entries))
    eval_entries, sha[rel(run_dir / _EVAL_FILE)] = read_filelist(run_dir / _EVAL_FILE)

    _check_protocol(train_lists, (rel(run_dir / _EVAL_FILE), eval_entries), spec)
    batches = tuple(Batch(tuple(f"{IMAGE_DIR}/{p}" for p, _ in entries),
                          tuple(y for _, y in entries), i if spec.task_labels else None, name)
                    for i, (name, entries) in enumerate(train_lists))
    evalset = _eval_set(batches, eval_entries, rel(run_dir / _EVAL_FILE), spec, eval_stride)
    if check_images:
        paths = dict.fromkeys(p for b in batches for p in b.paths)
        paths.update(dict.fromkeys(evalset.paths))
        absent = [str(root / p) for p in paths if not (root / p).is_file()]
        if absent:
            img = ARCHIVES["images"]
            raise _name_missing(f"of {len(paths)} CORe50 images named by the '{track}' lists are",
                                absent, f"Unzip {img.name} ({img.url}) in {root} so that it holds "
                                        f"{IMAGE_DIR}/s1 ... s11 (data.dir/core50 by default)")
    return Track(track, run, root, rel(run_dir), batches, evalset, sha)


def _check_protocol(train_lists: list[tuple[str, list[tuple[str, int]]]],
                    eval_list: tuple[str, list[tuple[str, int]]], spec: TrackSpec) -> None:
    """Refuse lists that cannot be the official ones: an object with two labels, training
    images from a test session, evaluation images from a training session, or (mtnc) tasks
    that share classes."""
    label_of: dict[int, tuple[int, str]] = {}
    object_of: dict[int, tuple[int, str]] = {}
    for name, entries in [*train_lists, eval_list]:
        is_eval = name == eval_list[0]
        for path, label in entries:
            session, obj = map(int, _LIST_PATH.fullmatch(path).groups())
            if is_eval != (session in TEST_SESSIONS):
                part = "evaluation" if is_eval else "training"
                raise ValueError(f"{name}: {path} is a {part} image from session {session}; "
                                 f"the CORe50 test sessions are {TEST_SESSIONS}. Use the "
                                 f"official lists.")
            seen = label_of.setdefault(obj, (label, name))
            other = object_of.setdefault(label, (obj, name))
            if seen[0] != label or other[0] != obj:
                raise ValueError(f"{name}: {path} has label {label}, but {seen[1]} gives object "
                                 f"o{obj} label {seen[0]} (or label {label} to object "
                                 f"o{other[0]}).")
    if spec.task_labels:
        owner: dict[int, str] = {}
        for name, entries in train_lists:
            for c in {y for _, y in entries}:
                if owner.setdefault(c, name) != name:
                    raise ValueError(f"class {c} appears in {owner[c]} and {name}; Multi-Task-NC "
                                     f"tasks must have disjoint classes.")


def _eval_set(batches: tuple[Batch, ...], entries: list[tuple[str, int]], list_file: str,
              spec: TrackSpec, stride: int) -> EvalSet:
    task_of = {c: b.task if b.task is not None else 0 for b in batches for c in b.classes}
    kept = [(p, y) for p, y in entries if y in task_of]  # restricted to the track's classes
    counts: dict[int, int] = {}
    chosen = []
    for p, y in kept:  # every stride-th image of each task, as the challenge's reduced valid set
        t = task_of[y]
        if counts.get(t, 0) % stride == 0:
            chosen.append((p, y))
        counts[t] = counts.get(t, 0) + 1
    return EvalSet(tuple(f"{IMAGE_DIR}/{p}" for p, _ in chosen), tuple(y for _, y in chosen),
                   tuple(task_of[y] for _, y in chosen) if spec.task_labels else None,
                   list_file, stride, len(entries) - len(kept))


# ----------------------------------------------------------------------------- locate / download

def _md5_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _download(archive: Archive, dest: Path, verify: bool, timeout: float = 60.0) -> None:
    """Stream `archive` to dest through a temporary file; nothing is left behind on failure."""
    with urllib.request.urlopen(archive.url, timeout=timeout) as resp, atomic_path(dest) as tmp:
        h = hashlib.md5()
        with open(tmp, "wb") as f:
            while block := resp.read(1 << 20):
                f.write(block)
                h.update(block)
        if verify and h.hexdigest() != archive.md5:
            raise ChecksumError(f"download of {archive.url} has md5 {h.hexdigest()}, not the "
                                f"recorded {archive.md5}; it was discarded. Try again later.")


def _unpack(path: Path, target: Path) -> list[str]:
    """Unzip into a temporary folder inside target, then rename each top-level entry into
    place, so that a killed job never leaves a half-unpacked tree under its final name.
    Entries already present are left alone."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=target))
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                parts = PurePosixPath(name).parts
                if name.startswith("/") or ".." in parts:
                    raise ValueError(f"{path} holds an unsafe member name {name!r}; not unpacked.")
            zf.extractall(tmp)
        moved = []
        for entry in sorted(tmp.iterdir()):
            if entry.name == "__MACOSX" or (target / entry.name).exists():
                continue
            try:
                os.replace(entry, target / entry.name)
            except OSError:
                if not (target / entry.name).exists():
                    raise
                continue  # another job unpacked the same entry meanwhile
            moved.append(entry.name)
        return moved
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _needed(directory: Path, spec: TrackSpec, run: int) -> list[str]:
    """Keys of ARCHIVES whose content is missing in directory for this track."""
    needed = []
    if not (directory / IMAGE_DIR).is_dir():
        needed.append("images")
    if _run_dir(directory, spec, run) is None:
        needed.append(spec.lists_archive)
    return needed


def locate_core50(settings: DataSettings, track: str, run: int = 0,
                  root: str | os.PathLike | None = None) -> Path:
    """The CORe50 root holding the images and this track's lists; unpacks official archives
    found there and downloads missing ones when settings.download is true."""
    spec = track_spec(track)
    candidates = [Path(root)] if root is not None else []
    if settings.dir / "core50" not in candidates:
        candidates.append(settings.dir / "core50")
    for d in candidates:
        if d.is_dir() and not _needed(d, spec, run):
            return d
    target = candidates[0]
    download_error = None
    for key in _needed(target, spec, run):
        archive = ARCHIVES[key]
        local = target / archive.name
        if not local.is_file() and settings.download:
            target.mkdir(parents=True, exist_ok=True)
            try:
                _download(archive, local, settings.verify_checksums)
            except (OSError, http.client.HTTPException) as exc:  # offline: URLError is an OSError
                download_error = f"{type(exc).__name__}: {exc}"
                break
        if local.is_file():
            md5 = _md5_file(local) if settings.verify_checksums else archive.md5
            if md5 != archive.md5:
                raise ChecksumError(f"{local} has md5 {md5}, not the recorded {archive.md5} of "
                                    f"{archive.url}. Replace it with the original, or set "
                                    f"data.verify_checksums: false.")
            _unpack(local, target)
    still = _needed(target, spec, run)
    if not still:
        return target
    parts = {"images": f"{IMAGE_DIR}/", spec.lists_archive: f"{spec.list_dir}/run{run}/"}
    what = "\n".join(f"  - {parts[k]} (from {ARCHIVES[k].name}, md5 {ARCHIVES[k].md5}):\n"
                     f"      {ARCHIVES[k].url}" for k in still)
    where = "\n".join(f"  - {d}" for d in candidates)
    message = (f"CORe50 for track '{track}' not found. Missing:\n{what}\nSearched:\n{where}\n"
               f"Fix: download these archives and unzip them in {target} (or just put the .zip "
               f"files there), or point data.dir at a directory holding a 'core50' folder")
    if download_error:
        message += f", or retry with network access (download failed: {download_error})"
    elif not settings.download:
        message += ", or allow downloads with --config data='{download: true}'"
    raise MissingDataError(message + ".")


def load_core50(settings: DataSettings, track: str, run: int = 0,
                root: str | os.PathLike | None = None, **kwargs: Any) -> Track:
    """locate_core50 then load_track (keyword arguments go to load_track)."""
    return load_track(locate_core50(settings, track, run, root), track, run, **kwargs)


# ----------------------------------------------------------------------------- images

def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"), dtype=np.uint8)  # a writable copy
    except FileNotFoundError:
        raise
    except Exception as exc:  # damaged data: name the file and the fix, not only PIL's words
        from clrepro.data.imagecheck import decode_failure

        raise decode_failure(path, exc) from None


def decode_images(paths: Sequence[str | os.PathLike],
                  root: str | os.PathLike | None = None) -> torch.Tensor:
    """uint8 tensor [N, 3, H, W] of the images at paths (relative to root when given)."""
    base = Path(root) if root is not None else None
    arrays: list[np.ndarray] = []
    for p in paths:
        full = base / p if base is not None else Path(p)
        a = _read_rgb(full)
        if arrays and a.shape != arrays[0].shape:
            raise ValueError(f"{full} is {a.shape[1]}x{a.shape[0]}, the first image "
                             f"{arrays[0].shape[1]}x{arrays[0].shape[0]}; sizes must agree.")
        arrays.append(a)
    if not arrays:
        return torch.empty((0, 3, IMAGE_SIDE, IMAGE_SIDE), dtype=torch.uint8)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
