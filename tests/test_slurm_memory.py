"""The memory pre-flight reaches the SLURM jobs: with the estimates `clrepro plan --memory`
saved, each GPU job asks for the node features (config gpu_features) whose GPUs hold its
runs' peak, and the workflow refuses runs estimated above gpu_memory_gb before any job.
Dry runs of the SLURM profile (Snakemake prints each job's resources), as in
tests/test_slurm_profile.py."""

import json

import yaml

from clrepro import plan

from conftest import ROOT
from test_slurm_profile import dry_run_jobs
from test_workflow import snakemake, workdir

PROFILE = str(ROOT / "workflow" / "profiles" / "slurm")
FEATURES = {"gpu16": 16, "gpu48": 48, "gpu80": 80}


def setup(tmp_path, gb_of, **config):
    """A working directory whose config adds `config` to the test preset, and a saved
    pre-flight giving each GPU run of the plan gb_of(run path) GB."""
    cwd = workdir(tmp_path)
    cfg = {**yaml.safe_load((cwd / ".test/config.yaml").read_text()), "papers": ["gem2017"], **config}
    (cwd / "mine.yaml").write_text(yaml.safe_dump(cfg))
    p = plan.build(cfg)  # run keys are relative to the working directory, as Snakemake's
    gpu = sorted(k for k, job in p.runs.items() if job.resources["gpu"])
    saved = {k: {"protocol": p.runs[k].protocol_hash, "gb": gb_of(k)} for k in gpu}
    (cwd / "results" / "preflight").mkdir(parents=True)
    (cwd / "results" / "preflight" / "memory.json").write_text(json.dumps(saved))
    return cwd, gpu


def gpu_jobs(cwd):
    jobs = dry_run_jobs("--workflow-profile", PROFILE, "--configfile", "mine.yaml", cwd=cwd)
    return [j for j in jobs if j["rule"] in ("train_gpu", "train_logged_gpu", "train_batch_gpu")]


def test_gpu_jobs_ask_for_the_features_that_hold_their_estimate(tmp_path):
    cwd, gpu = setup(tmp_path, lambda k: 30.0 if "/gem/" in k else 10.0, gpu_features=FEATURES)
    jobs = gpu_jobs(cwd)
    assert jobs and len(gpu) == 7
    # one batch holds the seven ResNet runs: its largest estimate (GEM, 30 GB) decides
    assert all(j["resources"]["constraint"] == "gpu48|gpu80" for j in jobs), jobs


def test_without_an_estimate_a_gpu_job_asks_for_gpu_memory_gb(tmp_path):
    cwd, _ = setup(tmp_path, lambda k: 10.0, gpu_features=FEATURES)
    saved = cwd / "results" / "preflight" / "memory.json"
    stale = {k: {**v, "protocol": "another"} for k, v in json.loads(saved.read_text()).items()}
    saved.write_text(json.dumps(stale))  # estimates of another protocol: ignored
    jobs = gpu_jobs(cwd)
    assert jobs and all(j["resources"]["constraint"] == "gpu80" for j in jobs)


def test_no_features_no_constraint(tmp_path):
    cwd, _ = setup(tmp_path, lambda k: 10.0)
    jobs = gpu_jobs(cwd)
    assert jobs and all("constraint" not in j["resources"] for j in jobs)


def test_runs_estimated_above_gpu_memory_gb_are_refused_naming_them(tmp_path):
    cwd, gpu = setup(tmp_path, lambda k: 90.0 if "/gem/" in k else 10.0)
    out = snakemake("-n", "--configfile", "mine.yaml", cwd=cwd, check=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "gpu_memory_gb: 2 GPU run(s) are estimated above 80 GB" in text, text[-2000:]
    assert "/gem/" in text and "90.0 GB" in text
