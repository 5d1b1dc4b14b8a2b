"""Config validation and the run grid the plan derives from the paper modules."""

import pytest

from clrepro import config as cfg
from clrepro import plan
from clrepro.papers import registry
from clrepro.spec import RunSpec


def build(**config):
    return plan.build(config)


def test_defaults_are_the_quick_preset():
    p = build()
    assert p.scale == "quick" and p.config["data"]["dir"] == "resources/raw"
    assert p.config["papers"] == ["gem2017", "gmed2021", "bld2020", "mnemonics2020", "drl2020"]
    gem = [r for r in p.runs.values() if r.paper == "gem2017"]
    assert len(gem) == 34 * 3  # spec §2: 34 quick configurations, here with 3 seeds each
    assert {r.spec.seed for r in gem} == {0, 1, 2}
    assert {a for a in p.artifacts if a.startswith("gem.")} == {
        "gem.fig1a", "gem.fig1b", "gem.table1", "gem.table2", "gem.table3"}
    assert {a for a in p.artifacts if a.startswith("gmed.")} == {
        "gmed.table1", "gmed.table2", "gmed.table3", "gmed.fig3", "gmed.fig4", "gmed.fig5", "gmed.fig6"}


def test_gmed_full_plan_matches_the_spec_count():
    p = build(scale="full", papers=["gmed2021"])
    assert len(p.runs) == 1230  # spec §2: 600 + 210 + 100 + 20 + 300
    table2 = [r for r in p.runs.values() if not r.spec.overrides and r.spec.seed == 0
              and r.spec.memory in (0, 500, 10000) and r.spec.method != "er_random_edit"
              and r.spec.method != "er_hindsight_edit"]
    assert {r.spec.benchmark for r in table2} == {
        "split_mnist@gmed2021", "perm_mnist@gmed2021", "rot_mnist@gmed2021",
        "split_cifar10@gmed2021", "split_miniimagenet@gmed2021"}
    mini = p.runs["results/runs/split_miniimagenet@gmed2021/er_gmed/m10000-e1/s0.json"]
    assert mini.hp["replay.iterations"] == 3 and mini.hp["gmed.alpha"] == 1.0
    assert mini.hp["gmed.beta"] == 0.1 and mini.resources["gpu"]
    assert p.runs["results/runs/split_mnist@gmed2021/mir/m500-e1/s9.json"].hp["mir.candidates"] == 50
    assert p.runs["results/runs/split_miniimagenet@gmed2021/mir/m10000-e1/s9.json"].hp["mir.candidates"] == 25
    tuning = [r for r in p.runs.values() if dict(r.spec.overrides).get("tune")]
    assert len(tuning) == 210 and all(r.hp["tasks_limit"] == 3 for r in tuning)


def test_gmed_quick_has_five_seeds_for_the_paired_tests():
    p = build(papers=["gmed2021"])
    for method in ("er", "er_gmed", "mir", "mir_gmed"):
        for bench in ("split_fmnist", "perm_fmnist", "rot_fmnist"):
            seeds = {r.spec.seed for r in p.runs.values()
                     if r.spec.method == method and r.spec.benchmark == f"{bench}@gmed2021.quick"
                     and not r.spec.overrides and r.spec.memory == 500}
            assert seeds == {0, 1, 2, 3, 4}, (method, bench)


def test_full_plan_has_every_paper_run():
    p = build(scale="full", papers=["gem2017"])
    base = [r for r in p.runs.values() if not r.spec.overrides]
    assert len(base) == 170  # spec §2: 75 + 30 + 65
    assert len(p.runs) - len(base) == 40  # GEM with the official margin, labelled
    assert sum(r.resources["gpu"] for r in p.runs.values()) == 75
    assert {r.spec.seed for r in p.runs.values()} == {0, 1, 2, 3, 4}
    table2 = {(r.spec.method, r.spec.memory) for r in p.runs.values()
              if r.spec.benchmark == "cifar100_20t@gem2017" and not r.spec.overrides}
    assert {("gem", 200), ("gem", 5120), ("icarl", 200), ("icarl", 1280)} <= table2


@pytest.mark.parametrize("bad, key", [
    ({"scal": "quick"}, "scal"),
    ({"scale": "huge"}, "scale"),
    ({"data": {"download": "yes"}}, "data.download"),
    ({"options": {"gem2017": {"gem.margin_mode": "upper"}}}, "options.gem2017.gem.margin_mode"),
    ({"options": {"gem2017": {"gem.margn": 1}}}, "options.gem2017.gem.margn"),
    ({"papers": ["gem2071"]}, "papers.0"),
])
def test_bad_config_names_the_key(bad, key):
    with pytest.raises(cfg.ConfigError) as err:
        plan.build(bad)
    assert f"  {key}:" in str(err.value)


def test_unknown_artifact_lists_the_valid_ones():
    with pytest.raises(cfg.ConfigError, match="gem.table9.*valid.*gem.table3"):
        build(artifacts=["gem.table9"])


def test_schema_options_match_the_paper_modules():
    options = cfg.schema()["properties"]["options"]["properties"]
    for key, paper in registry().items():
        assert set(options[key]["properties"]) == set(paper.option_defaults), key


def test_hyperparameters_come_from_the_spec_tables():
    p = build(scale="full")
    hp = {(r.spec.benchmark, r.spec.method): r.hp for r in p.runs.values() if not r.spec.overrides}
    assert hp[("rot_mnist@gem2017", "ewc")]["ewc.strength"] == 1000.0
    assert hp[("rot_mnist@gem2017", "ewc")]["ewc.fisher_samples"] == 1000
    assert hp[("perm_mnist@gem2017", "ewc")]["ewc.strength"] == 3.0
    assert hp[("cifar100_20t@gem2017", "single")]["lr"] == 1.0
    assert hp[("perm_mnist@gem2017", "gem")]["gem.margin"] == 0.5
    assert hp[("rot_mnist@gem2017", "multimodal")]["model"]["name"] == "multimodal_mlp"
    quick = build()
    assert {r.hp["lr"] for r in quick.runs.values()
            if r.spec.benchmark.startswith("split_fmnist_til")} == {0.1}
    assert {r.hp["lr"] for r in quick.runs.values() if r.paper == "gmed2021"} == {0.05}


def test_options_change_only_the_runs_they_concern():
    base = build(papers=["gem2017"])
    changed = build(papers=["gem2017"], options={"gem2017": {"gem.margin_mode": "lower_bound"}})
    differ = {k for k in base.runs if base.runs[k].protocol_hash != changed.runs[k].protocol_hash}
    assert differ and all("/gem/" in k for k in differ)


def test_run_paths_parse_back():
    spec = RunSpec("rot_mnist@gem2017", "gem", 3, 5120, 2, (("gem.margin_mode", "lower_bound"),))
    path = spec.path("results")
    assert str(path) == "results/runs/rot_mnist@gem2017/gem/m5120-e2+gem.margin_mode=lower_bound/s3.json"
    assert RunSpec.from_path(path) == spec
    assert RunSpec.from_path("x/runs/b@p/single/m0-e1/s0.json").overrides == ()
    with pytest.raises(ValueError):
        RunSpec.from_path("results/runs/b@p/single/bad/s0.json")


@pytest.mark.parametrize("scale", ["smoke", "quick", "full"])
def test_every_planned_method_and_render_function_exists(scale):
    from clrepro.methods import METHODS

    p = build(scale=scale)
    assert {r.spec.method for r in p.runs.values()} <= set(METHODS)
    import importlib

    for job in p.artifacts.values():
        for fn in [job.artifact.render, *(c.check for c in job.artifact.claims)]:
            module, _, name = fn.__name__.partition(":")
            assert callable(getattr(importlib.import_module(module), name)), fn.__name__


def test_planning_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, clrepro.plan; clrepro.plan.build({'scale': 'full'}); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_seeds_are_the_users_choice():
    p = build(seeds={"gem2017": 5, "gmed2021": [3, 7]})
    assert {r.spec.seed for r in p.runs.values() if r.paper == "gem2017"} == {0, 1, 2, 3, 4}
    gmed = {r.spec.seed for r in p.runs.values() if r.paper == "gmed2021"
            and not dict(r.spec.overrides).get("tune")}
    assert gmed == {3, 7}  # every GMED artifact, the reference methods included
    assert len([r for r in p.runs.values() if r.paper == "gem2017"]) == 34 * 5
    # a run of a planned configuration with any other seed is accepted, same protocol
    other = p.run_job("results/runs/perm_fmnist@gem2017.quick/gem/m1000-e1/s12345.json")
    same = p.run_job("results/runs/perm_fmnist@gem2017.quick/gem/m1000-e1/s0.json")
    assert other.spec.seed == 12345 and other.hp == same.hp
    with pytest.raises(cfg.ConfigError, match="seeds.gem2017"):
        build(seeds={"gem2017": 0})
    with pytest.raises(cfg.ConfigError, match="unknown key"):
        build(seeds={"gemm2017": 3})


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_batches_cover_every_cpu_run_once_within_their_limits(scale):
    p = plan.build({"scale": scale, "batch_runs": 5, "batch_minutes": 100})
    batched = [k for keys in p.batches.values() for k in keys]
    assert len(batched) == len(set(batched))
    wanted = {k for k, r in p.runs.items() if not r.resources["gpu"] or scale != "full"}
    assert set(batched) == wanted
    for batch, keys in p.batches.items():
        jobs = [p.runs[k] for k in keys]
        assert len(keys) <= 5
        assert len(keys) == 1 or sum(j.resources["runtime"] for j in jobs) <= 100
        assert {j.spec.benchmark for j in jobs} == {batch.split("/")[0]}
        assert len({bool(j.needs) for j in jobs}) == 1  # tuning readers never wait on their own batch


def test_batch_runs_zero_means_one_job_per_run():
    assert plan.build({"scale": "quick", "batch_runs": 0}).batches == {}
