"""The SLURM profile on a real single-node SLURM 22.05 cluster (tests/local_slurm.py): real
sbatch, squeue, sacct and scancel, README's commands as a user types them. Needs root and
the Debian packages; CI installs them and runs `pytest -m slurm`, elsewhere these skip."""

import json
import subprocess
import time

import pytest

from clrepro import plan
from clrepro.job import checkpoint_path

from local_slurm import local_cluster
from test_slurm_profile import CPU_ONLY, cpu_only, readme_args
from test_workflow import SNAKEMAKE, snakemake, workdir

pytestmark = pytest.mark.slurm

# README's command for the local cluster; polling sooner than the plugin's 40 s saves minutes
LOCAL_COMMAND = ".venv/bin/snakemake --workflow-profile"
FAST_POLL = ["--slurm-init-seconds-before-status-checks", "2"]
SACCT = ["JobIDRaw", "Partition", "ReqMem", "Timelimit", "ReqCPUS", "ReqTRES", "State", "Comment"]


@pytest.fixture
def gpu_cluster():
    yield from local_cluster(gpus=True)


@pytest.fixture
def cpu_only_cluster():
    yield from local_cluster(gpus=False)


def sacct(cluster, settle_s: float = 30) -> list[dict]:
    """Every job the cluster ran, as accounting recorded it (it lags a little behind)."""
    deadline = time.monotonic() + settle_s
    while True:
        out = cluster.run("sacct", "-X", "--parsable2", "--noheader", "--allusers",
                          f"--format={','.join(SACCT)}")
        jobs = [dict(zip(SACCT, line.split("|"))) for line in out.splitlines()]
        if all(j["State"] not in ("PENDING", "RUNNING") for j in jobs) or time.monotonic() > deadline:
            return jobs
        time.sleep(1)


def gpus_of(job: dict) -> int:
    tres = dict(kv.split("=", 1) for kv in job["ReqTRES"].split(",") if "=" in kv)
    return int(tres.get("gres/gpu", 0))


def show(jobs: list[dict]) -> None:
    print(f"{'job':>4} {'partition':9} {'--mem':>6} {'-t':>9} {'cpus':>4} {'--gpus':>6} {'state':16} rule")
    for j in jobs:
        print(f"{j['JobIDRaw']:>4} {j['Partition']:9} {j['ReqMem']:>6} {j['Timelimit']:>9} "
              f"{j['ReqCPUS']:>4} {gpus_of(j):>6} {j['State']:16} {j['Comment'][:70]}")


def run_smoke(cluster, cwd, args) -> float:
    started = time.monotonic()
    snakemake(*args, *FAST_POLL, cwd=cwd, env=cluster.env)
    elapsed = time.monotonic() - started
    assert (cwd / "results/report.pdf").stat().st_size > 10_000
    return elapsed


def smoke_batches():
    """(GPU batches, CPU batches) of the smoke preset and the plan."""
    p = plan.build({"scale": "smoke", "data": {"synthetic": True}})
    gpu = [b for b, keys in p.batches.items() if p.runs[keys[0]].resources["gpu"]]
    return gpu, [b for b in p.batches if b not in gpu], p


def test_smoke_workflow_through_real_sbatch(gpu_cluster, tmp_path):
    cwd = workdir(tmp_path)
    elapsed = run_smoke(gpu_cluster, cwd, readme_args(LOCAL_COMMAND))
    jobs = sacct(gpu_cluster)
    print(f"smoke preset through SLURM (2 stand-in GPUs): {elapsed:.0f} s, {len(jobs)} SLURM jobs")
    show(jobs)
    gpu, cpu, p = smoke_batches()
    gpu_jobs = [j for j in jobs if "rule_train_batch_gpu" in j["Comment"]]
    cpu_jobs = [j for j in jobs if "rule_train_batch_wildcards" in j["Comment"]]
    assert all(j["State"] == "COMPLETED" for j in jobs)
    assert len(gpu_jobs) == len(gpu) and len(cpu_jobs) == len(cpu) and len(jobs) == len(p.batches)
    # each batch of ResNet runs: one job, one GPU, README's partition, its runs' largest
    # memory and the sum of their times
    assert all(gpus_of(j) == 1 and j["Partition"] == "gpu" for j in gpu_jobs)
    assert all((j["ReqMem"], j["ReqCPUS"]) == ("2000M", "1") for j in gpu_jobs)
    minutes = {sum(p.runs[k].resources["runtime"] for k in p.batches[b]) for b in gpu}
    assert {int(j["Timelimit"].split(":")[0]) * 60 + int(j["Timelimit"].split(":")[1])
            for j in gpu_jobs} == minutes
    # CPU batches: no GPU, one CPU
    assert all(gpus_of(j) == 0 and j["Partition"] == "cpu" and j["ReqCPUS"] == "1" for j in cpu_jobs)


def test_resnet_runs_on_a_cluster_without_gpus(cpu_only_cluster, tmp_path):
    """README's switch on a cluster that has no GPU at all. Only the jobs it changes: the
    batch of ResNet runs behind GEM's Table 2, and the table (the CPU batches are the same
    as above, and running them again would double the time)."""
    # without the switch, sbatch refuses every ResNet batch here
    out = subprocess.run(["sbatch", "--gpus=1", "-o", "/dev/null", "--wrap", "true"],
                         env=cpu_only_cluster.env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "Invalid generic resource" in out.stderr, out.stderr

    _, _, p = smoke_batches()
    resnet_runs = sorted(k for k in p.batch_of if "gem2017" in k and p.runs[k].resources["gpu"])
    args = cpu_only(readme_args(LOCAL_COMMAND))
    cwd = workdir(tmp_path)
    started = time.monotonic()
    snakemake("results/tables/gem.table2.csv", *args, *FAST_POLL, cwd=cwd, env=cpu_only_cluster.env)
    elapsed = time.monotonic() - started
    jobs = sacct(cpu_only_cluster)
    print(f"ResNet runs through SLURM without GPUs ({CPU_ONLY}): {elapsed:.0f} s")
    show(jobs)
    assert resnet_runs and all((cwd / run).is_file() for run in resnet_runs)
    assert (cwd / "results/tables/gem.table2.csv").is_file()
    assert len(jobs) == len({p.batch_of[k] for k in resnet_runs})
    assert all(j["State"] == "COMPLETED" for j in jobs)
    assert all(gpus_of(j) == 0 and j["Partition"] == "cpu" for j in jobs)


CANCEL_RUN = "results/runs/rot_fmnist@gem2017.quick/gem/m1000-e5/s0.json"  # ~25 s, 2500 batches
CANCEL_CONFIG = {"scale": "quick", "papers": ["gem2017"], "data": {"synthetic": True, "download": False}}


def test_a_cancelled_job_is_resubmitted_and_resumes_with_identical_metrics(gpu_cluster, tmp_path):
    reference, cwd = workdir(tmp_path / "reference"), workdir(tmp_path / "slurm")
    for d in (reference, cwd):
        (d / "cancel.yaml").write_text(json.dumps(CANCEL_CONFIG))
    snakemake(CANCEL_RUN, "--cores", "1", "--configfile", "cancel.yaml", cwd=reference)

    args = ["cancel.yaml" if a == ".test/config.yaml" else a for a in readme_args(LOCAL_COMMAND)]
    proc = subprocess.Popen([*SNAKEMAKE, "-d", str(cwd), CANCEL_RUN, *args, *FAST_POLL], cwd=cwd,
                            env=gpu_cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ckpt = checkpoint_path(cwd / CANCEL_RUN)
        deadline = time.monotonic() + 300
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # a few checkpoints into the run
        running = gpu_cluster.run("squeue", "-h", "-t", "running", "-o", "%i").split()
        if len(running) != 1 or (cwd / CANCEL_RUN).exists():
            proc.kill()
            raise AssertionError(f"nothing to cancel mid-run (running jobs {running}, checkpoint "
                                 f"{ckpt.exists()}, record {(cwd / CANCEL_RUN).exists()}):\n"
                                 f"{proc.communicate()[0][-3000:]}")
        gpu_cluster.run("scancel", running[0])
        log, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log
    jobs = sacct(gpu_cluster)
    print(f"scancel {running[0]} mid-run; what Snakemake said and SLURM ran:")
    print("\n".join(line for line in log.splitlines()
                    if "SLURM jobid" in line or "Error in" in line or "failed, SLURM status" in line))
    show(jobs)
    first, retry = jobs
    assert first["JobIDRaw"] == running[0] and first["State"].startswith("CANCELLED")
    assert retry["State"] == "COMPLETED"
    assert int(retry["ReqMem"].rstrip("M")) == 2 * int(first["ReqMem"].rstrip("M"))  # attempt 2

    got = json.loads((cwd / CANCEL_RUN).read_text())
    want = json.loads((reference / CANCEL_RUN).read_text())
    assert got["timings"]["resumed"] == 1, "the resubmitted job did not resume from the checkpoint"
    for key in ("R", "b", "curve", "metrics", "counters"):
        assert got[key] == want[key], key
    assert not ckpt.exists()
