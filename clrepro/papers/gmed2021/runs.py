"""Which runs each GMED artifact reads (spec §3, §6 and §7)."""

from __future__ import annotations

from clrepro.papers.gmed2021.protocol import (OPTION_DEFAULTS, bench_name, datasets,
                                              default_memory, random_edit_tuning, tuning_grid,
                                              tuning_run)
from clrepro.spec import RunSpec

TABLE2_METHODS = ["finetune", "iid_online", "agem", "gem", "gss", "bgd", "hal", "er", "mir",
                  "er_gmed", "mir_gmed", "iid_offline"]
QUICK_TABLE2 = ["finetune", "iid_online", "iid_offline", "agem", "er", "er_gmed", "mir",
                "mir_gmed"]  # spec §6
PAIRED = ("er", "er_gmed", "mir", "mir_gmed")  # the methods of the significance tests
PAIRS_OF = {"er_gmed": "er", "mir_gmed": "mir"}
TITLES = {"finetune": "Fine tuning", "iid_online": "iid online", "iid_offline": "iid offline",
          "agem": "AGEM", "gem": "GEM", "gss": "GSS-Greedy", "bgd": "BGD", "hal": "HAL",
          "er": "ER", "mir": "MIR", "er_gmed": "ER + GMED", "mir_gmed": "MIR + GMED",
          "er_random_edit": "Random Edit", "er_hindsight_edit": "Hindsight Edit"}
DATASET_TITLES = {"split_mnist": "Split MNIST", "perm_mnist": "Permuted MNIST",
                  "rot_mnist": "Rotated MNIST", "split_cifar10": "Split CIFAR-10",
                  "split_miniimagenet": "Split mini-ImageNet"}


def dataset_title(dataset: str, scale: str) -> str:
    return DATASET_TITLES[dataset] + ("" if scale == "full" else " (stand-in)")


FIG4_SIZES = {"full": [100, 200, 500, 1000], "quick": [100, 200, 500, 1000], "smoke": [50, 100]}
FIG4_MINI_SIZES = [1000, 5000, 10000, 20000]


def seeds(scale: str, method: str = "er", chosen: list[int] | None = None) -> list[int]:
    """The config's seeds for this paper, or the scale's own (more for the paired tests)."""
    if chosen:
        return list(chosen)
    if scale == "full":
        return list(range(10))
    if scale == "smoke":
        return [0, 1] if method in PAIRED else [0]
    return list(range(5)) if method in PAIRED else [0, 1]  # >= 5 seeds for the paired tests


def spec(dataset: str, method: str, seed: int, scale: str, memory: int | None = None,
         overrides: tuple = ()) -> RunSpec:
    """A run of a Table-2 method; iid online / offline are the iid learner with 1 / 5 passes."""
    epochs = 1
    if method == "iid_online":
        method = "iid"
    elif method == "iid_offline":
        method, epochs = "iid", OPTION_DEFAULTS["iid_offline.epochs"]
    if memory is None:
        memory = default_memory(dataset, method, scale)
    return RunSpec(bench_name(dataset, scale), method, seed, memory, epochs, overrides)


def label(run: RunSpec) -> str:
    if run.method == "iid":
        return "iid offline" if run.epochs > 1 else "iid online"
    return TITLES.get(run.method, run.method)


def table2(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    methods = TABLE2_METHODS if scale == "full" else QUICK_TABLE2
    return [spec(d, m, s, scale) for d in datasets(scale) for m in methods
            for s in seeds(scale, m, chosen)]


def tuning(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    """§4.7: ER+GMED over the alpha x beta grid (quick and smoke: on Split MNIST's stand-in
    only, spec §6), and Random Edit over the alpha grid on every dataset (Table 3 needs it)."""
    alphas, betas = tuning_grid(scale)
    runs = []
    for d in datasets(scale):
        if scale == "full" or d == "split_mnist":
            runs += [tuning_run(d, scale, "er_gmed", (("gmed.alpha", a), ("gmed.beta", b)))
                     for a in alphas for b in betas]
        runs += random_edit_tuning(d, scale)
    return runs


def user_tuning(spec: RunSpec) -> RunSpec:
    """The tuning run a user's grid cell mirrors (§4.7): ER's cell on the run's benchmark --
    seed 0, the first three tasks, up to tune.max_epochs passes, validation accuracy."""
    return RunSpec(spec.benchmark, "er", 0, spec.memory, OPTION_DEFAULTS["tune.max_epochs"],
                   (("tune", True),))


def ablation_seeds(scale: str, chosen: list[int] | None) -> list[int]:
    """Seeds of the Table 3 ablations and Fig. 4 (fewer than Table 2 in quick and smoke)."""
    return list(chosen) if chosen else list(range(10 if scale == "full" else (3 if scale == "quick" else 1)))


def table3(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    gmed = [spec(d, "er_gmed", s, scale) for d in datasets(scale)
            for s in seeds(scale, "er_gmed", chosen)]
    return gmed + [spec(d, m, s, scale) for d in datasets(scale)
                   for m in ("er_random_edit", "er_hindsight_edit") for s in ablation_seeds(scale, chosen)]


def fig3(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    ds = [d for d in ("rot_mnist", "split_miniimagenet") if bench_name(d, scale)]
    tuned = [spec(d, "er_gmed", s, scale) for d in ds for s in seeds(scale, "er_gmed", chosen)]
    return tuned + [spec(d, "er_gmed", s, scale, overrides=(("gmed.beta", 0.0),))
                    for d in ds for s in seeds(scale, "er_gmed", chosen)]


def fig4(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    ds = datasets(scale) if scale == "full" else ["split_mnist"]
    runs = []
    for d in ds:
        sizes = FIG4_MINI_SIZES if d == "split_miniimagenet" else FIG4_SIZES[scale]
        runs += [spec(d, m, s, scale, memory=size) for m in ("er", "er_gmed") for size in sizes
                 for s in ablation_seeds(scale, chosen)]
    return runs


def edit_log(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    """Figs. 5-6 read the edits of the first-seed ER+GMED run of Table 2 on Split MNIST."""
    return [spec("split_mnist", "er_gmed", seeds(scale, "er_gmed", chosen)[0], scale)]
