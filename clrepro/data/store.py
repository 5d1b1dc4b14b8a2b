"""The prepared-benchmark cache: results/data/<benchmark>.pt plus a JSON manifest.

The manifest holds the benchmark definition, the raw files it was built from and the
sha256 of the tensor file. A tensor file that no longer matches (truncated copy, disk
error, a definition changed since) is rebuilt instead of being trained on.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import torch

from clrepro.data.definitions import BenchmarkDef
from clrepro.data.definitions import FORMAT_VERSION, DataSettings
from clrepro.data.kinds import data_kind
from clrepro.fsutil import atomic_path, sha256_file, stable_hash, write_json

log = logging.getLogger(__name__)



class StaleCacheError(RuntimeError):
    """The cached tensors are missing, corrupt or were built from another definition."""


def manifest_path(tensor_path: Path) -> Path:
    return Path(tensor_path).with_suffix(".json")


def definition_hash(defn: BenchmarkDef) -> str:
    return stable_hash({"format": FORMAT_VERSION, **defn.to_dict()})


def build(defn: BenchmarkDef, settings: DataSettings, tensor_path: Path) -> dict[str, Any]:
    """Prepare `defn` from its raw source and write tensors + manifest atomically."""
    tensors, source = data_kind(defn).prepare(defn, settings)
    tensor_path = Path(tensor_path)
    buffer = io.BytesIO()  # saving to a buffer keeps the archive's inner name (and bytes) stable
    torch.save(tensors, buffer)
    with atomic_path(tensor_path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
        digest = sha256_file(tmp)
    manifest = {
        "benchmark": defn.name,
        "definition": defn.to_dict(),
        "definition_hash": definition_hash(defn),
        "source": source,
        "sizes": {k: list(v.shape) if isinstance(v, torch.Tensor) else [len(v)]
                  for k, v in tensors.items() if not k.startswith("param/") and not isinstance(v, str)},
        "sha256": digest,
        "bytes": tensor_path.stat().st_size,
    }
    write_json(manifest_path(tensor_path), manifest)
    log.info("prepared %s -> %s (%.1f MB, sha256 %s...)", defn.name, tensor_path,
             manifest["bytes"] / 1e6, digest[:12])
    return manifest


def load(defn: BenchmarkDef, tensor_path: Path) -> dict[str, torch.Tensor]:
    """Load verified tensors; raise StaleCacheError when they cannot be trusted."""
    tensor_path = Path(tensor_path)
    mpath = manifest_path(tensor_path)
    if not tensor_path.is_file() or not mpath.is_file():
        raise StaleCacheError(f"{tensor_path} or its manifest is missing")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise StaleCacheError(f"{mpath} is not valid JSON ({exc})") from exc
    if manifest.get("definition_hash") != definition_hash(defn):
        held = manifest.get("benchmark")
        if held != defn.name:
            raise StaleCacheError(f"{tensor_path} holds benchmark {held}, not {defn.name}")
        raise StaleCacheError(f"{tensor_path} was built from another definition of {defn.name}")
    digest = sha256_file(tensor_path)
    if digest != manifest.get("sha256"):
        raise StaleCacheError(f"{tensor_path} fails its checksum (sha256 {digest[:12]}..., "
                              f"manifest says {str(manifest.get('sha256'))[:12]}...)")
    return torch.load(tensor_path, weights_only=True)


def damaged_images(defn: BenchmarkDef, settings: DataSettings, tensors: dict[str, Any],
                   decode: bool = False) -> tuple[int, list[tuple[str, str]]]:
    """(images checked, (path, why) of the damaged ones) of a file-backed benchmark;
    `decode`: decode every image, not only its header (and a PNG's CRCs)."""
    from clrepro.data.imagecheck import find_bad

    kind = data_kind(defn)
    if not kind.file_backed:
        return 0, []
    root, paths = kind.images(defn, settings, tensors)
    paths = list(dict.fromkeys(paths))
    return len(paths), find_bad(root, paths, decode)


def load_or_rebuild(defn: BenchmarkDef, settings: DataSettings, tensor_path: Path,
                    rebuild: bool = True):
    """The verified tensors, rebuilt first if stale -- unless `rebuild` is false (a file the
    user handed over, e.g. `clrepro run --data`: it is never written), then StaleCacheError."""
    try:
        return load(defn, tensor_path)
    except StaleCacheError as exc:
        if not rebuild:
            raise StaleCacheError(
                f"{exc}; it was given as input, so it is left as it is: give the file "
                f"`clrepro data {defn.name}` builds (or leave out --data to use the plan's "
                f"own cache)") from exc
        log.warning("%s; rebuilding it from the raw data", exc)
        build(defn, settings, tensor_path)
        return load(defn, tensor_path)
