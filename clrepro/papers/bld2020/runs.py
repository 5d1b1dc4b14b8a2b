"""Which runs each BLD artifact reads (spec §3, §6, §7)."""

from __future__ import annotations

from clrepro.papers.bld2020.protocol import (ABLATIONS, DATASETS, METHOD_OF, METHODS, bench_name,
                                             lr_tuning, mu_tuning, offline_epochs)
from clrepro.spec import RunSpec

SEEDS = {"full": [0, 1, 2, 3, 4], "quick": [0, 1, 2], "smoke": [0]}
TITLES = {"mc_finetune": "Finetune", "batch_l2": "L2", "bld": "BLD", "lwf_single": "LwF",
          "lwf_offline": "LwF", "bld_alternated": "Alternated", "bld_no_balancing": "No-balancing"}
GROUPS = {"mc_finetune": "MC-OCL", "batch_l2": "MC-OCL", "bld": "MC-OCL",
          "lwf_single": "Single-pass", "lwf_offline": "Offline"}
DATASET_TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "svhn": "SVHN"}


def seeds(scale: str, chosen: list[int] | None) -> list[int]:
    return list(chosen) if chosen else SEEDS[scale]


def run(row: str, dataset: str, tasks: int, seed: int, scale: str) -> RunSpec | None:
    bench = bench_name(dataset, tasks, scale)
    if bench is None:
        return None
    epochs = offline_epochs(dataset, tasks, scale) if row == "lwf_offline" else 1
    return RunSpec(bench, METHOD_OF.get(row, row), seed, 0, epochs)


def row_of(spec: RunSpec) -> str:
    if spec.method == "lwf":
        return "lwf_offline" if spec.epochs > 1 else "lwf_single"
    return spec.method


def _grid(rows, datasets, tasks, scale, chosen) -> list[RunSpec]:
    specs = [run(r, d, tasks, s, scale) for d in datasets for r in rows for s in seeds(scale, chosen)]
    return [s for s in specs if s is not None]


def table1(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return _grid(METHODS, ("mnist", "cifar10", "svhn"), 2, scale, chosen)


def table2(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return _grid(METHODS, ("mnist",), 5, scale, chosen)


def table3(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return _grid(METHODS, ("cifar10",), 5, scale, chosen)


def table4(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    """SVHN 5-task; no offline stand-in, so quick runs none (memory columns are analytic)."""
    return _grid(METHODS, ("svhn",), 5, scale, chosen)


def table5(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    rows = ("mc_finetune", "batch_l2", "bld", *ABLATIONS)
    return _grid(rows, ("cifar10",), 2, scale, chosen) + _grid(rows, ("cifar10",), 5, scale, chosen)


def table1_and_c7(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    """Table 1's runs, plus the 5-task runs that claim C7 ("every dataset and setting")
    also reads."""
    return table1(scale, chosen) + table2(scale, chosen) + table3(scale, chosen) + table4(scale, chosen)


def table2_and_c5(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    """Table 2's runs, plus the other 5-task runs that claim C5 ("all three datasets") reads."""
    return table2(scale, chosen) + table3(scale, chosen) + table4(scale, chosen)


def user_tuning(spec: RunSpec) -> RunSpec:
    """The tuning run a user's grid cell mirrors (L2's mu, spec §4.5 amended): the whole
    stream of the setting's validation twin, seed 0, mean validation accuracy at the end."""
    return RunSpec(spec.benchmark + ".val", "bld", 0, 0, 1, (("tune", True),))


def settings(scale: str) -> list[tuple[str, int]]:
    """(dataset, tasks) pairs this scale runs."""
    return [(d, t) for d in DATASETS for t in (2, 5) if bench_name(d, t, scale)]


def tuning(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    """The tuning grids on the training data's validation twins: the stand-ins' SGD learning
    rate (quick and smoke only) and L2's mu, per dataset and task count."""
    stand_ins = sorted({d for d, _ in settings(scale)})
    return ([s for d in stand_ins for s in lr_tuning(d, scale)]
            + [s for d, t in settings(scale) for s in mu_tuning(d, t, scale)])
