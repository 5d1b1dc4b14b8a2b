"""Mnemonics training (Liu et al., CVPR 2020): benchmarks and hyperparameters (spec
mnemonics-2020.md §4-§6).

Class-incremental: a base phase of half the classes, then N phases of the rest; every phase
is offline training (SGD, momentum 0.9, weight decay 5e-4, lr 0.1 with two decays) on its
data and 20 exemplars of every old class. Runs are named by their table row: the method
(lwf_cil, icarl_cil, bic, lucir) and a `variant` -- "ours" = mnemonics exemplars, old-
exemplar adjustment, weight transfer and balanced fine-tuning (Table 1's "w/ ours") -- or an
exemplar ablation of Table 2 (LUCIR with weight transfer). The joint-training upper bound of
Fig. 4 merges the first phases into one (`phases.merge`).
"""

from __future__ import annotations

from typing import Any

from clrepro.data.definitions import BenchmarkDef
from clrepro.papers.mnemonics2020.classes import CIFAR100_ORDER, FMNIST_ORDER, IMAGENET_ORDER
from clrepro.papers.mnemonics2020.memory import bilevel_plan
from clrepro.papers.mnemonics2020.sizes import (BATCH, DATASETS, FIXED_TOTAL, MNEMONICS,  # noqa: F401
                                                PER_CLASS, PHASES, model_spec)
from clrepro.papers.table import OMIT, values
from clrepro.spec import RunSpec

PROTOCOL_VERSION = 2  # 2: one meta-update per validation mini-batch (spec §4.5, amended)

OPTION_DEFAULTS: dict[str, Any] = {
    "memory.policy": "per_class_20",  # D1: per_class_20 (main paper) | fixed_2000 (code)
    "mnemonics.mode": "bilevel",  # D2: bilevel (paper) | code_single_level
    "mnemonics.init": "random",  # D3: random (paper) | herding (code)
    "mnemonics.truncate_k": None,  # back-propagate through the last k inner steps only
    "mnemonics.schedule": "per_batch",  # §4.5 amended: per_batch | per_epoch (the old default)
    "baselines.variant": "paper",  # D5: paper | code_readme (one CE+KD model, CNN and NME rows)
    "kd.form": "soft_targets_eq5",  # D7: soft_targets_eq5 | code
    "upper_bound.imagenet": False,  # the optional ImageNet-1k upper bounds (31 runs)
    "weight_transfer.scale": "kernel",  # D11: kernel (official code's shape) | filter
    "weight_transfer.shift": "code",  # D11: code (convs with a bias only) | all | none
    "precision": "fp32",  # fp32 (fidelity) | bf16 autocast in the phase trainer's steps
    "bic.bias_layers": "newest",  # newest (BiC Eq. 5) | all (every phase's layer: FACIL, BiC code)
    "data_seed": 0,
}
VARIANT_KEYS = ("variant", "phases.merge")
# §4.5 amended: the bilevel step's memory plan fits the GPUs runs go to (config gpu_memory_gb)
CONFIG_KEYS = ("gpu_memory_gb",)

# §4.3 model level; quick and smoke stand-ins per spec §6 (suite choices)
# quick: 6 epochs per phase (spec §6 leaves the count to the budget; the lr steps keep the
# full schedule's proportions, 1/2 and 3/4 of the way)
EPOCHS = {"cifar100": 160, "imagenet_subset": 90, "imagenet": 90, "fmnist": 6}
MILESTONES = {"cifar100": [80, 120], "imagenet_subset": [30, 60], "imagenet": [30, 60],
              "fmnist": [3, 5]}
SMOKE_EPOCHS, SMOKE_MILESTONES = 2, [1]
SGD = {"name": "sgd", "momentum": 0.9, "weight_decay": 5e-4}
LR = 0.1
MNEMONICS_LR = INNER_LR = FINETUNE_LR = 0.01
FINETUNE_EPOCHS = {"full": 50, "quick": 5, "smoke": 1}
KD_LAMBDA, KD_TAU = 0.5, 2.0
LUCIR = {"lucir.lambda_base": 5.0, "lucir.k": 2, "lucir.margin": 0.5}
# BiC (amended spec §4.3): a balanced validation part, 10 % of each class's exemplar budget
# (BiC §6.1: 9:1); stage 2 as BiC's code does it (FACIL approach/bic.py: 200 epochs of SGD
# with momentum 0.9 at the network's lr, mini-batches of its batch size, 0.1 * beta^2 / 2)
BIC = {"bic.val_fraction": 0.1, "bic.epochs": {"full": 200, "quick": 200, "smoke": 2}, "bic.lr": LR,
       "bic.momentum": 0.9, "bic.beta_l2": 0.1}

METHODS = ("lwf_cil", "icarl_cil", "bic", "lucir")
# Table 2 rows: exemplar kind, old-exemplar adjustment (all with weight transfer, LUCIR)
VARIANTS = {"ours": ("mnemonics", True), "ours_noadj": ("mnemonics", False),
            "random": ("random", True), "random_noadj": ("random", False),
            "herding": ("herding", True), "herding_noadj": ("herding", False)}


def bench_name(dataset: str, n: int, scale: str) -> str | None:
    if scale != "full":
        return f"fmnist_b5_n5@mnemonics2020.{scale}" if dataset == "cifar100" and n == 5 else None
    base = 500 if dataset == "imagenet" else 50
    return f"{dataset}_b{base}_n{n}@mnemonics2020"


def parse(benchmark: str) -> tuple[str, int, str]:
    """(the dataset the benchmark stands for, N phases, scale)."""
    base, _, suffix = benchmark.partition("@")
    scale = suffix.split(".")[1] if "." in suffix else "full"
    if base.startswith("fmnist"):
        return "cifar100", 5, scale
    dataset = base.rsplit("_b", 1)[0]
    return dataset, int(base.rsplit("_n", 1)[1]), scale


def data_of(benchmark: str) -> str:
    """The data the benchmark is built from (fmnist for the stand-ins)."""
    dataset, _, scale = parse(benchmark)
    return dataset if scale == "full" else "fmnist"


def benchmarks(scale: str, options: dict[str, Any]) -> dict[str, BenchmarkDef]:
    common = dict(kind="split", scenario="class_incremental", class_order="list",
                  remap_labels=True, data_seed=options["data_seed"])
    if scale != "full":
        smoke = scale == "smoke"
        # Fashion-MNIST, base 5 classes then 5 phases of 1 (smoke: 1 phase), shrunk to fit
        # the quick budget: 250 training images per class (a fixed subset; spec §6: 500) and
        # 14x14 inputs (spec §6: 28x28); all 1,000 test images per class
        return {bench_name("cifar100", 5, scale): BenchmarkDef(
            bench_name("cifar100", 5, scale), "fashion_mnist", n_tasks=2 if smoke else 6,
            classes_per_task=1, first_task_classes=5, class_list=FMNIST_ORDER,
            train_per_class=20 if smoke else 250, test_per_task=100 if smoke else None,
            image_size=14, resize="area", quick=True, **common)}
    defs = []
    for n in PHASES:
        defs.append(BenchmarkDef(bench_name("cifar100", n, scale), "cifar100", n_tasks=n + 1,
                                 classes_per_task=50 // n, first_task_classes=50,
                                 class_list=CIFAR100_ORDER, **common))
        defs.append(BenchmarkDef(bench_name("imagenet_subset", n, scale), "imagenet_subset",
                                 n_tasks=n + 1, classes_per_task=50 // n, first_task_classes=50,
                                 class_list=CIFAR100_ORDER, **common))
        defs.append(BenchmarkDef(bench_name("imagenet", n, scale), "imagenet", n_tasks=n + 1,
                                 classes_per_task=500 // n, first_task_classes=500,
                                 class_list=IMAGENET_ORDER, **common))
    return {d.name: d for d in defs}


def variant_flags(method: str, variant: str | None) -> dict[str, Any]:
    """Exemplar kind, adjustment and weight transfer of a table row."""
    if variant is None:  # the baselines: herding exemplars (LwF included, Table 1 footnote)
        return {"exemplars.kind": "herding", "mnemonics.adjust_old": False, "weight_transfer": False,
                "finetune": False}
    if variant not in VARIANTS:
        raise KeyError(f"unknown Mnemonics variant '{variant}'; known: {', '.join(VARIANTS)}")
    kind, adjust = VARIANTS[variant]
    return {"exemplars.kind": kind, "mnemonics.adjust_old": adjust, "weight_transfer": True,
            "finetune": True}


def hyperparams(spec: RunSpec, options: dict[str, Any]) -> dict[str, Any]:
    overrides = dict(spec.overrides)
    dataset, n, scale = parse(spec.benchmark)
    data = data_of(spec.benchmark)
    flags = variant_flags(spec.method, overrides.get("variant"))
    hp: dict[str, Any] = {
        "paper": "mnemonics2020", "protocol_version": PROTOCOL_VERSION, "method": spec.method,
        "lr": LR, "optimizer": SGD, "batch_size": BATCH, "model": model_spec(dataset, scale),
        "lr_schedule": {"milestones": SMOKE_MILESTONES if scale == "smoke" else MILESTONES[data],
                        "gamma": 0.1},
        "augment.crop_pad": 0 if dataset != "cifar100" else (4 if scale == "full" else 2),
        "augment.flip": True,
        "eval_batch_size": 500,
    }
    if scale == "full" and dataset != "cifar100":  # spec §4.1: random-resized crop 224, flip
        hp["augment.resized_crop"] = 224
    # execution and D11 switches enter a run's protocol only when set, so that the default
    # protocol (and every record made with it) stays as it was
    hp.update({k: options[k] for k in ("precision", "weight_transfer.scale", "weight_transfer.shift")
               if options[k] != OPTION_DEFAULTS[k]})
    if spec.method == "joint_cil":
        hp.update({"exemplars.kind": "random", "exemplars.policy": "per_class",
                   "exemplars.per_class": 0, "weight_transfer": False, "finetune.epochs": 0,
                   "finetune.lr": FINETUNE_LR, "finetune.batch_size": BATCH,
                   "phases.merge": overrides["phases.merge"], "log.artifacts": n == 5})
        return hp
    fixed = options["memory.policy"] == "fixed_2000"
    hp.update({
        "exemplars.kind": flags["exemplars.kind"],
        "exemplars.policy": "fixed_total" if fixed else "per_class",
        "exemplars.per_class": PER_CLASS, "weight_transfer": flags["weight_transfer"],
        "finetune.epochs": FINETUNE_EPOCHS[scale] if flags["finetune"] else 0,
        "finetune.lr": FINETUNE_LR, "finetune.batch_size": BATCH,
        "mnemonics.adjust_old": flags["mnemonics.adjust_old"],
        "log.artifacts": n == 5,  # Figs. 1 and 5 read the N = 5 runs
    })
    if fixed:
        hp["exemplars.total"] = FIXED_TOTAL
    if flags["exemplars.kind"] == "mnemonics" or flags["mnemonics.adjust_old"]:
        outer, inner = MNEMONICS[scale]
        hp.update({"mnemonics.outer_epochs": outer, "mnemonics.inner_steps": inner,
                   "mnemonics.inner_lr": INNER_LR, "mnemonics.lr": MNEMONICS_LR,
                   "mnemonics.truncate_k": options["mnemonics.truncate_k"],
                   "mnemonics.init": options["mnemonics.init"],
                   "mnemonics.mode": options["mnemonics.mode"], "mnemonics.val_batch": BATCH,
                   "mnemonics.schedule": options["mnemonics.schedule"],
                   "mnemonics.recompute": False})  # the stand-ins' unroll fits: plain, fastest
        if scale == "full":  # recompute the unroll, inner mini-batches where they do not fit
            try:
                hp.update(bilevel_plan(dataset, n, options["gpu_memory_gb"]))
            except MemoryError as exc:  # a config error, named before any job starts
                raise ValueError(f"gpu_memory_gb: {exc}") from exc
    hp.update(values(METHOD_VALUES, spec.method, {"options": options, "scale": scale}))
    return hp


def _code(c: dict[str, Any]) -> bool:
    """D5 code_readme: the baselines are one CE+KD model (LwF's), iCaRL its NME row."""
    return c["options"]["baselines.variant"] == "code_readme"


def _only_code(value):
    return lambda c: value if _code(c) else OMIT


# Each method's values beyond the common ones (clrepro.papers.table), §4.3
METHOD_VALUES: dict[str, dict[str, Any]] = {
    "lwf_cil": {"kd.lambda": KD_LAMBDA, "kd.tau": KD_TAU,
                "kd.form": lambda c: "code" if _code(c) else c["options"]["kd.form"]},
    "icarl_cil": {"kd.lambda": _only_code(KD_LAMBDA), "kd.tau": _only_code(KD_TAU),
                  "kd.form": _only_code("code"),
                  "icarl.loss": _only_code("ce_kd")},  # the README's "iCaRL": NME on LwF's model
    "bic": {"kd.tau": KD_TAU, **BIC, "bic.epochs": lambda c: BIC["bic.epochs"][c["scale"]],
            # enters the protocol only when set, so that default records stay as they were
            "bic.bias_layers": lambda c: (c["options"]["bic.bias_layers"] if c["options"][
                "bic.bias_layers"] != OPTION_DEFAULTS["bic.bias_layers"] else OMIT)},
    "lucir": LUCIR,
}


def resources(spec: RunSpec) -> dict[str, Any]:
    """Every full-scale run asks for a GPU; the quick stand-in runs on the CPU."""
    dataset, n, scale = parse(spec.benchmark)
    if scale != "full":
        return {"gpu": False, "threads": 1, "mem_mb": 3000, "runtime": 60}
    ours = dict(spec.overrides).get("variant") is not None
    runtime = {"cifar100": 240, "imagenet_subset": 1440, "imagenet": 7 * 1440}[dataset]
    return {"gpu": True, "threads": 8 if dataset != "cifar100" else 4,
            "mem_mb": 16000 if dataset == "cifar100" else 64000,
            "runtime": runtime * (3 if ours else 1)}
