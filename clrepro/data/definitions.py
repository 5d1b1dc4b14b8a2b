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
KINDS = ("permuted", "rotated", "split")
RESIZES = ("pad", "bilinear", "area")


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
    val_fraction: float = 0.0  # held out of each task's pool (per class) for tuning
    val_per_task: int = 0  # drawn per run next to train_per_task, as a fresh validation part
    classes_per_task: int | None = None  # split benchmarks
    class_order: str = "natural"  # natural | shuffled (data seed) | run (run seed: BLD's splits)
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

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"{self.name}: scenario must be one of {SCENARIOS}")
        if self.kind == "split" and not self.classes_per_task:
            raise ValueError(f"{self.name}: split benchmarks need classes_per_task")
        if self.class_order not in ("natural", "shuffled", "run"):
            raise ValueError(f"{self.name}: class_order must be natural, shuffled or run")
        if self.class_order == "run" and (self.kind != "split" or self.test_per_task is not None):
            raise ValueError(f"{self.name}: class_order 'run' needs a split benchmark with all "
                             f"test images (test_per_task None)")
        if self.resize not in RESIZES:
            raise ValueError(f"{self.name}: resize must be one of {RESIZES}")
        if self.val_per_task and (self.train_draw != "run" or self.train_per_task is None):
            raise ValueError(f"{self.name}: val_per_task needs train_draw='run' and train_per_task")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["angle_range"] = list(self.angle_range)
        d["angles"] = list(self.angles) if self.angles is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BenchmarkDef":
        d = dict(d)
        d["angle_range"] = tuple(d["angle_range"])
        d["angles"] = tuple(d["angles"]) if d.get("angles") is not None else None
        return cls(**d)

    def replace(self, **changes: Any) -> "BenchmarkDef":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class DataSettings:
    """Where raw datasets are looked up (config key `data`)."""

    dir: Path = Path("resources/raw")
    download: bool = True
    verify_checksums: bool = True
    synthetic: bool = False

    def to_dict(self) -> dict:
        return {"dir": str(self.dir), "download": self.download,
                "verify_checksums": self.verify_checksums, "synthetic": self.synthetic}

    @classmethod
    def from_config(cls, data_cfg: dict) -> "DataSettings":
        return cls(dir=Path(data_cfg.get("dir", "resources/raw")),
                   download=bool(data_cfg.get("download", True)),
                   verify_checksums=bool(data_cfg.get("verify_checksums", True)),
                   synthetic=bool(data_cfg.get("synthetic", False)))
