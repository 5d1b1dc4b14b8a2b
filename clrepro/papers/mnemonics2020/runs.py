"""Which runs each Mnemonics artifact reads (spec §3, §7): 304 at full scale (+31 optional
ImageNet upper bounds), the quick stand-in's 19."""

from __future__ import annotations

from clrepro.papers.mnemonics2020.protocol import (DATASETS, EPOCHS, METHODS, PHASES, SMOKE_EPOCHS,
                                                   VARIANTS, bench_name, parse)
from clrepro.spec import RunSpec

SEEDS = {"cifar100": [0, 1, 2], "imagenet_subset": [0], "imagenet": [0]}  # spec §3 suite default
ROWS = [f"{m}{suffix}" for m in METHODS for suffix in ("", "_ours")]
TITLES = {"lwf_cil": "LwF", "icarl_cil": "iCaRL", "bic": "BiC", "lucir": "LUCIR",
          **{f"{m}_ours": f"{t} w/ ours" for m, t in (("lwf_cil", "LwF"), ("icarl_cil", "iCaRL"),
                                                      ("bic", "BiC"), ("lucir", "LUCIR"))},
          "joint_cil": "Upper Bound", "ours": "ours", "ours_noadj": "ours w/o adj.",
          "random": "random", "random_noadj": "random w/o adj.", "herding": "herding",
          "herding_noadj": "herding w/o adj."}
TABLE2_ROWS = ("random_noadj", "random", "herding_noadj", "herding", "ours_noadj", "ours")
DATASET_TITLES = {"cifar100": "CIFAR-100", "imagenet_subset": "ImageNet-Subset",
                  "imagenet": "ImageNet"}


def settings(scale: str, datasets=DATASETS) -> list[tuple[str, int]]:
    return [(d, n) for d in datasets for n in PHASES if bench_name(d, n, scale)]


def seeds(dataset: str, scale: str, chosen: list[int] | None) -> list[int]:
    if chosen:
        return list(chosen)
    return SEEDS[dataset] if scale == "full" else [0]


def epochs(dataset: str, scale: str) -> int:
    if scale == "smoke":
        return SMOKE_EPOCHS
    return EPOCHS[dataset if scale == "full" else "fmnist"]


def run(row: str, dataset: str, n: int, seed: int, scale: str) -> RunSpec:
    """A Table 1 row (method or method_ours) or a Table 2 variant (LUCIR)."""
    if row in VARIANTS:
        method, variant = "lucir", row
    else:
        method, variant = (row[:-len("_ours")], "ours") if row.endswith("_ours") else (row, None)
    overrides = (("variant", variant),) if variant else ()
    return RunSpec(bench_name(dataset, n, scale), method, seed, 20, epochs(dataset, scale), overrides)


def run_row(row: str) -> str:
    """The runs behind a table row: Table 2's 'ours' is Table 1's 'LUCIR w/ ours'."""
    return "lucir_ours" if row == "ours" else row


def row_of(spec: RunSpec) -> str:
    if spec.method == "joint_cil":
        return "joint_cil"
    variant = dict(spec.overrides).get("variant")
    if variant is None:
        return spec.method
    return f"{spec.method}_ours" if variant == "ours" and spec.method != "lucir" else (
        "lucir_ours" if variant == "ours" else variant)


def table1(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return [run(r, d, n, s, scale) for d, n in settings(scale) for r in ROWS
            for s in seeds(d, scale, chosen)]


def table2(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return [run(r, d, n, s, scale) for d, n in settings(scale, ("cifar100", "imagenet_subset"))
            for r in TABLE2_ROWS for s in seeds(d, scale, chosen)]


def class_counts(dataset: str, scale: str) -> list[tuple[int, int, int]]:
    """(classes, N of the benchmark that has them as a phase boundary, tasks to merge) of
    the upper bound: every class count of the N = 5, 10, 25 curves (31 per dataset)."""
    if scale != "full":
        return [(5 + k, 5, k + 1) for k in range(6 if scale == "quick" else 2)]
    base = 500 if dataset == "imagenet" else 50
    out = {}
    for n in sorted(PHASES, reverse=True):  # the finest split first
        step = base // n
        for k in range(n + 1):
            out.setdefault(base + k * step, (n, k + 1))
    return [(c, n, k) for c, (n, k) in sorted(out.items())]


def upper_bound(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    with_imagenet = bool((options or {}).get("upper_bound.imagenet"))
    datasets = ["cifar100", "imagenet_subset"] + (["imagenet"] if with_imagenet else [])
    if scale != "full":
        datasets = ["cifar100"]
    return [RunSpec(bench_name(d, n, scale), "joint_cil", s, 0, epochs(d, scale),
                    (("phases.merge", k),))
            for d in datasets for c, n, k in class_counts(d, scale) for s in seeds(d, scale, chosen)]


def fig4(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    """The Table 1 runs of the curves (LwF, iCaRL, BiC, LUCIR, LUCIR w/ ours) and the upper
    bound at every class count."""
    rows = ("lwf_cil", "icarl_cil", "bic", "lucir", "lucir_ours")
    return ([s for s in table1(scale, chosen) if row_of(s) in rows]
            + upper_bound(scale, chosen, options))


def exemplar_figures(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    """Figs. 1 and 5: the N = 5, first-seed runs with random, herding and mnemonics
    exemplars (Table 2) and LUCIR / LUCIR w/ ours (Table 1)."""
    picks = []
    for d in ("cifar100", "imagenet"):
        if not bench_name(d, 5, scale):
            continue
        first = seeds(d, scale, chosen)[0]
        rows = ("random", "herding", "ours") if d == "cifar100" else ()
        picks += [run(r, d, 5, first, scale) for r in rows]
        picks += [run(r, d, 5, first, scale) for r in ("lucir", "lucir_ours")]
    return list(dict.fromkeys(picks))


def setting_of(spec: RunSpec) -> tuple[str, int]:
    dataset, n, _ = parse(spec.benchmark)
    return dataset, n
