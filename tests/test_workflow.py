"""The Snakemake workflow from the outside: lint, dry-runs of both presets, a real smoke run."""

import json
import re
import subprocess
import sys

import pytest

from clrepro import plan

from conftest import ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args, cwd=ROOT, check=True):
    out = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    if check and out.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out


def job_counts(text: str) -> dict[str, int]:
    table = text.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_lint_is_clean():
    snakemake("--lint")


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_dry_run_lists_every_planned_run(scale, tmp_path):
    out = snakemake("-n", "--config", f"scale={scale}", f"results={tmp_path}/results")
    counts = job_counts(out.stdout)
    expected = plan.build({"scale": scale})
    assert counts["train"] == len(expected.runs)
    assert counts["prepare_data"] == len(expected.benchmarks)
    assert counts["render_table"] + counts["render_figure"] == len(expected.artifacts)
    assert counts["report"] == 1


def test_bad_config_fails_before_any_job(tmp_path):
    out = snakemake("-n", "--config", "scale=enormous", f"results={tmp_path}/r", check=False)
    assert out.returncode != 0
    assert "scale:" in out.stderr + out.stdout and "smoke" in out.stderr + out.stdout
    assert not (tmp_path / "r").exists()


def test_smoke_run_end_to_end_on_synthetic_data(tmp_path):
    results = tmp_path / "results"
    snakemake("--cores", "2", "--configfile", ".test/config.yaml", "--config", f"results={results}")
    assert (results / "report.pdf").stat().st_size > 10_000
    expected = plan.build({"scale": "smoke", "results": str(results), "data": {"synthetic": True}})
    for path in expected.runs:
        record = json.loads(open(path).read())
        assert record["status"] in ("ok", "diverged")
        assert record["provenance"]["versions"]["torch"]
    for job in expected.artifacts.values():
        assert all(p.is_file() for p in job.outputs)
        claims = json.loads(job.claims.read_text())
        assert claims["scale_label"].startswith("smoke") and claims["claims"]
    # a second invocation finds nothing to do
    again = snakemake("--cores", "2", "--configfile", ".test/config.yaml", "--config",
                      f"results={results}")
    assert "Nothing to be done" in again.stdout + again.stderr
    # the report can be regenerated on its own
    (results / "report.pdf").unlink()
    snakemake(str(results / "report.pdf"), "--cores", "1", "--configfile", ".test/config.yaml",
              "--config", f"results={results}")
    assert (results / "report.pdf").is_file()
