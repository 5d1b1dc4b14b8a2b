"""DRL's lambda sweep (spec §4.2, D4): each track's lambda is chosen on a validation set held
out of its training stream -- never test data -- by tuning runs on the track's `.val` twin,
and the table runs take the value with the best validation accuracy."""

import json

import pytest
import torch
from core50_tree import build_core50_tree

from clrepro import plan
from clrepro.data import store
from clrepro.data.benchmarks import materialize, prepare
from clrepro.data.definitions import DataSettings
from clrepro.data.sources import synthetic
from clrepro.data.tracks import materialize_track
from clrepro.papers.drl2020 import protocol
from clrepro.spec import RunSpec
from clrepro.tuning import resolve

from test_drl import _track_def


def _rows(x: torch.Tensor) -> set[bytes]:
    return {bytes(row.numpy().tobytes()) for row in x.reshape(len(x), -1)}


@pytest.mark.parametrize("track", protocol.TRACKS)
def test_stand_in_validation_is_held_out_of_the_stream_and_disjoint_from_test(track):
    defs = protocol.benchmarks("smoke", protocol.OPTION_DEFAULTS)
    main, twin = defs[protocol.track_bench(track, "smoke")], defs[protocol.track_bench(track, "smoke", True)]
    raw = synthetic("fashion_mnist", (1, 28, 28), 10, train_per_class=60, test_per_class=20)
    prepared, prepared_main = prepare(twin, raw), prepare(main, raw)
    pools = torch.cat([prepared[k] for k in prepared if k.startswith("pool/")])
    val = torch.cat([prepared[k] for k in prepared if k.startswith("val/")])
    assert len(val) > 0 and not set(val.tolist()) & set(pools.tolist())
    bench, plain = materialize(prepared, twin, 0), materialize(prepared_main, main, 0)
    val_x = torch.cat([x for x, _ in bench.eval_sets("val")])
    test_x = torch.cat([x for x, _ in bench.eval_sets("test")])
    train_x = torch.cat([t.train_x for t in bench.tasks])
    assert len(val_x) == len(val)
    assert not _rows(val_x) & _rows(test_x) and not _rows(val_x) & _rows(train_x)
    if track != "mtnc":  # the stream itself is the main runs' (validation from spare images)
        assert all(torch.equal(a.train_x, b.train_x) for a, b in zip(bench.tasks, plain.tasks))
    assert all(len(t.val_y) == 0 for t in plain.tasks)  # the table runs have no validation set


@pytest.mark.parametrize("track", protocol.TRACKS)
def test_core50_twin_holds_out_stream_images_never_the_test_sessions(tmp_path, track):
    build_core50_tree(tmp_path / "core50")
    settings = DataSettings(dir=tmp_path, download=False)
    main, twin = _track_def(track), _track_def(track, val_fraction=0.25)
    store.build(twin, settings, tmp_path / "t.pt")
    store.build(main, settings, tmp_path / "m.pt")
    bench = materialize_track(store.load(twin, tmp_path / "t.pt"), twin, settings)
    plain = materialize_track(store.load(main, tmp_path / "m.pt"), main, settings)
    val_x = torch.cat([x for x, _ in bench.eval_sets("val")])
    test_x = torch.cat([x for x, _ in bench.eval_sets("test")])
    train = torch.cat([t.train_x for t in bench.tasks])
    assert len(val_x) > 0 and not _rows(val_x) & _rows(test_x) and not _rows(val_x) & _rows(train)
    # held out of the stream: validation + the twin's stream = the main runs' stream
    assert _rows(val_x) | _rows(train) == _rows(torch.cat([t.train_x for t in plain.tasks]))


def _record(root, spec: RunSpec, val_acc: list[float], status="ok"):
    path = spec.path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    lam = dict(spec.overrides)["drl.lambda"]
    path.write_text(json.dumps({"status": status, "hp": {"drl.lambda": lam}, "R": [val_acc]}))


def test_table_runs_take_the_lambda_with_the_best_validation_accuracy(tmp_path):
    p = plan.build({"scale": "quick", "papers": ["drl2020"], "results": str(tmp_path)})
    runs = [j for j in p.runs.values() if j.spec.benchmark == protocol.track_bench("ni", "quick")
            and j.hp["drl.lambda"]]
    assert runs and all(isinstance(j.hp["drl.lambda"], dict) for j in runs)
    grid = runs[0].needs
    assert {dict(s.overrides)["drl.lambda"] for s in grid} == set(protocol.LAMBDA_GRID)
    assert all(s.benchmark.endswith(".val") and dict(s.overrides)["tune"] for s in grid)
    assert all(p.runs[str(s.path(tmp_path))].hp["eval_split"] == "val" for s in grid)
    # hand-built records: 1e-3 has the best validation accuracy, 1e-2 failed
    scores = {1e-4: [40.0], 1e-3: [55.0], 1e-2: [90.0]}
    for s in grid:
        lam = dict(s.overrides)["drl.lambda"]
        _record(tmp_path, s, scores[lam], status="failed" if lam == 1e-2 else "ok")
    hp, chosen = resolve(runs[0].hp, tmp_path)
    assert hp["drl.lambda"] == 1e-3 and chosen["drl.lambda"]["val_acc"] == 55.0
    assert set(chosen["drl.lambda"]["grid"]) == {"0.0001", "0.001"}


def test_a_fixed_lambda_option_skips_the_sweep():
    p = plan.build({"scale": "quick", "papers": ["drl2020"], "options": {"drl2020": {"drl.lambda": 0.01}}})
    assert not any(j.spec.benchmark.endswith(".val") for j in p.runs.values())
    assert {j.hp["drl.lambda"] for j in p.runs.values()} == {0.0, 0.01}
