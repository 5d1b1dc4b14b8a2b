"""The Snakemake workflow from the outside: lint, dry-runs of both presets, a real smoke run."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from clrepro import plan

from conftest import ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]


def workdir(path):
    """A fresh working directory (own .snakemake/ metadata and locks) with the configs."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config.yaml", path / "config.yaml")
    (path / ".test").mkdir(exist_ok=True)
    shutil.copy(ROOT / ".test" / "config.yaml", path / ".test" / "config.yaml")
    return path


def snakemake(*args, cwd, check=True, env=None):
    out = subprocess.run([*SNAKEMAKE, "-d", str(cwd), *args], cwd=cwd, capture_output=True,
                         text=True, timeout=900, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out


def job_counts(text: str) -> dict[str, int]:
    table = text.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_lint_is_clean(tmp_path):
    snakemake("--lint", cwd=workdir(tmp_path))


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_dry_run_lists_every_planned_run(scale, tmp_path):
    out = snakemake("-n", "--config", f"scale={scale}", cwd=workdir(tmp_path))
    counts = job_counts(out.stdout)
    expected = plan.build({"scale": scale})
    trained = sum(counts.get(rule, 0) for rule in ("train", "train_gpu", "train_logged"))
    assert trained == len(expected.runs)
    assert counts.get("train_logged", 0) == sum(expected.logs_artifacts(j) for j in expected.runs.values())
    gpu = sum(r.resources["gpu"] for r in expected.runs.values())
    assert counts.get("train_gpu", 0) == gpu > 0
    assert counts["prepare_data"] == len(expected.benchmarks)
    assert counts["render_table"] + counts["render_figure"] == len(expected.artifacts)
    assert counts["report"] == 1


def test_bad_config_fails_before_any_job(tmp_path):
    out = snakemake("-n", "--config", "scale=enormous", cwd=workdir(tmp_path), check=False)
    assert out.returncode != 0
    assert "scale:" in out.stderr + out.stdout and "smoke" in out.stderr + out.stdout
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One real smoke run on synthetic data, shared by the tests below."""
    cwd = workdir(tmp_path_factory.mktemp("smoke"))
    snakemake("--cores", "2", "--configfile", ".test/config.yaml", cwd=cwd)
    return cwd


def smoke_plan():
    return plan.build({"scale": "smoke", "data": {"synthetic": True}})


def test_smoke_run_end_to_end_on_synthetic_data(smoke):
    assert (smoke / "results/report.pdf").stat().st_size > 10_000
    expected = smoke_plan()
    for path in expected.runs:
        record = json.loads((smoke / path).read_text())
        assert record["status"] in ("ok", "diverged")
        prov = record["provenance"]
        assert prov["versions"]["torch"] and "commit" in prov and "dirty" in prov
        assert record["hp"]["protocol_version"] == 1 and record["protocol_hash"]
    for job in expected.artifacts.values():
        assert all((smoke / p).is_file() for p in job.outputs)
        claims = json.loads((smoke / job.claims).read_text())
        assert claims["scale_label"].startswith("smoke") and claims["claims"]
    assert (smoke / "results/logs/runs").is_dir()


def test_second_invocation_has_nothing_to_do(smoke):
    again = snakemake("-n", "--configfile", ".test/config.yaml", cwd=smoke)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_protocol_change_reruns_only_the_runs_it_concerns(smoke):
    (smoke / "margin.yaml").write_text("options:\n  gem2017:\n    gem.margin: 0.1\n")
    out = snakemake("-n", "--configfile", ".test/config.yaml", "margin.yaml", cwd=smoke)
    reruns = re.findall(r"output: (results/runs/\S+\.json)", out.stdout)
    gem_runs = [p for p, r in smoke_plan().runs.items() if r.spec.method == "gem"]
    assert sorted(reruns) == sorted(gem_runs)
    assert "Params have changed" in out.stdout


def test_report_regenerates_alone_and_as_html(smoke):
    (smoke / "results/report.pdf").unlink()
    snakemake("results/report.pdf", "--cores", "1", "--configfile", ".test/config.yaml", cwd=smoke)
    assert (smoke / "results/report.pdf").is_file()
    snakemake("--report", "results/report.html", "--configfile", ".test/config.yaml", cwd=smoke)
    html = (smoke / "results/report.html").read_text(errors="replace")
    assert "gem.table3" in html and "Gradient Episodic Memory" in html


def test_unusable_records_show_as_failed_cells(smoke):
    """A corrupt record, a diverged run and a record from an older protocol are shown as
    such in the table, left out of the means, and make the verdicts inconclusive."""
    runs = smoke / "results/runs/rot_fmnist@gem2017.smoke"
    corrupt, diverged, stale = (runs / "ewc/m0-e2/s0.json", runs / "gem/m40-e2/s0.json",
                                runs / "single/m0-e2/s0.json")
    corrupt.write_text(corrupt.read_text()[:100])
    record = json.loads(diverged.read_text())
    record["status"] = "diverged"
    diverged.write_text(json.dumps(record))
    record = json.loads(stale.read_text())
    record["hp"]["protocol_version"] = 0
    stale.write_text(json.dumps(record))
    out = snakemake("results/tables/gem.table3.csv", "--cores", "1", "--configfile",
                    ".test/config.yaml", cwd=smoke)
    assert "render_table" in out.stdout + out.stderr  # newer inputs: the table is rebuilt
    table = (smoke / "results/tables/gem.table3.md").read_text()
    assert "1 corrupt" in table and "1 diverged" in table and "1 stale" in table
    claims = json.loads((smoke / "results/claims/gem.table3.json").read_text())
    assert {c["status"] for c in claims["claims"]} == {"inconclusive"}
    problems = {p["status"] for p in claims["runs"]["problems"]}
    assert problems == {"corrupt", "diverged", "stale"}
