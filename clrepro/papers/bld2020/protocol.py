"""BLD (Fini et al., ECCV 2020): benchmarks and hyperparameters (spec bld-2020.md §4-§6).

Memory-constrained online CL: task-aware heads, one pass in batches of 20 images, each
transformed into regenerable views. The paper gives alpha_j = 1e-4, alpha_w = 1e-6,
lambda = 2, 2 joint steps, 50 views; everything else is a suite default of the spec
(temperature, augmentation, L2 weight, LwF epochs, split seeds). There is no official code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from clrepro.data.definitions import BenchmarkDef
from clrepro.papers.table import Option, values
from clrepro.spec import RunSpec
from clrepro.tuning import tuned_by

PROTOCOL_VERSION = 2  # 2: per-head balancing, merged last batch, tuned L2 mu, quick SGD

OPTION_DEFAULTS: dict[str, Any] = {
    # D6: sgd (Algorithms 1-2; the quick stand-ins at raised learning rates, spec §6 amended)
    # | adam (labelled deviation: carries state between batches, not MC-OCL) | auto: sgd at
    # full scale, Adam at 1e-3 for the quick stand-ins (the suite's earlier default)
    "bld.optimizer": "sgd",
    "batch.keep_last": False,  # true: keep each task's final partial batch (spec §4.4 amended)
    "l2.mu": None,  # a fixed L2 weight for every setting instead of the validation selection
    "bld.norm_granularity": "tensor",  # D8: tensor | module | global
    "bld.batch_views": False,  # D9: views as separate passes (paper) or stacked
    "bld.batch_reduction": "sum",  # D10: Eqs. 1-2 sum over the batch | mean
    "split.fixed": False,  # true: one class-to-task split (data seed) for every run
    "finetune.steps": 2,  # Finetune's updates per batch (suite default: BLD's two joint steps)
    "data_seed": 0,
}

LR = 1e-4  # alpha_j, and every baseline's learning rate (§4.1)
LR_WARMUP = 1e-6  # alpha_w = 1e-2 alpha_j
WARMUP_RATIO = 1e-2  # alpha_w = 1e-2 alpha_j (Algorithm 1), also where alpha_j is raised
# The quick stand-ins have about 1/50 of the paper's steps per task, and plain SGD at 1e-4
# fits nothing in them. Their SGD learning rate alpha_j (every single-pass method; alpha_w =
# alpha_j / 100) is the cell of QUICK_LR_GRID with the best validation accuracy after one
# online pass over the first task (tuning runs `lr_tuning`, bld.tuning shows the grid and
# flags a difference from the value used here).
QUICK_LR = {"mnist": 1e-3, "cifar10": 3e-2}  # dataset the stand-in replaces -> alpha_j
QUICK_LR_GRID = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2)
ADAM_QUICK_LR = 1e-3  # bld.optimizer auto (the earlier default): Adam for the stand-ins
VAL_FRACTION = 0.1  # of each class's training images, held out in the tuning twins (`.val`)
L2_MU_GRID = (10.0, 1e2, 1e3, 1e4, 1e5)  # spec §4.5 (amended)
VARIANT_KEYS = ("l2.mu", "lr", "tune")  # tuning-grid cells
LAMBDA = 2.0
TAU = 2.0  # suite default (D7)
JOINT_STEPS = 2
BATCH = 20
OFFLINE_BATCH = 500
LWF_WEIGHT, LWF_TAU = 1.0, 2.0  # suite defaults (D7)
VIEWS = {"full": 50, "quick": 2, "smoke": 2}
WIDTH = {"full": 64, "quick": 8, "smoke": 4}  # ResNet-18 base width
# offline LwF epochs: MNIST 5-task 10 and CIFAR-10 2-task 120 (paper); the rest suite defaults
OFFLINE_EPOCHS = {("mnist", 2): 10, ("mnist", 5): 10, ("cifar10", 2): 120, ("cifar10", 5): 60,
                  ("svhn", 2): 30, ("svhn", 5): 30}
# The stand-ins have 1/30-1/60 of a paper task's images: batches of 500 would give offline
# LwF one or two steps per epoch and no upper bound at all, so they use batches of 50 (15-20
# steps per epoch, as many epochs as the paper's MNIST runs)
QUICK_OFFLINE_EPOCHS = {"quick": 10, "smoke": 2}
QUICK_OFFLINE_BATCH = 50
# §4.3 suite defaults: crop 32 after 4-pixel padding, rotation ±15°, flips for CIFAR-10 only,
# colour jitter 0.2 for CIFAR-10 and SVHN
AUGMENT = {"mnist": {"crop_pad": 4, "rotate": 15.0},
           "cifar10": {"crop_pad": 4, "flip": True, "rotate": 15.0, "jitter": 0.2},
           "svhn": {"crop_pad": 4, "rotate": 15.0, "jitter": 0.2}}

DATASETS = ("mnist", "cifar10", "svhn")
STAND_INS = {"mnist": "digits", "cifar10": "fmnist"}  # quick data (spec §6); SVHN has none
METHODS = ("mc_finetune", "batch_l2", "bld", "lwf_single", "lwf_offline")
ABLATIONS = ("bld_alternated", "bld_no_balancing")
METHOD_OF = {"lwf_single": "lwf", "lwf_offline": "lwf"}  # table rows -> registered methods


def bench_name(dataset: str, tasks: int, scale: str, val: bool = False) -> str | None:
    """The benchmark of one setting; `val`: its tuning twin, with VAL_FRACTION of each class's
    training images held out as a validation set (the main runs train on all of them)."""
    tail = ".val" if val else ""
    if scale == "full":
        return f"split_{dataset}_{tasks}t@bld2020{tail}"
    if scale == "smoke" and dataset != "mnist":  # smoke only checks that the pipeline runs
        return None
    stand_in = STAND_INS.get(dataset)
    return f"split_{stand_in}_{tasks}t@bld2020.{scale}{tail}" if stand_in else None


def parse(benchmark: str) -> tuple[str, int, str]:
    """(dataset the benchmark stands for, tasks, scale)."""
    base, _, suffix = benchmark.partition("@")
    _, name, tasks = base.split("_")
    parts = [p for p in suffix.split(".")[1:] if p != "val"]
    scale = parts[0] if parts else "full"
    dataset = next((d for d, s in STAND_INS.items() if s == name), name) if scale != "full" else name
    return dataset, int(tasks.rstrip("t")), scale


def benchmarks(scale: str, options: dict[str, Any]) -> dict[str, BenchmarkDef]:
    order = "shuffled" if options["split.fixed"] else "run"
    common = dict(kind="split", scenario="task_incremental", class_order=order,
                  data_seed=options["data_seed"], image_size=32, channels=3)
    defs = []
    for tasks in (2, 5):
        k = 10 // tasks
        if scale == "full":
            defs += [BenchmarkDef(bench_name("mnist", tasks, scale), "mnist", n_tasks=tasks,
                                  classes_per_task=k, resize="pad", **common),
                     BenchmarkDef(bench_name("cifar10", tasks, scale), "cifar10", n_tasks=tasks,
                                  classes_per_task=k, **common),
                     BenchmarkDef(bench_name("svhn", tasks, scale), "svhn", n_tasks=tasks,
                                  classes_per_task=k, **common)]
            continue
        smoke = scale == "smoke"
        n = 2 if smoke else tasks  # smoke: at most 2 tasks (spec §1.3)
        stand_ins = [
            # Stand-ins shrunk to fit the quick budget (spec §6 has 32x32 inputs and 1,000
            # Fashion-MNIST images per task): 16x16 inputs, 100 Fashion-MNIST images per class
            # and 200 test images per class. sklearn digits: 80/20 per class (seed 0), 8x8
            # upsampled.
            BenchmarkDef(bench_name("mnist", tasks, scale), "digits", n_tasks=n, classes_per_task=k,
                         test_fraction=0.2, resize="bilinear", quick=True,
                         train_per_class=10 if smoke else None, **{**common, "image_size": 16}),
            BenchmarkDef(bench_name("cifar10", tasks, scale), "fashion_mnist", n_tasks=n,
                         classes_per_task=k, train_per_class=10 if smoke else 100,
                         test_per_class=200, resize="area", quick=True,
                         **{**common, "image_size": 16}),
        ]
        defs += [d for d in stand_ins if d.name in (bench_name("mnist", tasks, scale),
                                                    bench_name("cifar10", tasks, scale))]
    defs = [d for d in defs if d.name]  # smoke has no CIFAR-10 stand-in
    twins = [dataclasses.replace(d, name=d.name + ".val", val_fraction=VAL_FRACTION) for d in defs]
    return {d.name: d for d in defs + twins}


def model_spec(scale: str) -> dict[str, Any]:
    """CIFAR-style ResNet-18 (3x3 stem, no max-pool, 4x4 pooling of the last stage), one
    output per class of all tasks (head t = its classes), normalising its input first."""
    return {"name": "resnet18", "nf": WIDTH[scale], "normalize": True}


def offline_epochs(dataset: str, tasks: int, scale: str) -> int:
    return OFFLINE_EPOCHS[(dataset, tasks)] if scale == "full" else QUICK_OFFLINE_EPOCHS[scale]


def offline_batch(scale: str) -> int:
    return OFFLINE_BATCH if scale == "full" else QUICK_OFFLINE_BATCH


def learning_rate(dataset: str, tasks: int, scale: str, optimizer: str) -> float:
    """alpha_j: the paper's 1e-4 at full scale; the stand-ins' raised SGD rate (or, under
    `auto`, Adam's 1e-3)."""
    if scale == "full":
        return LR
    return ADAM_QUICK_LR if optimizer in ("auto", "adam") else QUICK_LR[dataset]


def lr_tuning(dataset: str, scale: str) -> list[RunSpec]:
    """The quick stand-ins' SGD learning rate, one per stand-in: one online pass over the
    first task (5 classes) of the 2-task tuning twin (warm-up + 2 steps per batch, L2 with
    mu = 0), validation accuracy, seed 0."""
    if scale == "full":
        return []
    return [RunSpec(bench_name(dataset, 2, scale, val=True), "batch_l2", 0, 0, 1,
                    (("l2.mu", 0.0), ("lr", lr), ("tune", True))) for lr in QUICK_LR_GRID]


def mu_tuning(dataset: str, tasks: int, scale: str) -> list[RunSpec]:
    """L2's mu (spec §4.5 amended): the whole stream of the tuning twin per mu of the grid,
    mean validation accuracy over the tasks after the last one, seed 0."""
    grid = L2_MU_GRID[::2] if scale == "smoke" else L2_MU_GRID
    return [RunSpec(bench_name(dataset, tasks, scale, val=True), "batch_l2", 0, 0, 1,
                    (("l2.mu", mu), ("tune", True))) for mu in grid]


def _l2_mu(c: dict[str, Any]):
    """A fixed mu (a grid cell's, or the option), else selected on the validation twin."""
    mu = c["overrides"].get("l2.mu", c["options"]["l2.mu"])
    return mu if mu is not None else tuned_by(mu_tuning(*c["setting"]))


# the joint steps of Algorithm 1: warm-up at alpha_w, then two steps at alpha_j
JOINT = {"bld.lr_warmup": lambda c: WARMUP_RATIO * c["lr"] if c["lr"] != LR else LR_WARMUP,
         "bld.joint_steps": JOINT_STEPS}
# Each method's values beyond the common ones (clrepro.papers.table), §4.1-§4.5
METHOD_VALUES: dict[str, dict[str, Any]] = {
    "bld": {**JOINT, "bld.lambda": LAMBDA, "bld.tau": TAU,
            "bld.norm_granularity": Option("bld.norm_granularity")},
    "bld_alternated": {"_as": "bld"},
    "bld_no_balancing": {"_as": "bld"},
    "batch_l2": {**JOINT, "l2.mu": _l2_mu},
    "mc_finetune": {"finetune.steps": Option("finetune.steps")},
    "lwf": {"lwf.weight": LWF_WEIGHT, "lwf.tau": LWF_TAU},
}


def hyperparams(spec: RunSpec, options: dict[str, Any]) -> dict[str, Any]:
    dataset, tasks, scale = parse(spec.benchmark)
    overrides = dict(spec.overrides)
    offline = spec.method == "lwf" and spec.epochs > 1
    optimizer = options["bld.optimizer"]
    lr = overrides.get("lr", learning_rate(dataset, tasks, scale, optimizer))
    hp: dict[str, Any] = {
        "paper": "bld2020", "protocol_version": PROTOCOL_VERSION, "method": spec.method,
        "lr": lr, "batch_size": offline_batch(scale) if offline else BATCH,
        "eval_every": 10**9, "eval.rows": "last",  # the tables read final accuracies only
        "eval_batch_size": 500, "checkpoint_every": 100,
        "model": model_spec(scale),
        "augment": {"views": 1 if offline else VIEWS[scale], **AUGMENT[dataset]},
        "bld.batch_reduction": options["bld.batch_reduction"],
        "bld.batch_views": options["bld.batch_views"],
    }
    if not offline:  # single pass: no batch smaller than 20 (spec §4.4 amended)
        hp["batch.merge_last"] = not options["batch.keep_last"]
    if optimizer == "adam" or (optimizer == "auto" and scale != "full"):
        hp["optimizer"] = {"name": "adam"}
    hp.update(values(METHOD_VALUES, spec.method, {
        "options": options, "overrides": overrides, "lr": lr, "setting": (dataset, tasks, scale)}))
    if overrides.get("tune"):  # a tuning-grid cell: validation accuracy of the twin
        hp["eval_split"] = "val"
        if "lr" in overrides:
            hp["tasks_limit"] = 1
    return hp


def resources(spec: RunSpec) -> dict[str, Any]:
    """ResNet-18 runs want a GPU at full scale; the quick stand-ins (width 8) run on the CPU."""
    dataset, tasks, scale = parse(spec.benchmark)
    if scale != "full":
        return {"gpu": False, "threads": 1, "mem_mb": 2000, "runtime": 30}
    return {"gpu": True, "threads": 4, "mem_mb": 16000, "runtime": 240 if spec.epochs > 1 else 480}
