"""DRL + BER (Chen, Diethe & Flach, CLVision 2020): benchmarks and hyperparameters (spec
drl-2020.md §4-§6).

Two parts. The MNIST analysis (Figs. 1-2): binary classifiers whose pair similarities are
studied, and Disjoint MNIST trained with BER with and without DRL. The CLVision-2020
tracks on CORe50 (Tables 1-3): ImageNet-pretrained ResNet-50 / ResNeSt-50 trained in one
pass with SGD (lr 0.01) under the shuffle, ER and BER replay strategies, each with and
without DRL. Runs name their configuration by overrides: replay (strategy), drl (on/off)
and, on CORe50, backbone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from clrepro.data.definitions import BenchmarkDef
from clrepro.spec import RunSpec
from clrepro.tuning import tuned_by

PROTOCOL_VERSION = 3  # 2: ring memory, ER one update per stream batch of 32; 3: tuned lambda

OPTION_DEFAULTS: dict[str, Any] = {
    # D4: the paper gives none. None: each track's lambda is chosen from LAMBDA_GRID on a
    # held-out split of its training stream (tuning runs); a number fixes it everywhere
    "drl.lambda": None,
    "drl.form": "paper",  # D1: paper (L_bt - L_wi) | code (L_bt + 2 L_wi)
    "drl.norm": "pairs",  # D2: pairs | b_squared
    "drl.layers": "default",  # §4.2: pooled features + logits | all_stages
    "ber.unit": "class",  # D5: class | task
    "ber.variant": "even",  # D5: even | ber0 | ber1 | ber2 (official code's small-batch rules)
    "memory.update": "ring",  # §4.3 Amended: ring (official code) | reservoir (per class)
    # the tracks: sgd (lr 0.01, §4.5) | adam (lr 1e-3) | auto: sgd at full scale, adam for the
    # stand-ins, whose from-scratch CNN barely leaves chance in one SGD pass at lr 0.01
    "tracks.optimizer": "auto",
    "core50.eval_stride": 1,  # every n-th CORe50 evaluation image (the challenge's valid set: 20)
    "data_seed": 0,
}
VARIANT_KEYS = ("replay", "drl", "backbone", "tune")
# §4.2 / D4: the per-track sweep, chosen by validation accuracy (DRL + BER, seed 0) on the
# track's tuning twin (`.val`: VAL_FRACTION of the stream held out, never test data); the MNIST
# analysis keeps the official code's default
LAMBDA_GRID = (1e-4, 1e-3, 1e-2)
ANALYSIS_LAMBDA = 1e-3
VAL_FRACTION = 0.1

STRATEGIES = ("shuffle", "er", "ber")
BACKBONES = ("resnet50", "resnest50d")
TRACKS = ("ni", "mtnc", "nic")
TRACK_TITLES = {"ni": "NI", "mtnc": "Multi-Task-NC", "nic": "NIC"}
PAIRS = ((0, 1), (7, 9))  # the two binary problems of Fig. 1

# §4.1 MNIST analysis (official code defaults): Adam 1e-3, batch 10, one pass, MLP 100-100
ANALYSIS_LR, ANALYSIS_BATCH = 1e-3, 10
HIDDEN = [100, 100]
TRAIN_PER_TASK = 1000  # the first 1,000 training images of each problem / task (§4.1)
FIG1_SAMPLES = 100  # random test images per binary problem (all pairs)
FIG2_PER_CLASS = 50  # random test images per class after the last task
# §4.3-4.5: the tracks
TRACK_LR = 0.01
QUICK_TRACK_LR = 1e-3  # with Adam
NEW_BATCH = 32  # new-data mini-batch and every strategy's training batch (ER: 16 + 16)
PER_CLASS = {"full": 50, "quick": 20, "smoke": 20}
CLASSES = {"ni": 50, "mtnc": 50, "nic": 50}
# quick stand-ins (spec §6), at 14x14 (area-averaged) to fit the quick budget
QUICK_TRACKS = {"ni": dict(kind="environments", n_tasks=8, train_per_task=500,
                           env_rotation=5.0, env_center=4, env_brightness=(0.8, 0.05),
                           shared_test=True, scenario="domain_incremental"),
                "mtnc": dict(kind="split", n_tasks=4, first_task_classes=4, classes_per_task=2,
                             train_per_class=500, class_order="shuffled",
                             scenario="task_incremental"),
                "nic": dict(kind="class_stream", n_tasks=40, train_per_task=100,
                            shared_test=True, scenario="class_incremental")}
FULL_TRACKS = {"ni": dict(n_tasks=8, shared_test=True, scenario="domain_incremental"),
               "mtnc": dict(n_tasks=9, scenario="task_incremental"),
               "nic": dict(n_tasks=391, shared_test=True, scenario="class_incremental")}


def _suffix(scale: str) -> str:
    return "@drl2020" if scale == "full" else f"@drl2020.{scale}"


def pair_bench(pair: tuple[int, int], scale: str) -> str:
    data = "mnist" if scale == "full" else "fmnist"
    return f"{data}{pair[0]}{pair[1]}{_suffix(scale)}"


def split_bench(scale: str) -> str:
    return f"split_{'mnist' if scale == 'full' else 'digits'}{_suffix(scale)}"


def track_bench(track: str, scale: str, val: bool = False) -> str:
    """A track's benchmark; `val`: its tuning twin, with a held-out validation set."""
    name = f"core50_{track}{_suffix(scale)}" if scale == "full" else f"{track}_fmnist{_suffix(scale)}"
    return name + (".val" if val else "")


def parse(benchmark: str) -> tuple[str, str]:
    """(part: pairs | split | track name, scale)."""
    base, _, suffix = benchmark.partition("@")
    parts = [p for p in suffix.split(".")[1:] if p != "val"]
    scale = parts[0] if parts else "full"
    if base.startswith("split_"):
        return "split", scale
    for track in TRACKS:
        if base in (f"core50_{track}", f"{track}_fmnist"):
            return track, scale
    return "pairs", scale


def benchmarks(scale: str, options: dict[str, Any]) -> dict[str, BenchmarkDef]:
    full = scale == "full"
    seed = options["data_seed"]
    # MNIST (full) or sklearn's 8x8 digits split 50/50 per class (quick, spec §6)
    analysis = (dict(source="mnist") if full else
                dict(source="digits", test_fraction=0.5, quick=True))
    # Fig. 1 quick: 28x28 Fashion-MNIST pairs in the roles of {0,1} (easy: T-shirt/trouser)
    # and {7,9} (hard: sneaker/ankle boot); 8x8 digits are too coarse for the regime (issue 20)
    pairs_data = dict(source="mnist") if full else dict(source="fashion_mnist", quick=True)
    defs = [BenchmarkDef(pair_bench(p, scale), kind="split", n_tasks=1, classes_per_task=2,
                         scenario="class_incremental", class_order="list", class_list=p,
                         remap_labels=True, train_per_task=TRAIN_PER_TASK, train_draw="data",
                         data_seed=seed, **pairs_data) for p in PAIRS]
    defs.append(BenchmarkDef(split_bench(scale), kind="split", n_tasks=5, classes_per_task=2,
                             scenario="class_incremental", train_per_task=TRAIN_PER_TASK,
                             train_draw="data", data_seed=seed, **analysis))
    for track in TRACKS:
        if full:
            defs.append(BenchmarkDef(track_bench(track, scale), "core50", kind="core50",
                                     track=track, eval_stride=options["core50.eval_stride"],
                                     data_seed=seed, **FULL_TRACKS[track]))
        else:
            spec = dict(QUICK_TRACKS[track])
            if scale == "smoke":  # the pipeline only: a few small batches (NIC: each class twice)
                spec["n_tasks"] = 20 if track == "nic" else 2
                spec.update({"train_per_class": 20} if track == "mtnc" else {"train_per_task": 20})
            defs.append(BenchmarkDef(track_bench(track, scale), "fashion_mnist", quick=True,
                                     image_size=14, resize="area", data_seed=seed, **spec))
    twins = [dataclasses.replace(d, name=d.name + ".val", val_fraction=VAL_FRACTION)
             for d in defs if parse(d.name)[0] in TRACKS]
    return {d.name: d for d in defs + twins}


N_CLASSES = {"split": 10, "ni": 50, "mtnc": 50, "nic": 50}


def memory(part: str, scale: str) -> int:
    """Total slots of the class-balanced memory (per class x classes of the stream)."""
    classes = N_CLASSES[part] if scale == "full" else 10
    return PER_CLASS[scale] * classes


def lambda_tuning(track: str, scale: str, backbone: str | None) -> list[RunSpec]:
    """DRL's lambda on a track (§4.2 sweep): DRL + BER on the tuning twin per value of
    LAMBDA_GRID, validation accuracy after the stream, seed 0."""
    tail = (("backbone", backbone),) if backbone else ()
    return [RunSpec(track_bench(track, scale, val=True), "replay_drl", 0, memory(track, scale), 1,
                    (("replay", "ber"), ("drl", True), *tail, ("drl.lambda", lam), ("tune", True)))
            for lam in LAMBDA_GRID]


def model_spec(part: str, scale: str, backbone: str | None) -> dict[str, Any]:
    if part in ("pairs", "split"):
        return {"name": "mlp", "hidden": HIDDEN, "init": "xavier"}
    if scale == "full":
        return {"name": "pretrained", "backbone": backbone}
    return {"name": "small_cnn"}  # spec §6: 32/64 conv channels, 128 hidden units


def strategy_sizes(strategy: str) -> tuple[int, int]:
    """(stream batch, replay.batch_size) of a track run: equal for every strategy, so ER,
    BER and shuffle see the same stream batches (§4.3 Amended; ER's 16 + 16 is how its
    training batch of 32 is split, not a halved stream batch)."""
    return NEW_BATCH, NEW_BATCH


def hyperparams(spec: RunSpec, options: dict[str, Any]) -> dict[str, Any]:
    overrides = dict(spec.overrides)
    part, scale = parse(spec.benchmark)
    strategy = overrides.get("replay", "none")
    hp: dict[str, Any] = {
        "paper": "drl2020", "protocol_version": PROTOCOL_VERSION, "method": spec.method,
        "model": model_spec(part, scale, overrides.get("backbone")),
        "replay.strategy": strategy, "replay.per_class": PER_CLASS[scale],
        "drl.lambda": _lambda(part, scale, overrides, options) if overrides.get("drl") else 0.0,
        "drl.form": options["drl.form"], "drl.norm": options["drl.norm"],
        "drl.layers": options["drl.layers"], "ber.unit": options["ber.unit"],
        "ber.variant": options["ber.variant"], "memory.update": options["memory.update"],
        "eval_every": 10**9, "eval.rows": "last",  # the tables read accuracy after the stream
        "eval_batch_size": 500,
    }
    if part in ("pairs", "split"):
        hp.update({"lr": ANALYSIS_LR, "optimizer": {"name": "adam"},
                   "batch_size": ANALYSIS_BATCH, "replay.batch_size": ANALYSIS_BATCH,
                   "similarity": ({"samples": FIG1_SAMPLES} if part == "pairs" else
                                  {"samples": FIG2_PER_CLASS, "per_class": True})})
    else:
        stream, replay = strategy_sizes(strategy)
        hp.update({"lr": TRACK_LR, "batch_size": stream, "replay.batch_size": replay,
                   "checkpoint_every": 500})
        optimizer = options["tracks.optimizer"]
        if optimizer == "adam" or (optimizer == "auto" and scale != "full"):
            hp.update({"lr": QUICK_TRACK_LR, "optimizer": {"name": "adam"}})
        if scale == "full":
            hp["augment.flip"] = True  # §4.5 suite default
    if overrides.get("tune"):  # a tuning-grid cell: validation accuracy of the twin
        hp["eval_split"] = "val"
    return hp


def _lambda(part: str, scale: str, overrides: dict[str, Any], options: dict[str, Any]):
    lam = overrides.get("drl.lambda", options["drl.lambda"])
    if lam is not None:
        return lam
    if part in ("pairs", "split"):
        return ANALYSIS_LAMBDA
    return tuned_by(lambda_tuning(part, scale, overrides.get("backbone")))


def resources(spec: RunSpec) -> dict[str, Any]:
    """CORe50 runs: a GPU, and the decoded stream in RAM (about 6 GB of 128x128 images for
    NI and NIC, plus the evaluation sessions). Everything else runs on a CPU core."""
    part, scale = parse(spec.benchmark)
    if scale != "full" or part in ("pairs", "split"):
        return {"gpu": False, "threads": 1, "mem_mb": 2000, "runtime": 30}
    return {"gpu": True, "threads": 8, "mem_mb": 32000, "runtime": 240}
