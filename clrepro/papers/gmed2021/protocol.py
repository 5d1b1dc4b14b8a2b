"""GMED (Jin, Du, Ren): benchmarks and hyperparameters (spec gmed-2021.md §4, §5, §6).

Task-free online CL: mini-batches of 10, one pass, one head over all classes. Task ids
reach only the task-aware baselines (GEM, HAL) through the stream's task boundaries.
"""

from __future__ import annotations

from typing import Any

from clrepro.data.definitions import BenchmarkDef
from clrepro.methods import catalog
from clrepro.papers.table import OMIT, Option, values
from clrepro.spec import RunSpec
from clrepro.tuning import tuned_by

PROTOCOL_VERSION = 1
DATASETS = ("split_mnist", "perm_mnist", "rot_mnist", "split_cifar10", "split_miniimagenet")
MNIST_LIKE = ("split_mnist", "perm_mnist", "rot_mnist")

OPTION_DEFAULTS: dict[str, Any] = {
    "gmed.alpha": None,  # {dataset: alpha}; unset datasets use Table 1 (D2)
    "gmed.beta": None,  # {dataset: beta}; likewise
    "gmed.reg_sign": "paper",  # D1: paper (-beta) | code (+beta)
    "gmed.edit_reduction": "mean",  # D6
    "gmed.clip": False,  # D7
    "gmed.edit_schedule": "per_iteration",  # D15
    "er.loss": "union_mean",  # D5: union_mean (paper) | sum_of_means (code)
    "tune.grid": "paper",  # D3: paper 7x5 | code 4x3
    "tune.max_epochs": 3,  # D4 (with early stopping)
    "miniimagenet.per_class_train": 250,  # D8: 250 (paper) | 456 (code)
    "split.val_fraction": 0.05,  # D9
    "model.nf": 20,  # D12
    "iid_offline.epochs": 5,  # passes of the iid offline upper bound (suite default)
    "random_edit.alpha": None,  # {dataset: stride}; unset: tuned on the alpha grid (§4.7)
    "random_edit.variant": "paper",  # paper: fresh unit direction per edit | code: per-slot fixed
    #                                  direction plus +beta * grad l_before (official code)
    "data_seed": 0,
}

# Table 1 (paper): editing stride alpha, regularisation strength beta
TABLE1 = {"split_mnist": (5.0, 0.01), "perm_mnist": (0.05, 0.001), "rot_mnist": (1.0, 0.01),
          "split_cifar10": (0.05, 0.001), "split_miniimagenet": (1.0, 0.1)}
TUNE_GRIDS = {  # D3
    "paper": ([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0], [0.0, 1e-3, 1e-2, 1e-1, 1.0]),
    "code": ([0.1, 0.05, 0.5, 1.0], [1e-3, 1e-2, 1e-1]),
    "quick": ([0.05, 1.0, 5.0], [0.0, 0.01, 0.1]),  # spec §6
}
LR = {"mnist": 0.05, "image": 0.1}  # §4.2
MEMORY = {"split_miniimagenet": 10_000}  # others 500
MIR_CANDIDATES = {"split_miniimagenet": 25}  # others 50
ITERATIONS = {"split_miniimagenet": 3}  # updates (and edits) per incoming batch; others 1
REPLAY_BATCH = 10
AGEM_REFERENCE = 256
GEM = {"gem.margin": 0.5, "gem.margin_mode": "additive", "gem.qp_eps": 1e-3,
       "gem.memory_policy": "last_m"}  # spec §4.5: suite defaults
GSS_COMPARE = 10
BGD = {"bgd.eta": 1.0, "bgd.std_init": 0.02, "bgd.mc_samples": 10}
HAL = {"hal.lambda": 0.1, "hal.gamma": 0.1, "hal.anchor_steps": 100, "hal.anchor_lr": 0.1}
VARIANT_KEYS = ("gmed.alpha", "gmed.beta", "tune")  # run-level overrides (tuning grid, beta = 0)

STAND_INS = {  # quick / smoke: Fashion-MNIST stand-ins for the three MNIST benchmarks
    "split_mnist": "split_fmnist", "perm_mnist": "perm_fmnist", "rot_mnist": "rot_fmnist"}
SMOKE_DATASETS = ("split_mnist", "rot_mnist")  # enough to exercise every artifact


def bench_name(dataset: str, scale: str) -> str | None:
    if scale == "full":
        return f"{dataset}@gmed2021"
    if scale == "smoke" and dataset not in SMOKE_DATASETS:
        return None
    stand_in = STAND_INS.get(dataset)
    return f"{stand_in}@gmed2021.{scale}" if stand_in else None


def dataset_of(benchmark: str) -> str:
    base, _, suffix = benchmark.partition("@")
    for dataset in DATASETS:
        if base == dataset or base == STAND_INS.get(dataset):
            return dataset
    raise KeyError(f"{benchmark} is not a GMED benchmark")


def scale_of(benchmark: str) -> str:
    suffix = benchmark.split("@")[1]
    return suffix.split(".")[1] if "." in suffix else "full"


def datasets(scale: str) -> list[str]:
    return [d for d in DATASETS if bench_name(d, scale)]


def benchmarks(scale: str, options: dict[str, Any]) -> dict[str, BenchmarkDef]:
    seed, val = options["data_seed"], options["split.val_fraction"]
    split = dict(kind="split", scenario="class_incremental", classes_per_task=2,
                 class_order="natural", val_fraction=val, data_seed=seed)
    if scale == "full":
        defs = [
            BenchmarkDef("split_mnist@gmed2021", "mnist", n_tasks=5, train_per_task=1000, **split),
            BenchmarkDef("perm_mnist@gmed2021", "mnist", "permuted", 10, "domain_incremental",
                         shared_subset=1000, val_fraction=0.05, identity_first=True,
                         transform_seed="run", data_seed=seed),
            BenchmarkDef("rot_mnist@gmed2021", "mnist", "rotated", 20, "domain_incremental",
                         train_per_task=950, val_per_task=50, test_per_task=1000, test_draw="run",
                         interpolation="cubic", transform_seed="run", data_seed=seed),
            BenchmarkDef("split_cifar10@gmed2021", "cifar10", n_tasks=5, **split),
            BenchmarkDef("split_miniimagenet@gmed2021", "miniimagenet", n_tasks=20,
                         train_per_class=options["miniimagenet.per_class_train"],
                         **{**split, "classes_per_task": 5}),
        ]
    else:
        quick = scale == "quick"
        n = {"split": 5 if quick else 2, "perm": 5 if quick else 2, "rot": 10 if quick else 2}
        defs = [d for d in [  # the datasets this scale has (bench_name gives "" otherwise)
            BenchmarkDef(bench_name("split_mnist", scale) or "", "fashion_mnist", n_tasks=n["split"],
                         train_per_task=1000 if quick else 100,
                         test_per_task=None if quick else 200, quick=True, **split),
            BenchmarkDef(bench_name("perm_mnist", scale) or "", "fashion_mnist", "permuted", n["perm"],
                         "domain_incremental", shared_subset=1000 if quick else 100,
                         val_fraction=0.05, identity_first=True, transform_seed="run",
                         test_per_task=2000 if quick else 200, quick=True, data_seed=seed),
            BenchmarkDef(bench_name("rot_mnist", scale) or "", "fashion_mnist", "rotated", n["rot"],
                         "domain_incremental", train_per_task=500 if quick else 100,
                         val_per_task=25 if quick else 5, test_per_task=1000 if quick else 200,
                         test_draw="run", interpolation="cubic", transform_seed="run",
                         quick=True, data_seed=seed),
        ] if d.name]
    return {d.name: d for d in defs}


def alpha_beta(dataset: str, options: dict[str, Any]) -> tuple[float, float]:
    alpha, beta = TABLE1[dataset]
    return ((options.get("gmed.alpha") or {}).get(dataset, alpha),
            (options.get("gmed.beta") or {}).get(dataset, beta))


# -- memory sizes and the tuning runs a tuned value is selected from (§4.7) ----------------
def default_memory(dataset: str, method: str, scale: str) -> int:
    base = "er" if method in ("iid_online", "iid_offline") else method
    if base not in MEMORY_METHODS:
        return 0
    return MEMORY.get(dataset, 500) if scale != "smoke" else 100


def tuning_grid(scale: str) -> tuple[list[float], list[float]]:
    alphas, betas = TUNE_GRIDS[OPTION_DEFAULTS["tune.grid"] if scale == "full" else "quick"]
    return (alphas[:2], betas[:1]) if scale == "smoke" else (alphas, betas)


def tuning_run(dataset: str, scale: str, method: str, overrides: tuple) -> RunSpec:
    """One grid cell: seed 0 (one seed per cell, whatever the experiment's seeds), the
    first three tasks, up to tune.max_epochs passes (§4.7)."""
    return RunSpec(bench_name(dataset, scale), method, 0, default_memory(dataset, "er", scale),
                   OPTION_DEFAULTS["tune.max_epochs"], (*overrides, ("tune", True)))


def random_edit_tuning(dataset: str, scale: str) -> list[RunSpec]:
    """Random Edit's stride alpha_r is tuned on the alpha grid like GMED's alpha (§4.5, §4.7);
    its Table 3 runs use the selected value."""
    alphas, _ = tuning_grid(scale)
    return [tuning_run(dataset, scale, "er_random_edit", (("gmed.alpha", a),)) for a in alphas]


def random_edit_alpha(dataset: str, scale: str, options: dict[str, Any]):
    """Random Edit's stride: the configured value, else tuned on the alpha grid like GMED's
    alpha (§4.5 "tuned like alpha"); the training job reads the tuning runs' records."""
    fixed = (options.get("random_edit.alpha") or {}).get(dataset)
    return fixed if fixed is not None else tuned_by(random_edit_tuning(dataset, scale))


def model_spec(dataset: str, options: dict[str, Any]) -> dict[str, Any]:
    if dataset in MNIST_LIKE:
        return {"name": "mlp", "hidden": [400, 400], "init": "default"}
    return {"name": "resnet18_reduced", "nf": options["model.nf"]}


def _overridden(key: str, fallback: str):
    """A run-level override (a tuning-grid cell) of `key`, else the context's value."""
    return lambda c: c["overrides"].get(key, c[fallback])


REPLAY = {"replay.batch_size": REPLAY_BATCH,
          "replay.iterations": lambda c: ITERATIONS.get(c["dataset"], 1),
          "er.loss": Option("er.loss")}
MIR = {"mir.candidates": lambda c: MIR_CANDIDATES.get(c["dataset"], 50)}
EDIT = {"gmed.alpha": _overridden("gmed.alpha", "alpha"), "gmed.clip": Option("gmed.clip"),
        "gmed.edit_schedule": Option("gmed.edit_schedule"),
        # the seed-0 style runs of Split MNIST keep unedited copies (Figs. 5-6)
        "gmed.log_edits": lambda c: c["method"] == "er_gmed" and c["dataset"] == "split_mnist"}
GMED_DIRECTION = {"gmed.beta": _overridden("gmed.beta", "beta"),
                  "gmed.reg_sign": Option("gmed.reg_sign"),
                  "gmed.edit_reduction": Option("gmed.edit_reduction")}
# Each method's values beyond the common ones (clrepro.papers.table), §4.2-§4.5
METHOD_VALUES: dict[str, dict[str, Any]] = {
    "er": REPLAY,
    "mir": {**REPLAY, **MIR},
    "er_gmed": {**REPLAY, **EDIT, **GMED_DIRECTION},
    "mir_gmed": {**REPLAY, **MIR, **EDIT, **GMED_DIRECTION},
    "er_hindsight_edit": {**REPLAY, **EDIT, **GMED_DIRECTION},
    "er_random_edit": {
        **REPLAY, "random_edit.variant": Option("random_edit.variant"),
        # the code's variant adds +beta * grad l_before
        "gmed.beta": lambda c: (_overridden("gmed.beta", "beta")(c)
                                if c["options"]["random_edit.variant"] == "code" else OMIT),
        # alpha_r: the configured value, else tuned on the alpha grid like GMED's alpha
        **EDIT, "gmed.alpha": _overridden("gmed.alpha", "random_edit_alpha")},
    "gss": {**REPLAY, "gss.compare": GSS_COMPARE},
    "agem": {"agem.reference_size": AGEM_REFERENCE},
    "gem": GEM,
    "bgd": BGD,
    "hal": {**HAL, "replay.batch_size": REPLAY_BATCH},
    "iid": {"iid.eval": "final"},
    "finetune": {},
}
MEMORY_METHODS = tuple(m for m in METHOD_VALUES if m in catalog.methods_that("needs_memory"))


def hyperparams(spec: RunSpec, options: dict[str, Any]) -> dict[str, Any]:
    """The resolved hyperparameters of one run (stored in its record; changes rerun it)."""
    overrides = dict(spec.overrides)
    dataset = dataset_of(spec.benchmark)
    image = dataset not in MNIST_LIKE
    method = spec.method  # one without a row in METHOD_VALUES: its declared defaults (plan)
    hp: dict[str, Any] = {
        "paper": "gmed2021", "protocol_version": PROTOCOL_VERSION, "method": method,
        "lr": LR["image" if image else "mnist"], "batch_size": 10,
        "eval_every": 10**9,  # evaluate at task ends only (final accuracy, per-task log)
        "eval_batch_size": 500 if image else 1000, "checkpoint_every": 500,
        "model": model_spec(dataset, options), "memory": spec.memory,
    }
    alpha, beta = alpha_beta(dataset, options)
    ctx = {"options": options, "overrides": overrides, "dataset": dataset, "method": method,
           "alpha": alpha, "beta": beta}
    if method == "er_random_edit":  # reads tuning records: only for the runs that use it
        ctx["random_edit_alpha"] = random_edit_alpha(dataset, scale_of(spec.benchmark), options)
    hp.update(values(METHOD_VALUES, method, ctx))
    if overrides.get("tune"):  # §4.7: first three tasks, up to max_epochs, validation sets
        hp.update(TUNING)
    return hp


TUNING = {"tasks_limit": 3, "eval_split": "val", "early_stopping": True}


def resources(spec: RunSpec) -> dict[str, Any]:
    dataset = dataset_of(spec.benchmark)
    full = scale_of(spec.benchmark) == "full"
    if dataset in MNIST_LIKE:
        heavy = spec.method in ("gem", "gss", "hal", "bgd") or spec.epochs > 1
        return {"gpu": False, "threads": 1, "mem_mb": 3000 if full else 2000,
                "runtime": (30 if heavy else 10) if full else 15}
    mini = dataset == "split_miniimagenet"
    return {"gpu": True, "threads": 2, "mem_mb": 24000 if mini else 8000,
            "runtime": (480 if mini else 120) * (2 if spec.epochs > 1 else 1)}
