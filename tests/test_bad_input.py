"""Each kind of bad input gets a named error that says what to do, and loses nothing."""

import pytest
import torch

from clrepro.cli import main
from clrepro.methods import get_method
from clrepro.methods.gem import GEM

from test_methods import HP, context
from test_workflow import snakemake, workdir
from conftest import tiny_benchmark


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(KeyError, match="unknown method 'gme'.*gem.*icarl"):
        get_method("gme")


def test_cli_names_what_is_planned(capsys):
    assert main(["run", "results/runs/perm_fmnist@gem2017.quick/gme/m0-e1/s0.json"]) == 2
    err = capsys.readouterr().err
    assert "methods planned on perm_fmnist@gem2017.quick" in err and "gem" in err
    assert main(["run", "results/runs/perm_mnist@gem2017.quick/gem/m0-e1/s0.json"]) == 2
    assert "planned benchmarks" in capsys.readouterr().err
    assert main(["render", "gem.fig9"]) == 2
    err = capsys.readouterr().err
    assert "unknown artifact 'gem.fig9'; planned:" in err and "gem.fig1a" in err
    assert main(["data", "perm_fmnist@gem2017"]) == 2
    assert "unknown benchmark(s) perm_fmnist@gem2017" in capsys.readouterr().err


def test_missing_dataset_offline_stops_with_the_files_to_get(tmp_path):
    cwd = workdir(tmp_path)
    (cwd / "offline.yaml").write_text(
        f"scale: full\ndata:\n  dir: {tmp_path / 'nothing-here'}\n  download: false\n")
    out = snakemake("results/data/perm_mnist@gem2017.pt", "--cores", "1", "--configfile",
                    "offline.yaml", cwd=cwd, check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "MissingDataError" in text and "train-images-idx3-ubyte.gz" in text
    assert str(tmp_path / "nothing-here" / "mnist") in text
    assert not (cwd / "results/data/perm_mnist@gem2017.pt").exists()


def test_gem_counts_non_positive_definite_qps():
    """Two previous tasks with identical memories make M M^T singular; with no ridge the
    solver reports it, GEM raises the ridge, projects, and counts the retry."""
    torch.manual_seed(0)
    bench = tiny_benchmark(n_tasks=3)
    gem = GEM(context(bench), {**HP, "memory": 30, "gem.qp_eps": 0.0, "gem.margin": 0.0})
    task = bench.tasks[0]
    x, y = task.train_x[:10].float() / 255, task.train_y[:10]
    for t in (0, 1):
        gem.begin_task(t)
        gem.observe(x, y, torch.full_like(y, t))
    gem.begin_task(2)
    for _ in range(20):
        gem.observe(x, (y + 1) % 10, torch.full_like(y, 2))  # conflicts with both memories
    assert gem.counters["projections"] > 0 and gem.counters["qp_retries"] > 0
    assert gem.counters.get("qp_failures", 0) == 0
    assert gem.parameters_finite()
