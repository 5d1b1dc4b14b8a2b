"""What the SLURM profile makes each job ask for, read from dry runs of README's commands
(Snakemake prints every job's resources and which jobs it bundles): the full-scale grid in
seconds, without a cluster. tests/test_slurm_cluster.py submits the smoke preset for real."""

import re
from collections import Counter

import pytest

from clrepro import plan

import readme
from conftest import ROOT
from test_workflow import snakemake, workdir

CLUSTER = "Running on a cluster"
CPU_ONLY = "device=cpu"  # README's switch for clusters without GPUs
SINGLE_RULES = {"train", "train_gpu", "train_logged", "train_logged_gpu"}
BATCH_RULES = {"train_batch", "train_batch_gpu"}
TRAIN_RULES = SINGLE_RULES | BATCH_RULES


def readme_args(prefix: str) -> list[str]:
    """README's command without its program name, the profile found from any directory."""
    return [str(ROOT / a) if a.startswith("workflow/") else a
            for a in readme.command(CLUSTER, prefix)[1:]]


def cpu_only(args: list[str]) -> list[str]:
    """README: "add device=cpu to --config and leave out --set-resources"."""
    args = args[:args.index("--set-resources")]
    if "--config" in args:
        at = args.index("--config") + 1
        return args[:at] + [CPU_ONLY] + args[at:]
    return args + ["--config", CPU_ONLY]


def dry_run_jobs(*args, cwd) -> list[dict]:
    """Each job of a dry run: rule, output, resources, and whether a group bundles it."""
    out = snakemake("-n", *args, cwd=cwd)
    jobs, job = [], None
    for line in (out.stdout + out.stderr).splitlines():
        if m := re.match(r"^( *)rule (\w+):$", line):
            job = {"rule": m[2], "bundled": len(m[1]) > 0, "resources": {}}
            jobs.append(job)
        elif job and (m := re.match(r"^ +output: (\S+)", line)):
            job["output"] = m[1].rstrip(",")
        elif job and (m := re.match(r"^ +resources: (.*)$", line)):
            job["resources"] = dict(kv.split("=", 1) for kv in m[1].split(", "))
    return jobs


@pytest.fixture(scope="module")
def full_retry(tmp_path_factory):
    """README's full-scale command, dry run as the jobs' second attempt."""
    cwd = workdir(tmp_path_factory.mktemp("full"))
    return dry_run_jobs(*readme_args("snakemake --workflow-profile"), "--attempt", "2", cwd=cwd)


def test_training_runs_ask_for_their_own_memory_and_time_growing_with_attempt(full_retry):
    planned = plan.build({"scale": "full"})
    singles = [j for j in full_retry if j["rule"] in SINGLE_RULES]
    batches = [j for j in full_retry if j["rule"] in BATCH_RULES]
    tokens = {str(planned.batch_token(b)): b for b in planned.batches}
    assert len(singles) + sum(len(planned.batches[tokens[j["output"]]]) for j in batches) \
        == len(planned.runs)
    for job in singles + batches:
        if job in singles:
            want = planned.run_job(job["output"]).resources
        else:  # a batch: its largest memory, the sum of its runs' times, one process
            runs = [planned.runs[k].resources for k in planned.batches[tokens[job["output"]]]]
            want = {"mem_mb": max(r["mem_mb"] for r in runs), "gpu": runs[0]["gpu"],
                    "runtime": sum(r["runtime"] for r in runs)}
        res = job["resources"]
        assert (int(res["mem_mb"]), int(res["runtime"])) == (2 * want["mem_mb"], 2 * want["runtime"]), job
        # README's partition and account came on top of the profile, replacing nothing
        assert res["slurm_partition"] == ("gpu" if want["gpu"] else "cpu"), job
        assert res["slurm_account"] == "myproject", job
        assert res.get("gpu", "0") == ("1" if want["gpu"] else "0"), job
    # nothing caps them: the largest request (Mnemonics' ImageNet runs, 64,000 MB) doubles
    largest = max(r.resources["mem_mb"] for r in planned.runs.values())
    assert largest == 64_000 and max(int(j["resources"]["mem_mb"]) for j in singles) == 2 * largest


def test_cpu_runs_are_batched_and_gpu_runs_keep_a_job_each(full_retry):
    counts = Counter((j["rule"], j["bundled"]) for j in full_retry if j["rule"] in TRAIN_RULES)
    assert counts[("train_batch", False)] > 0 and counts[("train_gpu", False)] > 0
    assert counts[("train_logged_gpu", False)] > 0  # Mnemonics' runs that keep exemplars
    assert set(counts) == {("train_batch", False), ("train_gpu", False), ("train_logged_gpu", False)}


def test_cpu_only_switch_drops_the_gpu_request(tmp_path):
    assert f"--config scale=full {CPU_ONLY}" in readme.section(CLUSTER)
    jobs = dry_run_jobs(*cpu_only(readme_args("snakemake --workflow-profile")), cwd=workdir(tmp_path))
    gpu_runs = [j for j in jobs if j["rule"] in ("train_gpu", "train_logged_gpu")]
    assert gpu_runs and all(j["resources"].get("gpu", "0") == "0" for j in gpu_runs)
    assert all(j["resources"]["slurm_partition"] == "cpu" for j in gpu_runs)


def test_a_users_own_profile_keeps_its_defaults_beside_ours(tmp_path):
    """README: partition and account in a profile of one's own, given with --profile."""
    own = tmp_path / "mycluster"
    own.mkdir()
    (own / "config.yaml").write_text("default-resources: [slurm_partition=cpu, slurm_account=myproject]\n")
    jobs = dry_run_jobs("--profile", str(own), "--workflow-profile",
                        str(ROOT / "workflow" / "profiles" / "slurm"),
                        "--configfile", ".test/config.yaml", cwd=workdir(tmp_path / "work"))
    runs = [j for j in jobs if j["rule"] in TRAIN_RULES]
    assert runs
    assert all(j["resources"]["slurm_partition"] == "cpu" for j in runs)
    assert all(j["resources"]["slurm_account"] == "myproject" for j in runs)
    assert all(int(j["resources"]["mem_mb"]) >= 2000 for j in runs)  # the runs' own, not a default
