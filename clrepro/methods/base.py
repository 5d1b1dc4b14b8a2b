"""The Method interface: one small class per method, one training step per `observe`.

The loop (clrepro.train) owns the stream, evaluation and timing; a method only sees
stream batches. Hyperparameters arrive as a flat dict `hp` resolved by the paper module
(never as constants inside a method). Anything a method must carry across a checkpoint
is listed in `state_attrs` (tensors, lists/dicts of tensors, numbers).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from clrepro.data.transforms import as_float
from clrepro.models import build_model
from clrepro.optim import build_optimizer
from clrepro.trainset import TrainingSet


@dataclass
class Context:
    """What a method may know about the run: shapes, task structure, device, RNG."""

    input_shape: tuple[int, int, int]
    n_classes: int
    n_tasks: int
    class_mask: torch.Tensor | None  # [T, n_classes] bool on device; None = no masking
    device: torch.device
    generator: torch.Generator  # the method's own random stream (memory sampling, ...)
    train_sizes: list[int] = field(default_factory=list)  # stream examples per task (x epochs)
    seed: int = 0  # the run seed (regenerable augmentation derives its streams from it)
    input_norm: tuple[list[float], list[float]] | None = None  # per-channel mean, std of the data
    raw_image_bytes: int = 0  # bytes of one stored training image (data-storage accounting)
    task_classes: list[list[int]] = field(default_factory=list)  # the classes of each task
    # backbone name -> verified pretrained state dict (resolved by the job from data.weights)
    weights: Callable[[str], dict[str, torch.Tensor]] | None = None
    workers: int = 0  # DataLoader workers decoding a file-backed benchmark's images


@dataclass
class TaskStream:
    """A task's training examples as `begin_task`/`end_task` receive them: images as stored
    (uint8 or float) on the method's device, and their labels."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, size: int):
        """(network input in [0, 1], labels) in order, `size` at a time."""
        for lo in range(0, len(self.y), size):
            yield as_float(self.x[lo:lo + size]), self.y[lo:lo + size]

    def class_images(self, c: int, limit: int | None = None) -> torch.Tensor:
        """The images of class c (at most `limit`, in stream order) as network input."""
        return as_float(self.class_pixels(c, limit))

    def class_pixels(self, c: int, limit: int | None = None) -> torch.Tensor:
        """The same images as the stream holds them (uint8, or float for a float stream):
        what a method stores, 4x smaller than network input (as_float reads them)."""
        return self.x[self.y == c][:limit]


@dataclass
class FileStream(TaskStream):
    """A file-backed task: `x` is ImageFiles, decoded with the test transform
    when a method reads it; labels on the method's device."""

    workers: int = 0

    def batches(self, size: int):
        rows = torch.arange(len(self.y)).split(size)
        yield from zip(self.x.inputs(rows, self.y.device, self.workers), self.y.split(size))

    def class_pixels(self, c: int, limit: int | None = None) -> torch.Tensor:
        rows = torch.nonzero(self.y.cpu() == c).flatten()[:limit]
        return self.x.decode(rows, self.workers).to(self.y.device)  # uint8


class Method:
    name: ClassVar[str] = ""
    # "tasks": tasks in order (the continual stream); "iid": all tasks' examples shuffled together
    stream: ClassVar[str] = "tasks"
    state_attrs: ClassVar[tuple[str, ...]] = ()
    trainer: ClassVar[str] = "online"  # online (clrepro.train) | phases (clrepro.phases)
    # What it fits (clrepro.methods.catalog.COMPATIBILITY): the plan runs a method only in
    # the artifacts whose setting, memory and backbone it fits, and names the others' reason.
    settings: ClassVar[tuple[str, ...]] = ("task_aware", "class_incremental", "task_free")
    needs_memory: ClassVar[bool] = False
    needs_task_ids: ClassVar[bool] = False
    needs_pretrained: ClassVar[bool] = False
    # The keys a method reads from its hp dict, with what they mean -- or (meaning, default):
    # a paper that does not set the key gives the default; subclasses add theirs. The plan
    # checks every run against them (clrepro.methods.catalog reads them from here).
    hyperparameters: ClassVar[dict[str, str]] = {
        "lr": "learning rate",
        "model": "network spec (clrepro.models.build_model)",
    }
    optional_hyperparameters: ClassVar[dict[str, str]] = {
        "optimizer": "{name: sgd | adam, momentum, weight_decay, betas}; default plain SGD",
    }

    def __init__(self, ctx: Context, hp: dict[str, Any]):
        self.ctx = ctx
        self.hp = hp
        self.device = ctx.device
        self.task = 0
        self.counters: dict[str, int] = {}
        self.model = self.make_model().to(self.device)
        self.opt = self.make_optimizer(self.model.parameters())

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        """Plain SGD unless hp["optimizer"] says otherwise (clrepro.optim)."""
        return build_optimizer(params, self.hp["lr"], self.hp.get("optimizer"))

    # -- construction helpers -------------------------------------------------------
    def make_model(self) -> nn.Module:
        return self.build_model()

    def build_model(self, spec: dict[str, Any] | None = None, n_outputs: int | None = None):
        return build_model(spec or self.hp["model"], self.ctx.input_shape,
                           n_outputs or self.ctx.n_classes, self.ctx.n_tasks, self.ctx.input_norm,
                           self.ctx.weights)

    # -- the loop's interface --------------------------------------------------------
    # Before each observe the loop sets `self.step` (batches seen so far in the run) and
    # `self.batch_ids` (positions of the batch's examples in the task's training set).
    step: int = 0
    batch_ids: torch.Tensor | None = None

    def begin_task(self, t: int, data: TaskStream | None = None) -> None:
        """Task t starts (timed as training); `data` holds all its training examples."""
        self.task = t
        self._peak_intra, self._peak_parts = 0, {}

    def observe(self, x: torch.Tensor, y: torch.Tensor, tasks: torch.Tensor) -> None:
        raise NotImplementedError

    # phase trainer (clrepro.phases) only
    def training_set(self, t: int, data: TaskStream) -> TrainingSet:
        """What phase t trains on for its epochs: the task's data (methods add exemplars)."""
        if isinstance(data, FileStream):
            empty = torch.zeros((0, *self.ctx.input_shape), device=self.device)
            return TrainingSet(empty, data.y[:0], data.x)
        return TrainingSet(data.x, data.y)

    def restore_structure(self, phase: int, stage: str) -> None:
        """Rebuild the network as it was at `phase` (`stage`) before a checkpoint is loaded."""

    def checkpoint(self) -> None:
        """Save progress now (the phase trainer replaces this; long end_task work calls it)."""

    def end_task(self, t: int, data: TaskStream | None = None) -> None:
        """Task t's examples have all been seen (timed as training)."""

    def prepare_eval(self) -> None:
        """Called once before each evaluation (e.g. a nearest-mean classifier recomputes its
        class means)."""

    def artifacts(self) -> dict[str, torch.Tensor]:
        """Tensors a run saves beside its record for figures (e.g. a memory's edited examples)."""
        return {}

    def details(self) -> dict[str, Any]:
        """JSON-able facts the run's record keeps (e.g. evidence that an optimisation of
        exemplars happened); the phase trainer stores them under "details"."""
        return {}

    def predict(self, x: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        return self.logits(x, tasks).argmax(1)

    # -- shared pieces --------------------------------------------------------------
    def forward(self, x: torch.Tensor, tasks: torch.Tensor, model: nn.Module | None = None):
        model = model or self.model
        return model(x, tasks) if getattr(model, "takes_task", False) else model(x)

    def mask_logits(self, out: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """Task-incremental heads: only the task's classes compete."""
        if self.ctx.class_mask is None:
            return out
        return out.masked_fill(~self.ctx.class_mask[tasks], float("-inf"))

    def logits(self, x: torch.Tensor, tasks: torch.Tensor, model: nn.Module | None = None):
        return self.mask_logits(self.forward(x, tasks, model), tasks)

    def loss(self, x: torch.Tensor, y: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(x, tasks), y)

    def sgd_step(self, x: torch.Tensor, y: torch.Tensor, tasks: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.loss(x, y, tasks).backward()
        self.opt.step()

    def count(self, key: str, n: int | torch.Tensor = 1) -> None:
        """Add n to a counter; n may be a 0-dim device tensor (counted without a sync)."""
        self.counters[key] = self.counters.get(key, 0) + n

    def counter_values(self) -> dict[str, Any]:
        """The counters as numbers (one host read each, at the end of a run); a count kept as
        a table (e.g. per class) as it is. A device count that stayed 0 is left out, as a
        counter that was never counted."""
        return {k: int(v) if isinstance(v, torch.Tensor) else v for k, v in self.counters.items()
                if not (isinstance(v, torch.Tensor) and int(v) == 0)}

    # -- memory overhead: measured from the tensors a method keeps ----------------------
    # Inter-batch: what the method carries from one batch to the next, i.e. its state_attrs
    # (what a checkpoint holds besides network and optimiser). Data storage: the attributes
    # that hold training images. Intra-batch adds what a batch holds while it is processed,
    # reported through `hold_during_batch`.
    stored_data_attrs: ClassVar[tuple[str, ...]] = ()
    _peak_intra: int = 0

    _peak_parts: dict[str, int] = {}

    def hold_during_batch(self, *tensors: torch.Tensor, **parts: Any) -> None:
        """Account for auxiliary tensors held while the current batch is processed; named
        `parts` are also itemised (memory_bytes()["intra_parts"] at the peak)."""
        named = {k: _nbytes(v) for k, v in parts.items()}
        held = (self._attr_bytes(self.state_attrs) + sum(_nbytes(t) for t in tensors)
                + sum(named.values()))
        if held > self._peak_intra or not self._peak_intra:
            self._peak_intra, self._peak_parts = held, named

    def memory_bytes(self) -> dict[str, Any]:
        """Overhead beyond the network at this point of the run (evaluated after the last
        task): intra-batch peak since the task began, inter-batch, data; and
        the named parts of the intra-batch peak where a method itemises them."""
        carried = self._attr_bytes(self.state_attrs)
        out: dict[str, Any] = {"intra_batch": max(self._peak_intra, carried), "inter_batch": carried,
                               "data_storage": self._attr_bytes(self.stored_data_attrs)}
        if self._peak_parts:
            out["intra_parts"] = dict(self._peak_parts)
        return out

    def _attr_bytes(self, attrs: tuple[str, ...]) -> int:
        return sum(_nbytes(getattr(self, a, None)) for a in attrs)

    def parameters_finite(self) -> bool:
        # one host read for the whole network, not one per parameter tensor
        return bool(torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all())

    # -- checkpointing --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        extra = {}
        for k in self.state_attrs:
            value = getattr(self, k)
            # memories and the like carry their own state_dict; modules are saved as such
            extra[k] = value.state_dict() if hasattr(value, "state_dict") else value
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "task": self.task, "counters": dict(self.counters), "extra": extra}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.task = state["task"]
        self.counters = dict(state["counters"])
        for k, v in state["extra"].items():
            current = getattr(self, k, None)
            if hasattr(current, "load_state_dict"):
                current.load_state_dict(v)
            else:
                setattr(self, k, v)


def _nbytes(value: Any) -> int:
    """Bytes of the tensors in a value: a tensor, a container of them, or an object with a
    state_dict (memories)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    if hasattr(value, "state_dict"):
        return _nbytes(value.state_dict())
    return 0


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"method name missing or taken: {cls.name!r}")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str, entry: str | None = None) -> type[Method]:
    """The method registered as `name`; `entry` ('package.module:Class'): a method from
    outside clrepro, imported and registered under `name` (the config's name for it)."""
    if entry and name not in METHODS:
        module, _, attr = entry.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"{entry} is not a clrepro.methods.base.Method subclass")
        METHODS[name] = cls
    if name not in METHODS:
        raise KeyError(f"unknown method '{name}'; known: {', '.join(sorted(METHODS))}")
    return METHODS[name]
