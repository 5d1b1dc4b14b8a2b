"""How each kind of benchmark data is prepared, loaded for a run and checked.

Three kinds, chosen by the benchmark definition alone (`data_kind`):
  tensors       digits, MNIST, CIFAR, ...: prepared once into one tensor file, held in memory
  image folder  ImageNet-style folders: the file lists are prepared, images decoded as used
  track         a CORe50 track: the sessions' frame lists, decoded once per run
The prepared-data cache (clrepro.data.store) and the training job (clrepro.job) ask the kind
instead of branching on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from clrepro.data import benchmarks, imagefolder, tracks
from clrepro.data.definitions import BenchmarkDef, DataSettings
from clrepro.data.sources import load_source

log = logging.getLogger("clrepro")


@dataclass(frozen=True)
class DataKind:
    name: str
    # (definition, settings) -> (tensors to cache, a description of the raw source)
    prepare: Callable[[BenchmarkDef, DataSettings], tuple[dict[str, Any], dict[str, Any]]]
    # (cached tensors, definition, settings, run seed) -> the run's Benchmark
    materialize: Callable[[dict[str, Any], BenchmarkDef, DataSettings, int], benchmarks.Benchmark]
    # (definition, settings, cached tensors) -> (root, image paths under it); None: no files
    images: Callable[[BenchmarkDef, DataSettings, dict[str, Any]], tuple[Path, list[str]]] | None

    @property
    def file_backed(self) -> bool:
        """Images are decoded from files while the run trains (DataLoader workers help)."""
        return self.images is not None


def _prepare_tensors(defn: BenchmarkDef, settings: DataSettings):
    raw = load_source(defn.source, settings)
    source = {"name": raw.name, "origin": raw.origin, "files_md5": raw.files,
              "train": len(raw.train_y), "test": len(raw.test_y),
              "image_shape": list(raw.image_shape), "n_classes": raw.n_classes}
    return benchmarks.prepare(defn, raw), source


def _prepare_track(defn: BenchmarkDef, settings: DataSettings):
    tensors, track = tracks.prepare_track(defn, settings)
    return tensors, tracks.describe(track)


def _materialize_folder(tensors, defn, settings, seed):
    bench = imagefolder.materialize_folder(tensors, defn, settings)
    log.info("%d training and %d test images of %s, decoded as they are used", sum(
        len(t.train_y) for t in bench.tasks), sum(len(t.test_y) for t in bench.tasks), defn.name)
    return bench


def _materialize_track(tensors, defn, settings, seed):
    bench = tracks.materialize_track(tensors, defn, settings)
    log.info("decoded %d training and %d evaluation images of %s", sum(
        len(t.train_y) for t in bench.tasks), sum(len(y) for _, y in bench.eval_sets()), defn.name)
    return bench


TENSORS = DataKind("tensors", _prepare_tensors,
                   lambda tensors, defn, settings, seed: benchmarks.materialize(tensors, defn, seed),
                   None)
IMAGE_FOLDER = DataKind("image folder", imagefolder.prepare_folder, _materialize_folder,
                        lambda defn, settings, tensors: (imagefolder.resolve_root(defn.source, settings),
                                                         imagefolder.folder_images(tensors)))
TRACK = DataKind("track", _prepare_track, _materialize_track,
                 lambda defn, settings, tensors: tracks.track_images(defn, settings))


def data_kind(defn: BenchmarkDef) -> DataKind:
    if defn.track is not None:
        return TRACK
    return IMAGE_FOLDER if defn.file_backed else TENSORS
