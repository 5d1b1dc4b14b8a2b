"""Declarations that configure data without touching it: what a benchmark is and where raw
datasets live. Kept free of torch so that planning a workflow stays fast."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Bump when prepare() changes what a definition produces: caches are rebuilt, and the data
# rule's params (hence every run reading the data) change with it.
FORMAT_VERSION = 3
SCENARIOS = ("task_incremental", "domain_incremental", "class_incremental")
KINDS = ("permuted", "rotated", "split", "environments", "class_stream", "core50")
RESIZES = ("pad", "bilinear", "area")
FOLDER_SOURCES = ("imagenet", "imagenet_subset")  # read from image folders (data.imagefolder)


@dataclass(frozen=True)
class BenchmarkDef:
    name: str
    source: str
    kind: str
    n_tasks: int
    scenario: str
    train_per_task: int | None = None  # streamed per task; None = the whole pool
    train_per_class: int | None = None  # cap on each class's training candidates (data seed)
    test_per_task: int | None = None  # None = every test image of the task
    test_per_class: int | None = None  # with class_order run: a fixed subset of each class
    val_fraction: float = 0.0  # held out of each task's pool (per class) for tuning
    val_per_task: int = 0  # drawn per run next to train_per_task, as a fresh validation part
    classes_per_task: int | None = None  # split benchmarks
    class_order: str = "natural"  # natural | shuffled (data seed) | run (run seed: BLD's splits)
    #                               | list (class_list, e.g. a committed seed-1993 order)
    class_list: tuple[int, ...] | None = None  # the class order of class_order "list"
    first_task_classes: int | None = None  # a larger first task (a base phase of 50 classes)
    remap_labels: bool = False  # labels become their position in the class order
    test_fraction: float | None = None  # re-split train+test per class (data seed), e.g. digits
    identity_first: bool = False  # permuted: task 0 unpermuted
    shared_subset: int | None = None  # permuted: one fixed subset of this size for all tasks
    angle_range: tuple[float, float] = (0.0, 180.0)
    angles: tuple[float, ...] | None = None  # explicit angles override the draw
    interpolation: str = "nearest"  # rotated: nearest (PIL) | cubic (scipy)
    train_draw: str = "run"  # who draws train_per_task from the pool: run | data
    test_draw: str = "data"  # who draws test_per_task: data | run
    transform_seed: str = "data"  # permutations/angles drawn from: data | run
    data_seed: int = 0
    quick: bool = False  # a stand-in, never compared with paper numbers
    image_size: int | None = None  # square side of the network input; None = as stored
    resize: str = "pad"  # how to reach image_size: pad (zeros, centred) | bilinear | area
    channels: int | None = None  # 3: grey images are replicated to three channels
    shared_test: bool = False  # one test set for the whole stream (CORe50 NI/NIC), not per task
    env_rotation: float = 0.0  # environments: task k rotates by (k - env_center) * this (degrees)
    env_center: float = 0.0
    env_brightness: tuple[float, float] = (1.0, 0.0)  # environments: scale a + b * k
    track: str | None = None  # core50: ni | mtnc | nic (clrepro.data.tracks)
    track_check_counts: bool = True  # core50: require the challenge's 8 / 9 / 391 batches
    eval_stride: int = 1  # core50: every n-th evaluation image (1 = all)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"{self.name}: scenario must be one of {SCENARIOS}")
        if self.kind == "split" and not self.classes_per_task:
            raise ValueError(f"{self.name}: split benchmarks need classes_per_task")
        if self.class_order not in ("natural", "shuffled", "run", "list"):
            raise ValueError(f"{self.name}: class_order must be natural, shuffled, run or list")
        if (self.class_order == "list") != (self.class_list is not None):
            raise ValueError(f"{self.name}: class_order 'list' goes with class_list")
        if self.class_order == "run" and (self.kind != "split" or self.test_per_task is not None):
            raise ValueError(f"{self.name}: class_order 'run' needs a split benchmark; cap its "
                             f"test images with test_per_class, not test_per_task")
        if self.test_per_class is not None and (self.kind != "split" or self.test_draw != "data"):
            raise ValueError(f"{self.name}: test_per_class needs a split benchmark whose test "
                             f"images the data seed draws (test_draw 'data')")
        if self.resize not in RESIZES:
            raise ValueError(f"{self.name}: resize must be one of {RESIZES}")
        if (self.kind == "core50") != (self.track is not None):
            raise ValueError(f"{self.name}: kind 'core50' goes with a track (ni, mtnc, nic)")
        if self.val_per_task and (self.train_draw != "run" or self.train_per_task is None):
            raise ValueError(f"{self.name}: val_per_task needs train_draw='run' and train_per_task")

    @property
    def file_backed(self) -> bool:
        """Images are decoded from files by each job, not cached as tensors."""
        return self.kind == "core50" or self.source in FOLDER_SOURCES

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["angle_range"] = list(self.angle_range)
        d["angles"] = list(self.angles) if self.angles is not None else None
        d["class_list"] = list(self.class_list) if self.class_list is not None else None
        d["env_brightness"] = list(self.env_brightness)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BenchmarkDef":
        d = dict(d)
        d["angle_range"] = tuple(d["angle_range"])
        d["angles"] = tuple(d["angles"]) if d.get("angles") is not None else None
        if d.get("class_list") is not None:
            d["class_list"] = tuple(d["class_list"])
        if "env_brightness" in d:
            d["env_brightness"] = tuple(d["env_brightness"])
        return cls(**d)

    def replace(self, **changes: Any) -> "BenchmarkDef":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class DataSettings:
    """Where raw datasets and pretrained weights are looked up (config key `data`).

    weights: backbone -> {path: a weights file, sha256: its expected hash}; both optional
    (default: the torch hub cache, checked against the published hash)."""

    dir: Path = Path("resources/raw")
    download: bool = True
    verify_checksums: bool = True
    synthetic: bool = False
    weights: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def weights_for(self, backbone: str) -> dict[str, str]:
        return dict(dict(self.weights).get(backbone, ()))

    def to_dict(self) -> dict:
        return {"dir": str(self.dir), "download": self.download,
                "verify_checksums": self.verify_checksums, "synthetic": self.synthetic,
                "weights": {b: dict(v) for b, v in self.weights}}

    @classmethod
    def from_config(cls, data_cfg: dict) -> "DataSettings":
        weights = tuple(sorted((b, tuple(sorted((k, str(v)) for k, v in (entry or {}).items())))
                               for b, entry in (data_cfg.get("weights") or {}).items()))
        return cls(dir=Path(data_cfg.get("dir", "resources/raw")),
                   download=bool(data_cfg.get("download", True)),
                   verify_checksums=bool(data_cfg.get("verify_checksums", True)),
                   synthetic=bool(data_cfg.get("synthetic", False)), weights=weights)
