import dataclasses
import io
import json
import shutil
import urllib.error
import urllib.request

import pytest
import torch
from core50_tree import (
    FRAMES,
    LIST_DIRS,
    N_OBJECTS,
    TEST_SESSIONS,
    TRAIN_SESSIONS,
    build_core50_tree,
    pixels,
    zip_tree,
)

from clrepro.data import core50
from clrepro.data.core50 import (
    ARCHIVES,
    decode_images,
    load_core50,
    load_track,
    locate_core50,
    verify_manifest,
)
from clrepro.data.definitions import DataSettings
from clrepro.data.sources import ChecksumError, MissingDataError


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("core50")
    return root, build_core50_tree(root)


@pytest.fixture
def fresh_tree(tmp_path):
    root = tmp_path / "core50"
    return root, build_core50_tree(root)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("track", ["ni", "mtnc", "nic"])
def test_tracks_yield_official_batches(tree, track):
    root, expected = tree
    t = load_track(root, track, check_counts=False)
    exp = expected[track]
    assert [list(zip(b.paths, b.labels)) for b in t.batches] == exp["batches"]
    assert [b.task for b in t.batches] == (exp["tasks"] or [None] * len(exp["batches"]))
    assert list(zip(t.eval.paths, t.eval.labels)) == exp["eval"]
    assert (list(t.eval.tasks) if t.eval.tasks is not None else None) == exp["eval_tasks"]
    assert t.classes == tuple(range(N_OBJECTS))
    assert all(p.startswith("core50_128x128/s") for b in t.batches for p in b.paths)
    assert all(int(p.split("/")[1][1:]) in TEST_SESSIONS for p in t.eval.paths)


def test_track_shapes_match_their_protocols(tree):
    root, _ = tree
    ni = load_track(root, "ni", check_counts=False)
    assert len(ni.batches) == len(TRAIN_SESSIONS)
    assert all(b.classes == tuple(range(N_OBJECTS)) for b in ni.batches)  # same classes each batch
    mtnc = load_track(root, "mtnc", check_counts=False)
    assert mtnc.task_classes == ((0, 1), (2, 3), (4, 5))  # labels renumbered per appearance
    nic = load_track(root, "nic", check_counts=False)
    assert all(len(b.classes) == 1 and len(b) == FRAMES for b in nic.batches)
    assert ni.task_classes is None and nic.eval.tasks is None


def test_official_batch_counts_are_required_by_default(tree):
    root, _ = tree
    with pytest.raises(MissingDataError, match=r"5 CORe50 list file\(s\) missing") as err:
        load_track(root, "ni")  # the challenge's NI has 8 batches; the tree has 3
    assert "train_batch_03_filelist.txt" in str(err.value)


def test_unknown_track_lists_the_valid_ones(tree):
    with pytest.raises(KeyError, match="valid tracks: ni, mtnc, nic"):
        load_track(tree[0], "nc")


def test_missing_filelist_is_named(fresh_tree):
    root, _ = fresh_tree
    run_dir = root / LIST_DIRS["ni"] / "run0"
    (run_dir / "train_batch_01_filelist.txt").unlink()
    (run_dir / "test_filelist.txt").unlink()
    with pytest.raises(MissingDataError) as err:
        load_track(root, "ni", check_counts=False)
    text = str(err.value)
    assert str(run_dir / "train_batch_01_filelist.txt") in text
    assert str(run_dir / "test_filelist.txt") in text
    assert "batches_filelists.zip" in text and "data.dir/core50" in text
    shutil.rmtree(root / LIST_DIRS["nic"])
    with pytest.raises(MissingDataError, match=r"NIC_v2_391/run0[\s\S]*batches_filelists_NICv2"):
        load_track(root, "nic", check_counts=False)


def test_missing_images_name_the_first_ones(fresh_tree):
    root, expected = fresh_tree
    gone = [p for p, _ in expected["ni"]["batches"][1][:7]]
    for p in gone:
        (root / p).unlink()
    with pytest.raises(MissingDataError) as err:
        load_track(root, "ni", check_counts=False)
    text = str(err.value)
    assert all(str(root / p) in text for p in gone[:5])
    assert str(root / gone[5]) not in text and "and 2 more" in text
    assert "core50_128x128.zip" in text
    load_track(root, "ni", check_counts=False, check_images=False)  # lists alone still read


def test_manifest_records_lists_and_detects_changes(fresh_tree):
    root, _ = fresh_tree
    track = load_track(root, "mtnc", check_counts=False)
    manifest = json.loads(json.dumps(track.manifest()))  # JSON-able
    assert manifest["track"] == "mtnc" and manifest["run"] == 0
    assert [b["n"] for b in manifest["batches"]] == [len(b) for b in track.batches]
    assert manifest["task_classes"] == [[0, 1], [2, 3], [4, 5]]
    assert manifest["eval"]["n"] == len(TEST_SESSIONS) * N_OBJECTS * FRAMES
    assert len(manifest["files"]) == 4 and all(len(v) == 64 for v in manifest["files"].values())
    verify_manifest(root, manifest)

    changed = root / LIST_DIRS["mtnc"] / "run0" / "train_batch_02_filelist.txt"
    changed.write_text("".join(changed.read_text().splitlines(keepends=True)[:-1]))
    again = load_track(root, "mtnc", check_counts=False).manifest()
    rel = changed.relative_to(root).as_posix()
    assert again["files"][rel] != manifest["files"][rel]
    assert again["batches"][2]["n"] == manifest["batches"][2]["n"] - 1
    with pytest.raises(ValueError, match="train_batch_02_filelist.txt: sha256 differs"):
        verify_manifest(root, manifest)


def test_eval_stride_keeps_every_nth_image_per_task(tree):
    root, _ = tree
    full = load_track(root, "mtnc", check_counts=False)
    reduced = load_track(root, "mtnc", check_counts=False, eval_stride=2)
    for t in range(3):
        rows = [p for p, task in zip(full.eval.paths, full.eval.tasks) if task == t]
        kept = [p for p, task in zip(reduced.eval.paths, reduced.eval.tasks) if task == t]
        assert kept == rows[::2]


def test_lists_breaking_the_protocol_are_refused(fresh_tree):
    root, _ = fresh_tree
    run_dir = root / LIST_DIRS["ni"] / "run0"
    first = run_dir / "train_batch_00_filelist.txt"
    good = first.read_text()
    first.write_text(good + "s3/o1/C_03_01_000.png 0\n")  # a test-session image in training
    with pytest.raises(ValueError, match="session 3"):
        load_track(root, "ni", check_counts=False)
    first.write_text(good.replace("s1/o2/C_01_02_000.png 1", "s1/o2/C_01_02_000.png 4"))
    with pytest.raises(ValueError, match="label 4"):
        load_track(root, "ni", check_counts=False)
    first.write_text(good + "not a list line\n")
    with pytest.raises(ValueError, match="train_batch_00_filelist.txt:"):
        load_track(root, "ni", check_counts=False)


def test_offline_without_data_names_files_and_urls(tmp_path, no_network):
    settings = DataSettings(dir=tmp_path / "raw", download=False)
    with pytest.raises(MissingDataError) as err:
        locate_core50(settings, "nic")
    text = str(err.value)
    for key in ("images", "lists_nicv2"):
        assert ARCHIVES[key].name in text and ARCHIVES[key].url in text
    assert ARCHIVES["lists"].name not in text  # NIC does not need the NI/NC lists
    assert str(tmp_path / "raw" / "core50") in text and "download: true" in text


def test_failed_download_is_reported(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    settings = DataSettings(dir=tmp_path, download=True)
    with pytest.raises(MissingDataError, match="download failed: URLError"):
        locate_core50(settings, "ni")
    assert not list((tmp_path / "core50").glob("*.zip"))  # nothing half-written left


def _serve(monkeypatch, archives, tmp_path):
    """Point ARCHIVES at the synthetic zips and answer urlopen from them."""
    by_url = {}
    for key, (path, md5) in archives.items():
        spec = dataclasses.replace(ARCHIVES[key], md5=md5)
        monkeypatch.setitem(core50.ARCHIVES, key, spec)
        by_url[spec.url] = path.read_bytes()
    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO(by_url[url])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return calls


def test_download_verifies_md5_and_unpacks(tmp_path, monkeypatch, fresh_tree):
    src, expected = fresh_tree
    calls = _serve(monkeypatch, zip_tree(src, tmp_path / "zips"), tmp_path)
    settings = DataSettings(dir=tmp_path / "raw", download=True)
    track = load_core50(settings, "mtnc", check_counts=False)
    assert track.root == tmp_path / "raw" / "core50"
    assert [list(zip(b.paths, b.labels)) for b in track.batches] == expected["mtnc"]["batches"]
    assert len(calls) == 2  # images + NI/NC lists; the NICv2 lists are not needed
    assert not [p for p in track.root.iterdir() if p.name.startswith(".")]  # no temp dirs left
    load_core50(settings, "mtnc", check_counts=False)
    assert len(calls) == 2  # found, not downloaded again


def test_download_with_wrong_md5_is_discarded(tmp_path, monkeypatch, fresh_tree):
    src, _ = fresh_tree
    archives = zip_tree(src, tmp_path / "zips")
    archives["images"] = (archives["images"][0], "0" * 32)
    _serve(monkeypatch, archives, tmp_path)
    with pytest.raises(ChecksumError, match="discarded"):
        locate_core50(DataSettings(dir=tmp_path / "raw", download=True), "ni")
    assert not (tmp_path / "raw" / "core50" / "core50_128x128.zip").exists()


def test_archives_placed_by_hand_are_unpacked_offline(tmp_path, monkeypatch, fresh_tree,
                                                      no_network):
    src, _ = fresh_tree
    archives = zip_tree(src, tmp_path / "raw" / "core50")
    for key, (_, md5) in archives.items():
        monkeypatch.setitem(core50.ARCHIVES, key, dataclasses.replace(ARCHIVES[key], md5=md5))
    settings = DataSettings(dir=tmp_path / "raw", download=False)
    track = load_core50(settings, "nic", check_counts=False)
    assert len(track.batches) == len(TRAIN_SESSIONS) * N_OBJECTS


def test_decode_images(tree):
    root, expected = tree
    (p0, y0), (p1, _) = expected["ni"]["batches"][0][:2]
    x = decode_images([p0, p1], root)
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.uint8
    assert torch.equal(x[0], torch.from_numpy(pixels(1, 1, 0)).permute(2, 0, 1))
    assert decode_images([]).shape == (0, 3, 128, 128)
