"""Task streams built from raw datasets: permuted, rotated and split benchmarks.

A benchmark is declared by a `BenchmarkDef` in a paper module and built in two stages:

1. `prepare(defn, raw)` (the data rule, once per benchmark): everything fixed by the data
   seed -- class order, per-task candidate pools, validation parts, test subsets,
   permutations and angles -- plus the test sets themselves when they do not depend on
   the run. The result is a dict of tensors cached under results/data/.
2. `materialize(prepared, defn, run_seed)` (each training job): what the paper draws per
   run -- e.g. GEM's fresh 1,000 training examples per task -- and the transformed images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch

from clrepro.data.definitions import BenchmarkDef
from clrepro.data.raw import RawData
from clrepro.data.transforms import ROTATIONS, permute_pixels, reshape_images
from clrepro.seeds import derive_seed

@dataclass
class TaskData:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: torch.Tensor
    info: dict[str, Any]


@dataclass
class Benchmark:
    """The materialised stream of one run: T tasks with their train/val/test tensors."""

    defn: BenchmarkDef
    tasks: list[TaskData]
    n_classes: int
    input_shape: tuple[int, int, int]
    raw_image_bytes: int = 0  # one training image as the dataset stores it (uint8)
    norm: tuple[list[float], list[float]] | None = None  # fixed input statistics (ImageNet's)

    @property
    def name(self) -> str:
        return self.defn.name

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def task_incremental(self) -> bool:
        return self.defn.scenario == "task_incremental"

    def first_tasks(self, k: int) -> "Benchmark":
        """The stream cut to its first k tasks (GMED tunes on the first three)."""
        return Benchmark(self.defn, self.tasks[:k], self.n_classes, self.input_shape,
                         self.raw_image_bytes, self.norm)

    def eval_sets(self, split: str = "test") -> list[tuple[torch.Tensor, torch.Tensor]]:
        """What evaluation measures: each task's set, or the one shared set of the stream."""
        tasks = self.tasks[:1] if self.defn.shared_test else self.tasks
        return [(getattr(t, f"{split}_x"), getattr(t, f"{split}_y")) for t in tasks]

    def input_norm(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of all training images in [0, 1] (the per-dataset
        normalisation a network may apply as its first layer), unless the benchmark fixes them."""
        if self.norm is not None:
            return self.norm
        total = sq = 0.0
        count = 0
        for task in self.tasks:
            for lo in range(0, len(task.train_x), 4096):
                x = task.train_x[lo:lo + 4096].double()
                x = x / 255 if task.train_x.dtype == torch.uint8 else x
                total = total + x.sum((0, 2, 3))
                sq = sq + (x * x).sum((0, 2, 3))
                count += x.numel() // x.shape[1]
        mean = total / max(count, 1)
        std = (sq / max(count, 1) - mean * mean).clamp(min=1e-12).sqrt()
        return mean.tolist(), std.tolist()

    def class_mask(self) -> torch.Tensor:
        """[T, n_classes] bool: the logits each task may use (all of them unless task-incremental)."""
        mask = torch.zeros(self.n_tasks, self.n_classes, dtype=torch.bool)
        for t, task in enumerate(self.tasks):
            if self.task_incremental:
                mask[t, task.classes] = True
            else:
                mask[t] = True
        return mask

    def manifest(self) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "n_tasks": self.n_tasks,
            "tasks": [{"n_train": len(t.train_y), "n_val": len(t.val_y), "n_test": len(t.test_y),
                       "classes": t.classes.tolist(), **t.info} for t in self.tasks],
        }


def _draw(n_pool: int, n: int | None, gen: torch.Generator) -> torch.Tensor:
    if n is None or n >= n_pool:
        return torch.arange(n_pool)
    return torch.randperm(n_pool, generator=gen)[:n]


def _transform_params(defn: BenchmarkDef, t: int, gen: torch.Generator, n_inputs: int):
    if defn.kind == "permuted":
        if t == 0 and defn.identity_first:
            return torch.arange(n_inputs)
        return torch.randperm(n_inputs, generator=gen)
    if defn.kind == "rotated":
        if defn.angles is not None:
            return float(defn.angles[t])
        lo, hi = defn.angle_range
        width = (hi - lo) / defn.n_tasks
        return lo + width * (t + float(torch.rand((), generator=gen, dtype=torch.float64)))
    return None


def _apply(defn: BenchmarkDef, x: torch.Tensor, param) -> torch.Tensor:
    if defn.kind == "permuted":
        return permute_pixels(x, param)
    if defn.kind == "rotated":
        return ROTATIONS[defn.interpolation](x, param)
    if defn.kind == "environments":  # an acquisition condition: rotation and brightness
        angle, brightness = (float(v) for v in param)
        rotated = ROTATIONS[defn.interpolation](x, angle)
        return (rotated.float() * brightness).round().clamp(0, 255).to(torch.uint8)
    return x


def _info(defn: BenchmarkDef, param) -> dict[str, Any]:
    if defn.kind == "rotated":
        return {"angle": param}
    if defn.kind == "environments":
        return {"angle": float(param[0]), "brightness": float(param[1])}
    if defn.kind == "permuted":
        return {"permutation_sha256": hashlib.sha256(param.numpy().tobytes()).hexdigest()[:16],
                "identity": bool(torch.equal(param, torch.arange(len(param))))}
    return {}


# ----------------------------------------------------------------------------- prepare

def prepare(defn: BenchmarkDef, raw: RawData) -> dict[str, torch.Tensor]:
    """Everything the data seed fixes, as a flat dict of tensors (see module docstring)."""
    if defn.kind == "rotated" and raw.image_shape[0] != 1:
        raise ValueError(f"{defn.name}: rotations are defined for single-channel images")
    gen = torch.Generator().manual_seed(defn.data_seed)
    n_inputs = int(torch.tensor(raw.image_shape).prod())
    if defn.test_fraction:
        raw = resplit(raw, defn.test_fraction, defn.data_seed)

    if defn.kind in ("environments", "class_stream"):
        return _prepare_stream(defn, raw, gen)
    if defn.kind == "split":
        order = (torch.randperm(raw.n_classes, generator=gen) if defn.class_order == "shuffled"
                 else torch.tensor(defn.class_list) if defn.class_order == "list"
                 else torch.arange(raw.n_classes))
        bounds = task_bounds(defn)
        if bounds[-1] > len(order):
            raise ValueError(f"{defn.name}: {defn.n_tasks} tasks need {bounds[-1]} classes; "
                             f"{raw.name} has {raw.n_classes}")
        task_classes = [order[a:b].sort().values for a, b in zip(bounds, bounds[1:])]
        if defn.class_order == "run":  # one slot per class; each run groups them into tasks
            task_classes = [torch.tensor([c]) for c in range(raw.n_classes)]
    else:
        task_classes = [torch.arange(raw.n_classes)] * defn.n_tasks

    shared = None
    if defn.shared_subset:
        # one subset, shuffled once: every task reuses the same train/val split of it (GMED
        # spec §4.1: one 950/50 split of the 1,000 images, not a reshuffle per task)
        shared = _draw(len(raw.train_y), defn.shared_subset, gen)
        shared = shared[torch.randperm(len(shared), generator=gen)]

    out: dict[str, torch.Tensor] = {}
    for t, classes in enumerate(task_classes):
        if shared is not None:
            groups = [shared]
        elif defn.kind == "split":  # class by class, so that validation parts are stratified
            groups = [torch.nonzero(raw.train_y == c).flatten() for c in classes]
        else:
            groups = [torch.arange(len(raw.train_y))]
        train_parts, val_parts = [], []
        for group in groups:
            if shared is None:
                group = group[torch.randperm(len(group), generator=gen)]
            n_val = int(round(defn.val_fraction * len(group)))
            val_parts.append(group[:n_val])
            train_parts.append(group[n_val:][:defn.train_per_class])
        pool, val = torch.cat(train_parts), torch.cat(val_parts)
        pool = pool[torch.randperm(len(pool), generator=gen)]
        if defn.train_draw == "data":
            pool = pool[_draw(len(pool), defn.train_per_task, gen)]
        test = torch.nonzero(torch.isin(raw.test_y, classes)).flatten()
        if defn.test_draw == "data" and defn.test_per_class is not None and defn.class_order != "run":
            # a task of several classes (a fixed split): the cap applies to each of them
            parts = [test[raw.test_y[test] == c] for c in classes]
            test = torch.cat([part[_draw(len(part), defn.test_per_class, gen)] for part in parts])
            test = test.sort().values
        elif defn.test_draw == "data":
            cap = defn.test_per_class if defn.class_order == "run" else defn.test_per_task
            test = test[_draw(len(test), cap, gen).sort().values]
        out[f"classes/{t}"] = classes
        out[f"pool/{t}"] = pool
        out[f"val/{t}"] = val
        out[f"test/{t}"] = test
        if defn.transform_seed == "data" and defn.kind != "split":
            param = _transform_params(defn, t, gen, n_inputs)
            out[f"param/{t}"] = torch.as_tensor(param)
    out = _compact(out, raw, defn)
    if defn.class_order == "run":
        out["by_class"] = torch.tensor(1)
    return out


def _prepare_stream(defn: BenchmarkDef, raw: RawData, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The CORe50-like streams of the DRL stand-ins (spec §6), batches of disjoint images:

    - environments (NI): every batch holds all classes, train_per_task images drawn without
      replacement, and applies its own acquisition condition (a rotation and a brightness
      scale fixed by the batch index);
    - class_stream (NIC): every batch holds train_per_task images of one class; the class
      sequence repeats every class equally often (at least twice) in a data-seed order.

    The test set is shared: every test image of the classes, untransformed. With
    val_fraction, a shared validation set (for tuning) of that share of the stream's size is
    drawn from the training images no batch holds (NIC: per class, of its images in the
    stream): held out of every run of the stream, disjoint from the test images."""
    out: dict[str, torch.Tensor] = {}
    val = torch.zeros(0, dtype=torch.long)
    n = defn.n_tasks
    if defn.kind == "environments":
        order = torch.randperm(len(raw.train_y), generator=gen)
        need = n * defn.train_per_task
        if need > len(order):
            raise ValueError(f"{defn.name}: {n} batches of {defn.train_per_task} exceed the data")
        for t in range(n):
            out[f"classes/{t}"] = torch.arange(raw.n_classes)
            out[f"pool/{t}"] = order[t * defn.train_per_task:(t + 1) * defn.train_per_task]
            angle = (t - defn.env_center) * defn.env_rotation
            a, b = defn.env_brightness
            out[f"param/{t}"] = torch.tensor([angle, a + b * t], dtype=torch.float64)
        n_val = int(round(defn.val_fraction * need))
        if need + n_val > len(order):
            raise ValueError(f"{defn.name}: no {n_val} spare images for its validation set")
        val = order[need:need + n_val]
    else:
        repeats = -(-n // raw.n_classes)
        if repeats < 2:
            raise ValueError(f"{defn.name}: {n} batches cannot show each of {raw.n_classes} "
                             f"classes twice")
        sequence = torch.arange(raw.n_classes).repeat(repeats)[:n]
        sequence = sequence[torch.randperm(n, generator=gen)]
        members = {c: torch.nonzero(raw.train_y == c).flatten() for c in range(raw.n_classes)}
        members = {c: m[torch.randperm(len(m), generator=gen)] for c, m in members.items()}
        used = {c: 0 for c in members}
        for t, c in enumerate(sequence.tolist()):
            k = defn.train_per_task
            if used[c] + k > len(members[c]):
                raise ValueError(f"{defn.name}: class {c} has too few images for its batches")
            out[f"classes/{t}"] = torch.tensor([c])
            out[f"pool/{t}"] = members[c][used[c]:used[c] + k]
            used[c] += k
        parts = []
        for c, m in members.items():
            n_val = int(round(defn.val_fraction * used[c]))
            if used[c] + n_val > len(m):
                raise ValueError(f"{defn.name}: class {c} has no {n_val} spare images for validation")
            parts.append(m[used[c]:used[c] + n_val])
        val = torch.cat(parts)
    for t in range(n):
        out[f"val/{t}"] = val if t == 0 else torch.zeros(0, dtype=torch.long)
        out[f"test/{t}"] = (torch.arange(len(raw.test_y)) if t == 0
                            else torch.zeros(0, dtype=torch.long))
    return _compact(out, raw, defn)


def task_bounds(defn: BenchmarkDef) -> list[int]:
    """Positions in the class order where each task starts (and the end): a first task of
    first_task_classes (the base phase), then classes_per_task each."""
    first = defn.first_task_classes or defn.classes_per_task
    return [0] + [first + t * defn.classes_per_task for t in range(defn.n_tasks)]


def resplit(raw: RawData, test_fraction: float, seed: int) -> RawData:
    """Pool a dataset's train and test images and split every class anew: `test_fraction`
    of each class (rounded) becomes test data, drawn with `seed` (e.g. sklearn's digits)."""
    gen = torch.Generator().manual_seed(derive_seed(seed, "resplit"))
    x, y = torch.cat([raw.train_x, raw.test_x]), torch.cat([raw.train_y, raw.test_y])
    train, test = [], []
    for c in range(raw.n_classes):
        rows = torch.nonzero(y == c).flatten()
        rows = rows[torch.randperm(len(rows), generator=gen)]
        n_test = int(round(test_fraction * len(rows)))
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    train, test = torch.cat(train).sort().values, torch.cat(test).sort().values
    return RawData(raw.name, x[train], y[train], x[test], y[test], raw.n_classes,
                   origin=raw.origin, files=raw.files)


def _remapped(prepared: dict[str, torch.Tensor], defn: BenchmarkDef) -> dict[str, torch.Tensor]:
    """Labels (and the tasks' class lists) replaced by their position in the class order, as
    class-incremental code does so that phase i's classes are outputs bounds[i]..bounds[i+1]."""
    position = torch.full((int(prepared["n_classes"]),), -1, dtype=torch.long)
    position[torch.tensor(defn.class_list)] = torch.arange(len(defn.class_list))
    out = {**prepared, "n_classes": torch.tensor(len(defn.class_list))}
    for key, value in prepared.items():
        if key in ("train_y", "test_y") or key.startswith("test_y/"):
            out[key] = position[value]
        elif key.startswith("classes/"):
            out[key] = position[value].sort().values
    return out


def _group_classes(prepared: dict[str, torch.Tensor], defn: BenchmarkDef, run_seed: int):
    """A per-class preparation grouped into this run's tasks: the classes are shuffled with
    the run seed (BLD: a random split per run, the same for every method of that seed)."""
    gen = torch.Generator().manual_seed(derive_seed(run_seed, "class_split"))
    order = torch.randperm(int(prepared["n_classes"]), generator=gen)
    k = defn.classes_per_task
    out = {key: v for key, v in prepared.items() if "/" not in key or key.startswith("param/")}
    for t in range(defn.n_tasks):
        classes = order[t * k:(t + 1) * k].sort().values.tolist()
        out[f"classes/{t}"] = torch.tensor(classes)
        for part in ("pool", "val", "test_x", "test_y"):
            out[f"{part}/{t}"] = torch.cat([prepared[f"{part}/{c}"] for c in classes])
    return out


def _compact(index: dict[str, torch.Tensor], raw: RawData, defn: BenchmarkDef):
    """Keep only the images some task refers to, and pre-transform fixed test sets."""
    train_keys = [k for k in index if k.startswith(("pool/", "val/"))]
    keep = torch.unique(torch.cat([index[k] for k in train_keys]))
    remap = torch.full((len(raw.train_y),), -1, dtype=torch.long)
    remap[keep] = torch.arange(len(keep))
    out = {"train_x": raw.train_x[keep].clone(), "train_y": raw.train_y[keep].clone(),
           "n_classes": torch.tensor(raw.n_classes)}
    fixed_tests = defn.test_draw == "data" and (defn.transform_seed == "data" or defn.kind == "split")
    if not fixed_tests:
        out["test_x"], out["test_y"] = raw.test_x.clone(), raw.test_y.clone()
    for key, value in index.items():
        if key.startswith(("pool/", "val/")):
            out[key] = remap[value]
        elif key.startswith("test/") and fixed_tests:
            t = int(key.split("/")[1])
            x = raw.test_x[value]
            if f"param/{t}" in index and defn.kind != "environments":  # NI tests stay clean
                x = _apply(defn, x, _param_value(index[f"param/{t}"]))
            out[f"test_x/{t}"], out[f"test_y/{t}"] = x.contiguous(), raw.test_y[value].clone()
        else:
            out[key] = value
    return out


def _param_value(tensor: torch.Tensor):
    return float(tensor) if tensor.dim() == 0 else tensor


# ----------------------------------------------------------------------------- materialize

def materialize(prepared: dict[str, torch.Tensor], defn: BenchmarkDef, run_seed: int) -> Benchmark:
    """Draw this run's examples and transformations (run seed) from a prepared benchmark."""
    gen = torch.Generator().manual_seed(derive_seed(run_seed, "data"))
    if "by_class" in prepared:
        prepared = _group_classes(prepared, defn, run_seed)
    if defn.remap_labels:
        prepared = _remapped(prepared, defn)
    train_x, train_y = prepared["train_x"], prepared["train_y"]
    n_inputs = int(torch.tensor(train_x.shape[1:]).prod())
    tasks = []
    for t in range(defn.n_tasks):
        if f"param/{t}" in prepared:
            param = _param_value(prepared[f"param/{t}"])
        else:
            param = _transform_params(defn, t, gen, n_inputs)
        pool = prepared[f"pool/{t}"]
        val = prepared[f"val/{t}"]
        if defn.train_draw == "run":
            n_train = defn.train_per_task
            wanted = None if n_train is None else n_train + defn.val_per_task
            pool = pool[_draw(len(pool), wanted, gen)]
            if defn.val_per_task:  # a fresh validation part per run (GMED's rotated MNIST)
                val = torch.cat([val, pool[n_train:]])
                pool = pool[:n_train]
        if f"test_x/{t}" in prepared:
            test_x, test_y = prepared[f"test_x/{t}"], prepared[f"test_y/{t}"]
        else:
            test = prepared[f"test/{t}"]
            if defn.test_draw == "run":
                test = test[_draw(len(test), defn.test_per_task, gen).sort().values]
            test_x, test_y = _apply(defn, prepared["test_x"][test], param), prepared["test_y"][test]
        def shaped(x):
            return reshape_images(x, defn.image_size, defn.resize, defn.channels).contiguous()

        tasks.append(TaskData(
            train_x=shaped(_apply(defn, train_x[pool], param)), train_y=train_y[pool],
            val_x=shaped(_apply(defn, train_x[val], param)), val_y=train_y[val],
            test_x=shaped(test_x), test_y=test_y, classes=prepared[f"classes/{t}"],
            info=_info(defn, param)))
    return Benchmark(defn, tasks, int(prepared["n_classes"]), tuple(tasks[0].train_x.shape[1:]),
                     n_inputs * train_x.element_size())
