"""Which runs each GMED artifact reads (spec §3, §6 and §7)."""

from __future__ import annotations

from clrepro.papers.gmed2021.protocol import (MEMORY, MEMORY_METHODS, OPTION_DEFAULTS, TUNE_GRIDS,
                                              bench_name, datasets)
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


def seeds(scale: str, method: str = "er") -> list[int]:
    if scale == "full":
        return list(range(10))
    if scale == "smoke":
        return [0, 1] if method in PAIRED else [0]
    return list(range(5)) if method in PAIRED else [0, 1]  # >= 5 seeds for the paired tests


def default_memory(dataset: str, method: str, scale: str) -> int:
    base = "er" if method in ("iid_online", "iid_offline") else method
    if base not in MEMORY_METHODS:
        return 0
    return MEMORY.get(dataset, 500) if scale != "smoke" else 100


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


def table2(scale: str) -> list[RunSpec]:
    methods = TABLE2_METHODS if scale == "full" else QUICK_TABLE2
    return [spec(d, m, s, scale) for d in datasets(scale) for m in methods for s in seeds(scale, m)]


def tuning(scale: str) -> list[RunSpec]:
    """§4.7: ER+GMED over the alpha x beta grid, and Random Edit over the alpha grid, on the
    first three tasks, one seed per cell."""
    alphas, betas = TUNE_GRIDS[OPTION_DEFAULTS["tune.grid"] if scale == "full" else "quick"]
    if scale == "smoke":
        alphas, betas = alphas[:2], betas[:1]
    epochs = OPTION_DEFAULTS["tune.max_epochs"]
    runs = []
    for d in datasets(scale):
        mem = default_memory(d, "er", scale)
        runs += [RunSpec(bench_name(d, scale), "er_gmed", 0, mem, epochs,
                         (("gmed.alpha", a), ("gmed.beta", b), ("tune", True)))
                 for a in alphas for b in betas]
        runs += [RunSpec(bench_name(d, scale), "er_random_edit", 0, mem, epochs,
                         (("gmed.alpha", a), ("tune", True))) for a in alphas]
    if scale != "full":
        runs = [r for r in runs if r.benchmark == bench_name("split_mnist", scale)]  # spec §6
    return runs


def table3(scale: str) -> list[RunSpec]:
    gmed = [spec(d, "er_gmed", s, scale) for d in datasets(scale) for s in seeds(scale, "er_gmed")]
    n = 10 if scale == "full" else (3 if scale == "quick" else 1)
    return gmed + [spec(d, m, s, scale) for d in datasets(scale)
                   for m in ("er_random_edit", "er_hindsight_edit") for s in range(n)]


def fig3(scale: str) -> list[RunSpec]:
    ds = [d for d in ("rot_mnist", "split_miniimagenet") if bench_name(d, scale)]
    tuned = [spec(d, "er_gmed", s, scale) for d in ds for s in seeds(scale, "er_gmed")]
    return tuned + [spec(d, "er_gmed", s, scale, overrides=(("gmed.beta", 0.0),))
                    for d in ds for s in seeds(scale, "er_gmed")]


def fig4(scale: str) -> list[RunSpec]:
    ds = datasets(scale) if scale == "full" else ["split_mnist"]
    n = 10 if scale == "full" else (3 if scale == "quick" else 1)
    runs = []
    for d in ds:
        sizes = FIG4_MINI_SIZES if d == "split_miniimagenet" else FIG4_SIZES[scale]
        runs += [spec(d, m, s, scale, memory=size) for m in ("er", "er_gmed") for size in sizes
                 for s in range(n)]
    return runs


def edit_log(scale: str) -> list[RunSpec]:
    """Figs. 5-6 read the edits of the seed-0 ER+GMED run of Table 2 on Split MNIST."""
    return [spec("split_mnist", "er_gmed", 0, scale)]
