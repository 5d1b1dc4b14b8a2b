"""The Method interface: one small class per method, one training step per `observe`.

The loop (clrepro.train) owns the stream, evaluation and timing; a method only sees
stream batches. Hyperparameters arrive as a flat dict `hp` resolved by the paper module
(never as constants inside a method). Anything a method must carry across a checkpoint
is listed in `state_attrs` (tensors, lists/dicts of tensors, numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from clrepro.models import build_model


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


class Method:
    name: ClassVar[str] = ""
    # "tasks": tasks in order (the continual stream); "iid": all tasks' examples shuffled together
    stream: ClassVar[str] = "tasks"
    state_attrs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: Context, hp: dict[str, Any]):
        self.ctx = ctx
        self.hp = hp
        self.device = ctx.device
        self.task = 0
        self.counters: dict[str, int] = {}
        self.model = self.make_model().to(self.device)
        # Plain SGD (no momentum, no weight decay) in every paper reproduced here.
        self.opt = torch.optim.SGD(self.model.parameters(), lr=hp["lr"])

    # -- construction helpers -------------------------------------------------------
    def make_model(self) -> nn.Module:
        return self.build_model()

    def build_model(self, spec: dict[str, Any] | None = None, n_outputs: int | None = None):
        return build_model(spec or self.hp["model"], self.ctx.input_shape,
                           n_outputs or self.ctx.n_classes, self.ctx.n_tasks)

    # -- the loop's interface --------------------------------------------------------
    def begin_task(self, t: int) -> None:
        self.task = t

    def observe(self, x: torch.Tensor, y: torch.Tensor, tasks: torch.Tensor) -> None:
        raise NotImplementedError

    def end_task(self, t: int) -> None:
        pass

    def prepare_eval(self) -> None:
        """Called once before each evaluation (e.g. iCaRL recomputes class means)."""

    def artifacts(self) -> dict[str, torch.Tensor]:
        """Tensors a run saves beside its record for figures (e.g. GMED's edited memory)."""
        return {}

    def predict(self, x: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        return self.logits(x, tasks).argmax(1)

    # -- shared pieces --------------------------------------------------------------
    def forward(self, x: torch.Tensor, tasks: torch.Tensor, model: nn.Module | None = None):
        model = model or self.model
        return model(x, tasks) if getattr(model, "takes_task", False) else model(x)

    def mask_logits(self, out: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """Task-incremental heads: only the task's classes compete (GEM §4.1 CIFAR)."""
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

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def parameters_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

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


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"method name missing or taken: {cls.name!r}")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise KeyError(f"unknown method '{name}'; known: {', '.join(sorted(METHODS))}")
    return METHODS[name]
