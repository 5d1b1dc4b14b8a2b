"""Three deviations from the papers' protocols, fixed: Random Edit's stride is tuned, iCaRL
keeps the official code's budget rule, GMED's permuted MNIST has one validation split."""

import json

import torch

from clrepro import plan
from clrepro.data.benchmarks import BenchmarkDef, prepare
from clrepro.data.sources import synthetic
from clrepro.methods import METHODS
from clrepro.papers.gmed2021 import runs as gmed_runs
from clrepro.tuning import is_tuned, resolve

from conftest import tiny_benchmark
from test_gmed_methods import _gmed_method
from test_methods import HP, context, feed


def test_random_edit_uses_the_stride_its_tuning_runs_select(tmp_path):
    p = plan.build({"papers": ["gmed2021"], "results": str(tmp_path)})
    run = p.run_job(tmp_path / "runs/rot_fmnist@gmed2021.quick/er_random_edit/m500-e1/s1.json")
    assert is_tuned(run.hp["gmed.alpha"])  # not GMED's alpha
    grid = gmed_runs.random_edit_tuning("rot_mnist", "quick")
    assert run.needs == grid and all(str(s.path(tmp_path)) in p.runs for s in grid)
    for spec, val_acc in zip(grid, (0.55, 0.61, 0.40)):  # alpha 0.05, 1.0, 5.0
        path = spec.path(tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"status": "ok", "R": [[0.2, 0.3], [val_acc, val_acc]],
                                    "hp": {"gmed.alpha": dict(spec.overrides)["gmed.alpha"]}}))
    hp, chosen = resolve(run.hp, tmp_path)
    assert hp["gmed.alpha"] == 1.0 and chosen["gmed.alpha"]["val_acc"] == 0.61
    fixed = plan.build({"papers": ["gmed2021"], "options": {"gmed2021": {
        "random_edit.alpha": {"rot_mnist": 0.01}}}})
    assert fixed.run_job("results/runs/rot_fmnist@gmed2021.quick/er_random_edit/m500-e1/s1.json"
                         ).hp["gmed.alpha"] == 0.01


def test_random_edit_code_variant_keeps_one_direction_per_slot():
    torch.manual_seed(0)
    method, bench = _gmed_method("er_random_edit", **{"random_edit.variant": "code",
                                                      "gmed.alpha": 1e-3, "gmed.beta": 0.0})
    slots = torch.arange(5)
    method.pending_slots = slots
    mx, my = method.memory.x[slots], method.memory.y[slots]
    first = method.direction(mx, my, None, None)
    again = method.direction(mx + 0.5, my, None, None)  # beta = 0: the slot's own direction
    assert torch.equal(first, again)
    assert torch.allclose(first.flatten(1).norm(dim=1), torch.ones(5))
    paper, _ = _gmed_method("er_random_edit", **{"gmed.alpha": 1e-3})
    assert not torch.equal(paper.direction(mx, my, None, None), paper.direction(mx, my, None, None))


def test_icarl_keeps_old_exemplar_sets_by_default_as_the_official_code():
    assert plan.build({}).runs["results/runs/split_fmnist_til@gem2017.quick/icarl/m250-e1/s0.json"
                              ].hp["icarl.trim_old"] is False
    bench = tiny_benchmark("split", "task_incremental", n_tasks=3)
    sizes = {}
    for trim in (False, True):
        icarl = METHODS["icarl"](context(bench), {**HP, "memory": 12, "icarl.trim_old": trim})
        feed(icarl, bench, batches=3)
        sizes[trim] = {c: len(e) for c, e in icarl.exemplars.items()}
        assert icarl.counters["exemplars_stored"] == sum(sizes[trim].values())
    # 12 slots: task 0's two classes get 6 each; later classes 3 and 2; only trimming cuts 6 -> 2
    assert sizes[False][0] == 6 and sizes[True][0] == 2
    assert sum(sizes[False].values()) > 12 >= sum(sizes[True].values())


def test_gmed_permuted_tasks_share_one_validation_split():
    raw = synthetic("mnist", (1, 28, 28), 10, train_per_class=60, test_per_class=20)
    defn = BenchmarkDef("perm@gmed-like", "mnist", "permuted", 4, "domain_incremental",
                        shared_subset=100, val_fraction=0.05, identity_first=True,
                        transform_seed="run", test_per_task=50)
    prepared = prepare(defn, raw)
    vals = [prepared[f"val/{t}"] for t in range(4)]
    pools = [set(prepared[f"pool/{t}"].tolist()) for t in range(4)]
    assert len(vals[0]) == 5 and all(torch.equal(v, vals[0]) for v in vals)
    assert all(pool == pools[0] for pool in pools) and len(pools[0]) == 95
    assert not pools[0] & set(vals[0].tolist())
