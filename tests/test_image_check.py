"""Damaged image files are named by the data step, by `clrepro data --check` (which exits
non-zero when anything needs doing) and, if one slips through, by the run that fails to
decode it (issue 18 item 7)."""

from __future__ import annotations

import pytest

from clrepro import cli
from clrepro.data import store
from clrepro.data.definitions import BenchmarkDef, DataSettings
from clrepro.data.tracks import materialize_track
from core50_tree import TRAIN_SESSIONS, build_core50_tree, image_rel
from tests.imagenet_tree import make_tree

SUBSET = "imagenet_subset_b50_n5@mnemonics2020"


def ni_track() -> BenchmarkDef:
    return BenchmarkDef("core50_ni@test", "core50", kind="core50", track="ni",
                        n_tasks=len(TRAIN_SESSIONS), scenario="domain_incremental",
                        shared_test=True, track_check_counts=False)


def truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def test_a_truncated_core50_png_is_named_by_the_data_step(tmp_path):
    build_core50_tree(tmp_path / "core50")
    bad = tmp_path / "core50" / "core50_128x128" / image_rel(TRAIN_SESSIONS[0], 1, 0)
    truncate(bad)
    with pytest.raises(ValueError, match=str(bad)):
        store.build(ni_track(), DataSettings(dir=tmp_path, download=False), tmp_path / "t.pt")
    assert not (tmp_path / "t.pt").exists()


def test_a_png_damaged_after_the_data_step_is_named_by_the_run(tmp_path):
    build_core50_tree(tmp_path / "core50")
    settings = DataSettings(dir=tmp_path, download=False)
    store.build(ni_track(), settings, tmp_path / "t.pt")
    bad = tmp_path / "core50" / "core50_128x128" / image_rel(TRAIN_SESSIONS[1], 2, 1)
    truncate(bad)
    with pytest.raises(ValueError, match=f"{bad} cannot be decoded.*Fix: replace"):
        materialize_track(store.load(ni_track(), tmp_path / "t.pt"), ni_track(), settings)


def test_a_zero_byte_imagenet_jpeg_is_named_by_the_data_step(tmp_path):
    make_tree(tmp_path / "imagenet", train=1, val=1)
    from clrepro.papers.mnemonics2020 import protocol

    defn = protocol.benchmarks("full", protocol.OPTION_DEFAULTS)[SUBSET]
    empty = next((tmp_path / "imagenet" / "train").rglob("*.JPEG"))
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=f"{empty}: empty file"):
        store.build(defn, DataSettings(dir=tmp_path, download=False), tmp_path / "s.pt")


def test_data_check_names_damaged_images_and_exits_nonzero(tmp_path, capsys):
    make_tree(tmp_path / "imagenet", train=1, val=1)
    config = tmp_path / "c.yaml"
    config.write_text(f"scale: full\npapers: [mnemonics2020]\nresults: {tmp_path / 'results'}\n"
                      f"data: {{dir: {tmp_path}, download: false}}\n")
    args = ["data", "--configfile", str(config), SUBSET]
    assert cli.main(args) == 0
    assert cli.main([*args[:1], "--check", *args[1:]]) == 0
    manifest = tmp_path / "results" / "data" / f"{SUBSET}.json"
    manifest.unlink()
    assert cli.main([*args[:1], "--check", *args[1:]]) == 1
    assert f"rebuild  {SUBSET}" in capsys.readouterr().out
    assert cli.main(args) == 0
    jpeg = sorted((tmp_path / "imagenet" / "val").rglob("*.JPEG"))[3]
    truncate(jpeg, 0.6)  # the header is intact: only decoding finds it
    assert cli.main([*args[:1], "--check", "--decode", *args[1:]]) == 1
    assert f"damaged  {SUBSET}  {jpeg}" in capsys.readouterr().out
