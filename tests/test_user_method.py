"""Issue 24: a user's own method under the papers' protocols, from a config line."""

from __future__ import annotations

import sys

import pytest
import yaml

from clrepro import config as cfg
from clrepro.papers import registry


def test_each_paper_owns_its_options_schema_and_the_central_schema_composes_them():
    central = yaml.safe_load(cfg.SCHEMA_PATH.read_text())
    for key, paper in registry().items():
        own = paper.options_schema()
        assert set(own) == set(paper.option_defaults)
        assert not any("default" in sub for sub in own.values())  # defaults: the protocol's
        composed = cfg.schema()["properties"]
        assert composed["options"]["properties"][key]["properties"] == own
        assert key in composed["papers"]["items"]["enum"] and key in composed["seeds"]["properties"]
    # no per-paper block in the central schema
    assert "properties" not in central["properties"]["options"]
    assert "properties" not in central["properties"]["seeds"]
    assert "enum" not in central["properties"]["papers"]["items"]
    # a typo in a paper's option is still named with the valid keys
    try:
        cfg.validate({"options": {"gem2017": {"gem.margn": 0.1}}})
    except cfg.ConfigError as exc:
        assert "options.gem2017.gem.margn: unknown key" in str(exc) and "gem.margin" in str(exc)
    else:
        raise AssertionError("typo accepted")


def test_new_method_writes_a_file_and_a_test_that_pass_outside_clrepro(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    for name, trainer in (("my_online", "online"), ("my_phases", "phases")):
        out = subprocess.run([sys.executable, "-m", "clrepro", "new-method", name, "--trainer",
                              trainer, "--dir", str(tmp_path)], capture_output=True, text=True,
                             env=env, check=True)
        assert f"{name}:My" in out.stdout
        source = (tmp_path / f"{name}.py").read_text()
        assert "equation" in source and "hyperparameters" in source and "needs_memory" in source or trainer == "phases"
    again = subprocess.run([sys.executable, "-m", "clrepro", "new-method", "my_online", "--dir",
                            str(tmp_path)], capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "not overwritten" in again.stderr
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "--rootdir", str(tmp_path), str(tmp_path)],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed, 2 skipped" in tests.stdout  # the equation checks are hers to write


ONLINE = '''from clrepro.methods.base import Method


class Mine(Method):
    """L = CE (a planning fixture)."""

    hyperparameters = {"mine.weight": ("weight", 0.5), "mine.beta": ("beta", 1.0)}

    def observe(self, x, y, tasks):
        self.sgd_step(x, y, tasks)


class WithIds(Mine):
    needs_task_ids = True
    needs_memory = True
'''


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """A package outside clrepro, importable (found by the plan without importing it)."""
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "m.py").write_text(ONLINE)
    for module in [m for m in sys.modules if m.split(".")[0] == "userpkg"]:  # another test's
        monkeypatch.delitem(sys.modules, module)  # (find_spec would search its folder)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "userpkg.m"


def _plan(scale="smoke", **mine):
    from clrepro import plan

    conf = {"entry": "userpkg.m:Mine", **mine}
    return plan.build({"scale": scale, "methods": {"mine": conf}})


def test_her_runs_mirror_the_reference_baseline_in_every_paper(outside):
    p = _plan("quick", hyperparameters={"mine.weight": 0.3}, per_paper={"gem2017": {"lr": 0.05}})
    placed = {a for a, j in p.artifacts.items() if "mine" in j.yours}
    assert placed == {"gem.fig1a", "gem.fig1b", "gem.table1", "gem.table2", "gem.table3",
                      "gmed.table2", "gmed.fig4", "bld.table1", "bld.table2", "bld.table3",
                      "drl.table1", "drl.table2", "drl.table3"}
    for a, job in p.artifacts.items():
        if "mine" not in job.yours:
            continue
        ref = job.artifact.user
        theirs = {(s.benchmark, s.seed, s.epochs) for s in job.paper_runs if s.method == ref.reference}
        mine = {(s.benchmark, s.seed, s.epochs) for s in job.yours["mine"]}
        assert mine == theirs, a  # same streams, seeds and epochs as the reference
    by_paper = {}
    for job in p.runs.values():
        if job.spec.method == "mine":
            by_paper.setdefault(job.paper, []).append(job.hp)
            assert job.hp["mine.weight"] == 0.3 and job.hp["entry"] == "userpkg.m:Mine"
            assert job.hp["mine.beta"] == 1.0  # its default
            assert job.spec.memory == 0  # it keeps no memory
    assert {hp["lr"] for hp in by_paper["gem2017"]} == {0.05}  # per_paper
    assert {hp["lr"] for hp in by_paper["gmed2021"]} == {0.05}  # GMED's (ER's) MNIST lr
    assert all(hp["model"]["name"] == "small_cnn" for hp in by_paper["drl2020"])
    reasons = {k["artifact"]: k["reason"] for k in p.skipped}
    assert "phases trainer" in reasons["mnemonics.table1"]
    assert reasons["gmed.table3"] == "an ablation of GMED's editing direction"


def test_no_method_configured_leaves_the_plan_as_it_was(outside):
    from clrepro import plan

    before = plan.build({"scale": "quick"})
    after = _plan("quick")
    assert set(before.runs) <= set(after.runs)
    assert all(after.runs[k].hp == j.hp for k, j in before.runs.items())
    assert all(j.paper_runs == before.artifacts[a].runs for a, j in after.artifacts.items())
    # her runs train in batches of their own: the baselines' batches are left as they were
    assert all(after.batches[b] == keys for b, keys in before.batches.items())


def test_a_typo_in_her_keys_is_named_before_any_job(outside):
    with pytest.raises(cfg.ConfigError, match=r"methods.mine.hyperparameters: mine.wieght: not "
                                              r"a key of userpkg.m:Mine \(it reads: .*mine.weight"):
        _plan(hyperparameters={"mine.wieght": 1.0})
    with pytest.raises(cfg.ConfigError, match=r"methods.mine.per_paper.gem2017: lrr"):
        _plan(per_paper={"gem2017": {"lrr": 1.0}})
    with pytest.raises(cfg.ConfigError, match=r"methods.mine.entry: .*defines no class Nope"):
        _plan(entry="userpkg.m:Nope")


def test_a_misfit_asked_for_by_name_is_an_error_and_otherwise_listed(outside):
    with pytest.raises(cfg.ConfigError, match=r"methods.mine: gmed.table2 was asked for, but "
                                              r"mine does not fit it: needs task ids; this "
                                              r"artifact is task-free"):
        _plan(entry="userpkg.m:WithIds", papers={"gmed2021": ["gmed.table2"]})
    p = _plan(entry="userpkg.m:WithIds", papers=["gmed2021", "bld2020", "gem2017"])
    reasons = {k["artifact"]: k["reason"] for k in p.skipped}
    assert reasons["gmed.table2"] == "needs task ids; this artifact is task-free"
    assert reasons["bld.table1"] == "needs a memory; this artifact's protocol gives none"
    gem = [j for j in p.runs.values() if j.spec.method == "mine"]
    assert gem and all(j.spec.memory > 0 and j.paper == "gem2017" for j in gem)  # GEM's memory


def test_her_grid_is_selected_on_validation_data_by_the_papers_rule(outside):
    from clrepro.tuning import is_tuned

    p = _plan("quick", papers={"gmed2021": ["gmed.table2"], "bld2020": ["bld.table1"]},
              hyperparameters={"mine.weight": {"grid": [0.1, 1.0]}})
    for job in (j for j in p.runs.values() if j.spec.method == "mine"):
        cell = dict(job.spec.overrides)
        if cell.get("tune"):  # a grid cell: validation data only, the paper's tuning protocol
            assert job.hp["eval_split"] == "val" and job.hp["mine.weight"] == cell["mine.weight"]
            if job.paper == "gmed2021":
                assert job.hp["tasks_limit"] == 3 and job.hp["early_stopping"] and job.spec.seed == 0
            else:
                assert job.spec.benchmark.endswith(".val")
        else:
            assert is_tuned(job.hp["mine.weight"])
            assert sorted(dict(s.overrides)["mine.weight"] for s in job.needs) == [0.1, 1.0]
    with pytest.raises(cfg.ConfigError, match="gem2017 selects nothing on a validation split"):
        _plan(papers=["gem2017"], hyperparameters={"mine.weight": {"grid": [0.1, 1.0]}})


def test_a_method_without_a_row_in_the_papers_table_runs_on_its_declared_defaults(outside):
    """A new method in a paper's run lists needs no row in its protocol table (issue 24: one
    file plus its table entry): the paper's values for the keys it shares (learning rate,
    batch size, model...), its declared defaults for its own keys."""
    from clrepro.methods import catalog
    from clrepro.papers import get_paper
    from clrepro.papers.gmed2021 import runs as R
    from clrepro.plan import protocol_hp

    catalog.register_external("plainmine", "userpkg.m:Mine")  # known to the catalog, no row
    gmed = get_paper("gmed2021")
    options = dict(gmed.option_defaults)
    spec = R.spec("split_mnist", "plainmine", 0, "quick")
    hp = protocol_hp(gmed, spec, options)
    catalog.check("plainmine", hp)  # every key it reads, nothing else
    assert hp["mine.weight"] == 0.5 and hp["mine.beta"] == 1.0  # its defaults
    finetune = gmed.hyperparams(R.spec("split_mnist", "finetune", 0, "quick"), options)
    assert {k: hp[k] for k in ("lr", "batch_size", "model")} == {
        k: finetune[k] for k in ("lr", "batch_size", "model")}
    # a row of the paper's still wins over a default: the paper's finetune row sets none
    assert protocol_hp(gmed, R.spec("split_mnist", "finetune", 0, "quick"), options) == finetune
