"""Reruns after a change (issue 18): a checkpoint made under another protocol (hyperparameters
or benchmark) is never resumed and never touches the model; one that does not load is moved
aside instead of failing every rerun. Through the trainers, `clrepro run` and Snakemake."""

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clrepro import plan
from clrepro.data import store
from clrepro.data.benchmarks import BenchmarkDef, materialize, prepare
from clrepro.data.sources import synthetic
from clrepro.job import checkpoint_path
from clrepro.methods import METHODS
from clrepro.papers.mnemonics2020 import classes
from clrepro.phases import train_phases
from clrepro.train import train_run

from conftest import ROOT, tiny_benchmark
from test_mnemonics import HP as CIL_HP
from test_train import HP as ONLINE_HP

CPU = torch.device("cpu")
# the phase trainer's quickest weight-transfer run: LUCIR with herding exemplars
LUCIR = {**CIL_HP, "exemplars.kind": "herding", "mnemonics.adjust_old": False, "finetune.epochs": 0}


def cil_bench(order=classes.FMNIST_ORDER):
    raw = synthetic("fmnist", (1, 28, 28), 10, train_per_class=12, test_per_class=6)
    defn = BenchmarkDef("cil@test", "fashion_mnist", "split", 3, "class_incremental",
                        classes_per_task=2, first_task_classes=4, class_order="list",
                        class_list=tuple(order), remap_labels=True)
    return materialize(prepare(defn, raw), defn, 0)


def aside(ckpt: Path) -> list[Path]:
    return sorted(ckpt.parent.glob(ckpt.name + ".unused-*"))


def test_phase_trainer_never_resumes_a_checkpoint_of_other_hyperparameters(tmp_path, caplog):
    """Item 1: the stale checkpoint's network structure (grown heads, transferred weights)
    must not leak into the run; the result equals a fresh run's."""
    ckpt = tmp_path / ".s0.ckpt.pt"
    train_phases(cil_bench(), METHODS["lucir"], LUCIR, 0, 1, CPU, checkpoint=ckpt)
    assert ckpt.is_file()  # the trainer leaves it (the job removes it after the record)
    changed = {**LUCIR, "lr": 0.02}
    fresh = train_phases(cil_bench(), METHODS["lucir"], changed, 0, 1, CPU)
    with caplog.at_level(logging.WARNING, logger="clrepro"):
        rerun = train_phases(cil_bench(), METHODS["lucir"], changed, 0, 1, CPU, checkpoint=ckpt)
    assert rerun["status"] == "ok" and rerun["timings"]["resumed"] == 0
    assert rerun["R"] == fresh["R"]
    moved = aside(ckpt)
    assert len(moved) == 1 and str(ckpt) in caplog.text and moved[0].name in caplog.text


def test_phase_trainer_never_resumes_a_checkpoint_of_another_benchmark(tmp_path):
    """Item 2 (phase trainer): same hyperparameters and tensor shapes, another class order."""
    ckpt = tmp_path / ".s0.ckpt.pt"
    other = [*classes.FMNIST_ORDER[4:], *classes.FMNIST_ORDER[:4]]
    train_phases(cil_bench(other), METHODS["lucir"], LUCIR, 0, 1, CPU, checkpoint=ckpt)
    fresh = train_phases(cil_bench(), METHODS["lucir"], LUCIR, 0, 1, CPU)
    rerun = train_phases(cil_bench(), METHODS["lucir"], LUCIR, 0, 1, CPU, checkpoint=ckpt)
    assert rerun["timings"]["resumed"] == 0 and rerun["R"] == fresh["R"]


def test_online_trainer_never_resumes_a_checkpoint_of_another_data_seed(tmp_path):
    """Item 2 (online trainer): a data_seed change draws other permutations."""
    ckpt = tmp_path / ".s0.ckpt.pt"
    method = METHODS["gem"]
    train_run(tiny_benchmark(data_seed=0), method, ONLINE_HP, 0, 1, CPU, ckpt)
    fresh = train_run(tiny_benchmark(data_seed=1), method, ONLINE_HP, 0, 1, CPU)
    rerun = train_run(tiny_benchmark(data_seed=1), method, ONLINE_HP, 0, 1, CPU, ckpt)
    assert rerun["timings"]["resumed"] == 0
    assert rerun["R"] == fresh["R"] and rerun["curve"] == fresh["curve"]
    assert len(aside(ckpt)) == 1


def test_a_checkpoint_that_does_not_load_is_moved_aside_not_a_crash_loop(tmp_path, monkeypatch):
    """Item 3: a checkpoint of this protocol whose network does not fit (the state a failed
    rerun used to leave) is moved aside and the run starts from a freshly built model."""
    from clrepro.methods import cil

    ckpt = tmp_path / ".s0.ckpt.pt"
    real = cil.ClassIncremental.end_task

    def crash_in_phase_1(self, t, data):
        if t == 1:
            raise RuntimeError("killed")
        return real(self, t, data)

    monkeypatch.setattr(cil.ClassIncremental, "end_task", crash_in_phase_1)
    with pytest.raises(RuntimeError, match="killed"):
        train_phases(cil_bench(), METHODS["lucir"], LUCIR, 0, 1, CPU, checkpoint=ckpt)
    monkeypatch.setattr(cil.ClassIncremental, "end_task", real)
    blob = torch.load(ckpt, weights_only=True)
    assert blob["state"]["phase"] == 1  # the network has grown: 6 outputs
    blob["state"]["phase"], blob["state"]["stage"] = 0, "train"  # ... but claims 4
    torch.save(blob, ckpt)
    fresh = train_phases(cil_bench(), METHODS["lucir"], LUCIR, 0, 1, CPU)
    rerun = train_phases(cil_bench(), METHODS["lucir"], LUCIR, 0, 1, CPU, checkpoint=ckpt)
    assert rerun["R"] == fresh["R"] and len(aside(ckpt)) == 1


# ------------------------------------------------------------------ through clrepro run

RUN = "results/runs/fmnist_b5_n5@mnemonics2020.smoke/lucir/m20-e2+variant=ours/s0.json"


def smoke_plan():
    return plan.build({"scale": "smoke", "papers": ["mnemonics2020"], "data": {"synthetic": True}})


def stale_checkpoint(desc: dict, data: Path, where: Path, monkeypatch) -> None:
    """The checkpoint a run of `desc` leaves when killed after its last phase (what a kill,
    an option change and a rerun find)."""
    from clrepro import job

    real = job.train_phases

    def keep(*args, checkpoint, **kwargs):
        out = real(*args, checkpoint=checkpoint, **kwargs)
        shutil.copy(checkpoint, where)
        return out

    monkeypatch.setattr(job, "train_phases", keep)
    out = where.parent / "stale" / Path(RUN).relative_to("results")
    job.run_job(desc, out, data, device="cpu")
    monkeypatch.setattr(job, "train_phases", real)


@pytest.fixture(scope="module")
def smoke_job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rerun")
    p = smoke_plan()
    job = p.run_job(RUN)
    data = tmp / "bench.pt"
    store.build(job.benchmark, p.data, data)
    desc = job.description(p.data)
    assert desc["hp"]["weight_transfer"]
    return tmp, desc, data


def clrepro_run(out: Path, desc: dict, data: Path):
    return subprocess.run([sys.executable, "-m", "clrepro", "run", str(out), "--job", json.dumps(desc),
                           "--data", str(data), "--device", "cpu"], capture_output=True, text=True,
                          timeout=300)


def test_clrepro_run_after_an_option_change_equals_a_fresh_run(smoke_job, tmp_path, monkeypatch):
    """Items 1 and 3 through the CLI: kill, change an option, rerun (twice)."""
    _, desc, data = smoke_job
    before = {**desc, "hp": {**desc["hp"], "lr": desc["hp"]["lr"] * 2}}
    out = tmp_path / RUN
    out.parent.mkdir(parents=True)
    stale_checkpoint(before, data, checkpoint_path(out), monkeypatch)
    fresh = tmp_path / "fresh" / RUN
    assert clrepro_run(fresh, desc, data).returncode == 0
    first = clrepro_run(out, desc, data)
    assert first.returncode == 0, first.stderr
    assert "moved aside" in first.stderr and checkpoint_path(out).name in first.stderr
    got, want = json.loads(out.read_text()), json.loads(fresh.read_text())
    assert got["status"] == "ok" and got["timings"]["resumed"] == 0
    assert got["R"] == want["R"] and got["metrics"] == want["metrics"]
    out.unlink()
    again = clrepro_run(out, desc, data)  # no crash loop, no leftover checkpoint
    assert again.returncode == 0 and json.loads(out.read_text())["R"] == want["R"]
    assert not checkpoint_path(out).exists()


def test_snakemake_after_an_option_change_equals_a_fresh_run(smoke_job, tmp_path, monkeypatch):
    """Item 1 through Snakemake: a record whose protocol changed is remade from scratch even
    though the killed run's checkpoint (made under the old protocol) is still there."""
    _, desc, data = smoke_job
    cwd = tmp_path / "wd"
    cwd.mkdir()
    shutil.copy(ROOT / "config.yaml", cwd / "config.yaml")
    (cwd / "smoke.yaml").write_text("scale: smoke\npapers: [mnemonics2020]\nbatch_runs: 0\n"
                                    "data: {synthetic: true, download: false}\n")
    pt = cwd / smoke_plan().benchmark_path(desc["benchmark"]["name"])
    pt.parent.mkdir(parents=True)
    shutil.copy(data, pt)
    shutil.copy(data.with_suffix(".json"), pt.with_suffix(".json"))
    before = {**desc, "hp": {**desc["hp"], "lr": desc["hp"]["lr"] * 2}}
    stale_checkpoint(before, data, tmp_path / "stale.ckpt.pt", monkeypatch)
    (cwd / RUN).parent.mkdir(parents=True)
    shutil.copy(tmp_path / "stale.ckpt.pt", checkpoint_path(cwd / RUN))
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d",
                          str(cwd), RUN, "--cores", "1", "--configfile", "smoke.yaml"], cwd=cwd,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    fresh = tmp_path / "fresh" / RUN
    assert clrepro_run(fresh, desc, data).returncode == 0
    got, want = json.loads((cwd / RUN).read_text()), json.loads(fresh.read_text())
    assert got["timings"]["resumed"] == 0 and got["R"] == want["R"]
    log = (cwd / "results/logs/runs" / Path(RUN).relative_to("results/runs")).with_suffix(".log")
    assert "moved aside" in log.read_text()
