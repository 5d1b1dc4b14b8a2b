"""File-backed benchmarks: the CLVision-2020 tracks of CORe50 (DRL spec §4.4).

Unlike the tensor benchmarks, the data rule stores no pixels (the NI stream alone is about
6 GB at 128x128): `prepare_track` reads the track's official lists, checks that every image
they name exists, and caches the labels plus the lists' sha256. Each training job then
re-reads the lists, refuses them if they changed since, and decodes the images it trains
on (`materialize_track`): a batch (NI, NIC) or task (Multi-Task-NC) per stream task, and the
evaluation set the track defines -- one shared set for NI and NIC, a set per task with its
task label for Multi-Task-NC.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from clrepro.data import imagecheck
from clrepro.data.benchmarks import Benchmark, TaskData
from clrepro.data.core50 import Track, decode_images, load_core50
from clrepro.data.definitions import BenchmarkDef, DataSettings


def _load(defn: BenchmarkDef, settings: DataSettings, check_images: bool) -> Track:
    return load_core50(settings, defn.track, check_counts=defn.track_check_counts,
                       check_images=check_images, eval_stride=defn.eval_stride)


def lists_digest(track: Track) -> str:
    return hashlib.sha256(json.dumps(sorted(track.list_sha256.items())).encode()).hexdigest()


def prepare_track(defn: BenchmarkDef, settings: DataSettings) -> tuple[dict[str, torch.Tensor], dict]:
    """(labels per batch and of the evaluation set, the track's manifest) -- what the data
    rule caches. Raises naming the missing lists or the first missing images."""
    track = _load(defn, settings, check_images=True)
    imagecheck.check(track.root, listed_images(track))
    out: dict[str, torch.Tensor] = {"n_classes": torch.tensor(max(track.classes) + 1),
                                    "lists_sha256": _digest_tensor(lists_digest(track))}
    for t, batch in enumerate(track.batches):
        out[f"train_y/{t}"] = torch.tensor(batch.labels)
    out["eval_y"] = torch.tensor(track.eval.labels)
    if track.eval.tasks is not None:
        out["eval_task"] = torch.tensor(track.eval.tasks)
    return out, {**track.manifest(), "root": str(track.root)}


def listed_images(track: Track) -> list[str]:
    """Every image the track's lists name (relative to its root)."""
    return [p for b in track.batches for p in b.paths] + list(track.eval.paths)


def track_images(defn: BenchmarkDef, settings: DataSettings):
    """(root, listed images) of a CORe50 track as the lists read now."""
    track = _load(defn, settings, check_images=False)
    return track.root, listed_images(track)


def _digest_tensor(hexdigest: str) -> torch.Tensor:
    return torch.tensor(list(bytes.fromhex(hexdigest)), dtype=torch.uint8)


def decode_parallel(track: Track, paths: tuple[str, ...], workers: int = 8) -> torch.Tensor:
    """Decode images with a thread pool (PIL releases the GIL while decoding PNGs)."""
    if not paths:
        return decode_images([], track.root)
    size = max(1, -(-len(paths) // (workers * 4)))
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    with ThreadPoolExecutor(workers) as pool:
        return torch.cat(list(pool.map(lambda c: decode_images(c, track.root), chunks)))


def materialize_track(prepared: dict[str, torch.Tensor], defn: BenchmarkDef,
                      settings: DataSettings) -> Benchmark:
    """Decode the stream and evaluation images of a prepared track. With val_fraction (a
    tuning twin), every round(1 / val_fraction)-th image of each training batch is held out
    of the stream as validation data: one shared set for NI and NIC, each task's own for
    Multi-Task-NC. The evaluation (test) sessions are never among them."""
    track = _load(defn, settings, check_images=False)
    if not torch.equal(_digest_tensor(lists_digest(track)), prepared["lists_sha256"]):
        raise ValueError(f"the CORe50 lists under {track.root} changed since {defn.name} was "
                         f"prepared; restore the official lists or delete its results/data "
                         f"files to prepare it again")
    eval_x = decode_parallel(track, track.eval.paths)
    eval_y = prepared["eval_y"]
    tasks = []
    every = round(1 / defn.val_fraction) if defn.val_fraction else 0
    held: list[tuple[torch.Tensor, torch.Tensor]] = []
    for t, batch in enumerate(track.batches):
        if track.eval.tasks is None:  # NI, NIC: one shared evaluation set (on task 0)
            rows = slice(None) if t == 0 else slice(0, 0)
            test_x, test_y = eval_x[rows], eval_y[rows]
        else:  # Multi-Task-NC: each task is evaluated on its own classes with its label
            keep = prepared["eval_task"] == t
            test_x, test_y = eval_x[keep], eval_y[keep]
        empty = torch.zeros((0, *eval_x.shape[1:]), dtype=torch.uint8)
        train_x, train_y = decode_parallel(track, batch.paths), prepared[f"train_y/{t}"]
        val_x, val_y = empty, torch.zeros(0, dtype=torch.long)
        if every:
            out = torch.arange(len(train_y)) % every == 0
            val_x, val_y, train_x, train_y = train_x[out], train_y[out], train_x[~out], train_y[~out]
            if track.eval.tasks is None:  # gathered on task 0 below
                held.append((val_x, val_y))
                val_x, val_y = empty, torch.zeros(0, dtype=torch.long)
        tasks.append(TaskData(train_x, train_y, val_x, val_y, test_x, test_y,
                              torch.tensor(batch.classes), {"list": batch.list_file}))
    if held:
        tasks[0].val_x = torch.cat([x for x, _ in held])
        tasks[0].val_y = torch.cat([y for _, y in held])
    shape = tuple(tasks[0].train_x.shape[1:])
    return Benchmark(defn, tasks, int(prepared["n_classes"]), shape,
                     int(torch.tensor(shape).prod()))


def describe(manifest: dict[str, Any]) -> dict[str, Any]:
    """The source part of the data rule's manifest for a track."""
    return {"name": "core50", "origin": manifest["root"], "files_md5": {},
            "lists_sha256": manifest["files"], "train": manifest["n_train"],
            "test": manifest["eval"]["n"], "n_classes": len(manifest["classes"]),
            "track": manifest["track"]}
