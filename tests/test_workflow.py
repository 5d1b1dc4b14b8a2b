"""The Snakemake workflow from the outside: lint, dry-runs of both presets, a real smoke run."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from clrepro import plan
from clrepro.papers import get_paper

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
    batched = counts.get("train_batch", 0) + counts.get("train_batch_gpu", 0)
    assert batched == len(expected.batches) > 0
    singles = [k for k in expected.runs if k not in expected.batch_of]
    trained = sum(counts.get(rule, 0) for rule in ("train", "train_gpu", "train_logged",
                                                     "train_logged_gpu"))
    assert trained == len(singles)
    assert sum(len(b) for b in expected.batches.values()) + len(singles) == len(expected.runs)
    gpu = [j for j in expected.runs.values() if j.resources["gpu"]]
    if scale == "full":  # every GPU run keeps a job of its own
        assert counts.get("train_gpu", 0) + counts.get("train_logged_gpu", 0) == len(gpu) > 0
        assert counts.get("train_logged_gpu", 0) == sum(expected.logs_artifacts(j) for j in gpu)
    else:  # the small presets batch them too
        assert counts.get("train_batch_gpu", 0) > 0 and not singles
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
        assert record["hp"]["protocol_version"] == get_paper(record["paper"]).protocol_version
        assert record["protocol_hash"]
    for job in expected.artifacts.values():
        assert all((smoke / p).is_file() for p in job.outputs)
        claims = json.loads((smoke / job.claims).read_text())
        assert claims["scale_label"].startswith("smoke")
        assert len(claims["claims"]) == len(job.artifact.claims)
    assert (smoke / "results/logs/runs").is_dir()


def test_second_invocation_has_nothing_to_do(smoke):
    again = snakemake("-n", "--configfile", ".test/config.yaml", cwd=smoke)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_batched_records_equal_single_run_records(smoke, tmp_path):
    """Records made inside a batch are bit-identical (R, b, curve, metrics, counters) to the
    same runs made one process each, for a run of every trainer and artifact kind."""
    p = smoke_plan()
    picks = {}
    for key, job in sorted(p.runs.items()):
        kind = (job.paper, job.spec.method in ("gem", "lucir", "replay_drl", "bld"))
        if key in p.batch_of and kind[1]:
            picks.setdefault(kind, key)
    assert len(picks) >= 4
    for key in picks.values():
        batched = json.loads((smoke / key).read_text())
        single = tmp_path / key
        cmd = [sys.executable, "-m", "clrepro", "run", str(single), "--configfile",
               str(smoke / ".test/config.yaml"), "--set", f"results={tmp_path / 'results'}",
               "--data", str(smoke / p.benchmark_path(p.runs[key].spec.benchmark))]
        subprocess.run(cmd, cwd=smoke, check=True, capture_output=True, timeout=600)
        alone = json.loads(single.read_text())
        for field in ("status", "R", "b", "curve", "metrics", "counters", "protocol_hash"):
            assert alone[field] == batched[field], (key, field)


def test_protocol_change_reruns_only_the_runs_it_concerns(smoke, tmp_path):
    """The batches holding GEM runs rerun (their params changed); inside them only the GEM
    runs are trained again, the other records are left as they were."""
    smoke = shutil.copytree(smoke, tmp_path / "copy", symlinks=True)  # the others keep theirs
    (smoke / "margin.yaml").write_text("options:\n  gem2017:\n    gem.margin: 0.1\n")
    p = smoke_plan()
    gem_runs = [k for k, r in p.runs.items() if r.spec.method == "gem"]
    touched = {p.batch_of[k] for k in gem_runs}
    out = snakemake("-n", "--configfile", ".test/config.yaml", "margin.yaml", cwd=smoke)
    reruns = re.findall(r"output: (results/batches/\S+\.done)", out.stdout)
    assert sorted(reruns) == sorted(str(p.batch_token(b)) for b in touched)
    assert "Params have changed" in out.stdout
    bystanders = [k for b in touched for k in p.batches[b] if k not in gem_runs]
    assert bystanders  # the check below means something
    before = {k: (smoke / k).stat().st_mtime_ns for k in bystanders + gem_runs}
    snakemake(*sorted(reruns), "--cores", "2", "--configfile", ".test/config.yaml", "margin.yaml",
              cwd=smoke)  # the batches only: rendering is tested elsewhere
    assert all((smoke / k).stat().st_mtime_ns == before[k] for k in bystanders)
    for k in gem_runs:
        assert json.loads((smoke / k).read_text())["hp"]["gem.margin"] == 0.1


def test_a_deleted_record_of_a_finished_batch_is_made_again_alone(smoke):
    p = smoke_plan()
    key = next(k for k in sorted(p.batch_of) if "gmed2021" in k and not p.logs_artifacts(p.runs[k]))
    record = (smoke / key).read_text()
    (smoke / key).unlink()
    out = snakemake("-n", "--configfile", ".test/config.yaml", cwd=smoke)
    assert re.findall(r"output: (results/runs/\S+\.json)", out.stdout) == [key]
    assert f"output: {p.batch_token(p.batch_of[key])}" not in out.stdout  # its batch is not rerun
    (smoke / key).write_text(record)


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
    # edited records of batched runs change no input: the table is rebuilt on request
    out = snakemake("results/tables/gem.table3.csv", "--cores", "1", "--configfile",
                    ".test/config.yaml", "--forcerun", "render_table", cwd=smoke)
    assert "render_table" in out.stdout + out.stderr
    table = (smoke / "results/tables/gem.table3.md").read_text()
    assert "1 corrupt" in table and "1 diverged" in table and "1 stale" in table
    claims = json.loads((smoke / "results/claims/gem.table3.json").read_text())
    assert {c["status"] for c in claims["claims"]} == {"inconclusive"}
    problems = {p["status"] for p in claims["runs"]["problems"]}
    assert problems == {"corrupt", "diverged", "stale"}


@pytest.mark.pinned
def test_smoke_records_are_pinned(smoke):
    """Every smoke record is bit-identical to its pin (issue 23's guard for refactorings).
    A change of numbers must be deliberate: update the pin (tests/pinned_records.py). Not in
    the default run: machines that report the same CPU name can still differ in the last bits
    (issue 17), so the guard is for the machine a refactoring is made on (`pytest -m pinned`)."""
    import pinned_records

    pin = json.loads((pinned_records.PINS / "smoke.json").read_text())
    some = next((smoke / "results/runs").rglob("s*.json"))
    if pinned_records.machine(some) != pin["machine"]:
        pytest.skip(f"pinned on {pin['machine']}; this machine is {pinned_records.machine(some)}")
    assert pinned_records.differences(pin, smoke / "results") == []


# -- issue 24: a method from outside clrepro, by config -----------------------------------------
USER_ONLINE = '''"""Cross-entropy plus weight x the mean squared logit (a test method: Eq. (1) of its README)."""
import torch.nn.functional as F

from clrepro.methods.base import Method


class Mine(Method):
    """L = CE(f(x), y) + w * mean(f(x)^2)."""

    hyperparameters = {"mine.weight": ("w, the weight of the logit penalty", 0.5)}

    def observe(self, x, y, tasks):
        self.opt.zero_grad(set_to_none=True)
        out = self.logits(x, tasks)
        finite = out.masked_fill(~out.isfinite(), 0.0)
        (F.cross_entropy(out, y) + self.hp["mine.weight"] * finite.pow(2).mean()).backward()
        self.opt.step()
'''
USER_PHASES = '''"""A class-incremental method in the phase trainer: plain cross-entropy over the classes seen."""
import torch.nn.functional as F

from clrepro.methods.cil import ClassIncremental


class MineCIL(ClassIncremental):
    """L = CE over every class seen (herding exemplars of the old ones, as its base class)."""

    hyperparameters = {"minecil.scale": ("logit scale", 1.0)}

    def classification_loss(self, x, y):
        return F.cross_entropy(self.hp["minecil.scale"] * self.model(x), y)
'''
USER_TASK_IDS = '''from clrepro.methods.base import Method


class NeedsIds(Method):
    needs_task_ids = True

    def observe(self, x, y, tasks):
        self.sgd_step(x, y, tasks)
'''


def user_package(root):
    """A package outside clrepro (its own folder, on PYTHONPATH only)."""
    pkg = root / "outside" / "userpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "online.py").write_text(USER_ONLINE)
    (pkg / "phases.py").write_text(USER_PHASES)
    (pkg / "ids.py").write_text(USER_TASK_IDS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root / "outside"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return env


MINE = """methods:
  mine:
    entry: userpkg.online:Mine
    hyperparameters: {mine.weight: 0.1}
    per_paper: {gem2017: {lr: 0.05}}
  minecil:
    entry: userpkg.phases:MineCIL
    papers: [mnemonics2020]
"""


ONE_PER_PAPER = ["gem.table1", "gmed.table2", "bld.table1", "mnemonics.table1", "drl.table2"]


def check_user_outputs(cwd, p, artifacts):
    """Each artifact's claims name her comparison (or why she did not run there); her
    records carry her values and the paper's protocol."""
    for artifact in artifacts:
        job = p.artifacts[artifact]
        claims = json.loads((cwd / job.claims).read_text())
        for name in ("mine", "minecil"):
            if name in job.yours:
                rows = claims["yours"][name]["rows"]
                assert rows and all(r["n"] >= 1 and r["status"] for r in rows), (artifact, name)
                assert all(r["yours train_s"] is not None for r in rows)
                if name == "mine":
                    assert job.artifact.user.reference in {r["baseline"].split(" ")[0] for r in rows}
                if job.artifact.kind == "table":
                    assert f"Yours ({name})" in (cwd / job.outputs[1]).read_text()
                # and a row, column or line of the paper's own table or figure: in what it
                # shows (the Markdown table, the report) and in the numbers it was drawn from
                shown = [str(v) for row in claims["display"] for v in row.values()]
                assert name in shown, (artifact, name, shown)
                drawn = (cwd / next(f for f in job.outputs if f.suffix == ".csv")).read_text()
                assert re.search(rf"(^|,){re.escape(name)}(,|$)", drawn, re.M), (artifact, name)
        if "mine" not in job.yours:
            assert any(k["method"] == "mine" and k["reason"] for k in claims["yours_skipped"]), artifact
    record = json.loads((cwd / next(k for k, j in p.runs.items() if j.spec.method == "mine"
                                    and j.paper == "gem2017")).read_text())
    assert record["status"] == "ok" and record["hp"]["lr"] == 0.05 and record["hp"]["mine.weight"] == 0.1


def user_plan(cwd, monkeypatch, tmp_path, **extra):
    # another test's `userpkg` stays in sys.modules, and find_spec("userpkg.online") searches
    # the cached package's folder (test_user_method.py makes one): drop it first
    for module in [m for m in sys.modules if m.split(".")[0] == "userpkg"]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.syspath_prepend(str(tmp_path / "outside"))
    return plan.build({**yaml.safe_load((cwd / ".test/config.yaml").read_text()),
                       **yaml.safe_load(MINE), **extra})


def test_a_method_from_outside_clrepro_runs_in_one_artifact_of_each_paper(smoke, tmp_path,
                                                                           monkeypatch):
    """Issue 24 in the default suite: named in the config, the user's methods (an online one,
    a class-incremental one) run under one artifact's protocol of each of the five papers
    beside the baselines (the smoke run's records, reused: no baseline is trained again), and
    each artifact's claims and table carry her comparison."""
    smoke = shutil.copytree(smoke, tmp_path / "copy", symlinks=True)
    env = user_package(tmp_path)
    (smoke / "mine.yaml").write_text(MINE)
    p = user_plan(smoke, monkeypatch, tmp_path, artifacts=ONE_PER_PAPER)
    baselines = {k: (smoke / k).stat().st_mtime_ns for k in p.runs if k not in p.made_by}
    snakemake(*[str(p.artifacts[a].claims) for a in ONE_PER_PAPER], "--cores", "2",
              "--configfile", ".test/config.yaml", "mine.yaml", "--config",
              f"artifacts={ONE_PER_PAPER}", cwd=smoke, env=env)
    assert {a for a, j in p.artifacts.items() if j.yours} == set(ONE_PER_PAPER)
    check_user_outputs(smoke, p, ONE_PER_PAPER)
    assert all((smoke / k).stat().st_mtime_ns == t for k, t in baselines.items())


@pytest.mark.slow
def test_a_method_from_outside_clrepro_runs_in_every_paper_it_fits(smoke, tmp_path, monkeypatch):
    """The done-means of issue 24, whole: every applicable artifact of all five papers gets
    her comparison, the others say why not, and the report is rebuilt with her line."""
    smoke = shutil.copytree(smoke, tmp_path / "copy", symlinks=True)
    env = user_package(tmp_path)
    (smoke / "mine.yaml").write_text(MINE)
    snakemake("--cores", "2", "--configfile", ".test/config.yaml", "mine.yaml", cwd=smoke, env=env)
    p = user_plan(smoke, monkeypatch, tmp_path)
    fitting = {a for a, j in p.artifacts.items() if "mine" in j.yours}
    assert {a.split(".")[0] for a in fitting} == {"gem", "gmed", "bld", "drl"}
    assert {a for a, j in p.artifacts.items() if "minecil" in j.yours} == {
        "mnemonics.table1", "mnemonics.fig4"}
    reasons = {k["artifact"]: k["reason"] for k in p.skipped if k["method"] == "mine"}
    assert "phases trainer" in reasons["mnemonics.table1"]
    check_user_outputs(smoke, p, list(p.artifacts))
    assert (smoke / "results/report.pdf").read_bytes().startswith(b"%PDF")


def test_a_typo_and_a_misfit_of_a_user_method_are_named_before_any_job(tmp_path):
    env = user_package(tmp_path)
    cwd = workdir(tmp_path / "work")
    (cwd / "typo.yaml").write_text(MINE.replace("mine.weight: 0.1", "mine.wieght: 0.1"))
    out = snakemake("-n", "--configfile", ".test/config.yaml", "typo.yaml", cwd=cwd, env=env,
                    check=False)
    assert out.returncode != 0 and "mine.wieght" in out.stderr + out.stdout
    assert "mine.weight" in out.stderr + out.stdout  # what it reads
    (cwd / "ids.yaml").write_text("methods:\n  ids:\n    entry: userpkg.ids:NeedsIds\n"
                                  "    papers: {gmed2021: [gmed.table2]}\n")
    out = snakemake("-n", "--configfile", ".test/config.yaml", "ids.yaml", cwd=cwd, env=env,
                    check=False)
    assert out.returncode != 0
    said = out.stderr + out.stdout
    assert "methods.ids: gmed.table2" in said and "needs task ids; this artifact is task-free" in said
    assert not (cwd / "results").exists()
