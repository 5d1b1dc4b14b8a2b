"""The SLURM profile, exercised without a cluster: fake sbatch/srun/sacct/... on PATH record
every submission and run it on this machine (tests/fake_slurm.py)."""

import json
import os
import sys

from clrepro import plan

from conftest import ROOT
from test_workflow import snakemake, workdir

TOOLS = ["sbatch", "srun", "sacct", "squeue", "scancel", "sacctmgr", "sshare", "sinfo", "scontrol"]


def fake_slurm(tmp_path, **extra_env):
    bin_dir, state = tmp_path / "fake-bin", tmp_path / "fake-state"
    bin_dir.mkdir()
    state.mkdir()
    for tool in TOOLS:
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "fake_slurm.py"}" '
                          f'{tool} "$@"\n')
        script.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_SLURM_DIR=str(state),
               **extra_env)
    return env, state


def submissions(state):
    return [json.loads(line) for line in (state / "submissions.jsonl").read_text().splitlines()]


def test_runs_go_through_the_slurm_executor(tmp_path):
    cwd = workdir(tmp_path / "work")
    env, state = fake_slurm(tmp_path, FAKE_SLURM_OOM="rule_train_batch_gpu")
    p = plan.build({"scale": "smoke", "data": {"synthetic": True}})
    cpu_runs = sorted(k for k, r in p.runs.items() if not r.resources["gpu"] and r.paper == "gem2017")[:3]
    targets = ["results/tables/gem.table2.csv", *cpu_runs]  # table2: GPU runs + a local render
    snakemake(*targets, "--workflow-profile", str(ROOT / "workflow" / "profiles" / "slurm"),
              "--configfile", ".test/config.yaml", "--slurm-init-seconds-before-status-checks",
              "1", "--latency-wait", "5", cwd=cwd, env=env)

    assert (cwd / "results/tables/gem.table2.csv").is_file()
    assert all((cwd / r).is_file() for r in cpu_runs)
    subs = submissions(state)
    gpu = [s["options"] for s in subs if "rule_train_batch_gpu" in s["options"]["--comment"]]
    cpu = [s["options"] for s in subs if "rule_train_wildcards" in s["options"]["--comment"]
           or "cpu_runs" in s["options"]["--comment"]]
    # the smoke preset's seven ResNet runs form one batch: one GPU job, resubmitted after the
    # fake OOM, asking for its runs' largest memory and the sum of their times, growing with
    # the attempt
    resnet = [k for k in p.batch_of if "gem2017" in k and p.runs[k].resources["gpu"]]
    assert len(resnet) == 7 and len({p.batch_of[k] for k in resnet}) == 1
    first, retry = gpu
    assert all(o["--gpus"] == "1" and o["--cpus-per-task"] == "1" for o in gpu)
    assert (int(first["--mem"]), int(first["-t"])) == (2000, 7 * 15)
    assert (int(retry["--mem"]), int(retry["-t"])) == (4000, 2 * 7 * 15)
    # CPU runs asked for one by one share one bundle, which runs them one after the other:
    # one run's CPU and memory, the three runs' times in a row
    assert len(cpu) == 1 and "cpu_runs" in cpu[0]["--comment"] and "--gpus" not in cpu[0]
    assert (cpu[0]["--cpus-per-task"], cpu[0]["--mem"], cpu[0]["-t"]) == ("1", "2000", "45")
    # data preparation and rendering stayed on the submit host
    assert not any("prepare_data" in s["options"]["--comment"] or "render" in s["options"]["--comment"]
                   for s in subs)
