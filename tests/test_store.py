"""The prepared-benchmark cache: checksums, stale definitions, rebuilds."""

import json

import pytest

from clrepro.data import store
from clrepro.data.benchmarks import BenchmarkDef
from clrepro.data.sources import DataSettings

SETTINGS = DataSettings(synthetic=True, download=False)
DEFN = BenchmarkDef("perm@test", "mnist", "permuted", 2, "domain_incremental", train_per_task=20,
                    test_per_task=30)


def test_build_then_load(tmp_path):
    path = tmp_path / "perm@test.pt"
    manifest = store.build(DEFN, SETTINGS, path)
    assert manifest["sha256"] and json.loads(store.manifest_path(path).read_text()) == manifest
    tensors = store.load(DEFN, path)
    assert tensors["test_x/1"].shape == (30, 1, 28, 28)
    assert not list(tmp_path.glob(".*.tmp")), "temporary files must not be left behind"


def test_truncated_cache_is_detected_and_rebuilt(tmp_path, caplog):
    path = tmp_path / "perm@test.pt"
    store.build(DEFN, SETTINGS, path)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(store.StaleCacheError, match="checksum"):
        store.load(DEFN, path)
    tensors = store.load_or_rebuild(DEFN, SETTINGS, path)
    assert "rebuilding" in caplog.text
    assert path.read_bytes() == good and tensors["n_classes"] == 10


def test_changed_definition_is_stale(tmp_path):
    path = tmp_path / "perm@test.pt"
    store.build(DEFN, SETTINGS, path)
    with pytest.raises(store.StaleCacheError, match="another definition"):
        store.load(DEFN.replace(data_seed=3), path)


def test_missing_or_garbled_manifest(tmp_path):
    path = tmp_path / "perm@test.pt"
    with pytest.raises(store.StaleCacheError, match="missing"):
        store.load(DEFN, path)
    store.build(DEFN, SETTINGS, path)
    store.manifest_path(path).write_text("{not json")
    with pytest.raises(store.StaleCacheError, match="not valid JSON"):
        store.load(DEFN, path)
