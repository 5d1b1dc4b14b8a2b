"""Count the operations that make the host wait for the GPU (device->host synchronisations).

On CUDA the host queues kernels and runs ahead; an operation whose result the host must
read -- a Python number (`.item()`, `bool()`, `int()`, `float()`), an output whose size
depends on the data (`nonzero`, `unique`, boolean-mask indexing, `masked_select`), or a copy
to host memory (`.cpu()`, `.tolist()`, `.numpy()`) -- stalls it until the queue drains. One
such stall per step can halve a small network's GPU throughput, and nothing in a CPU run
notices it. `SyncCounter` is a dispatch mode that counts them; it works on the CPU, so tests
can hold every method's training step to a budget (tests/test_syncs.py).

On the CPU every tensor lives on the host, so the counter tells the tensors that stay on the
host in a GPU run too apart from the others: those made under it by a factory call without a
`device` (torch.zeros(3), torch.tensor([...])), with device="cpu" (a string: a run's device
is a torch.device), or from a CPU generator (torch.rand(n,
generator=g): a CUDA tensor cannot come from one), and whatever is computed from such
tensors alone. Reading those is no synchronisation. Every other tensor (the data, the model,
anything made with `device=...`) counts as on the device, so a host read that a GPU run would
not pay can still be counted when its tensor was made before the counter started.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

aten = torch.ops.aten

# aten operations that read device memory on the host, or whose output size depends on it
_SYNCING = {
    aten._local_scalar_dense.default: "item",  # .item(), bool(), int(), float()
    aten.nonzero.default: "nonzero",
    aten.nonzero_static.default: None,  # static size: no sync (listed to say so)
    aten.argwhere.default: "nonzero",
    aten.masked_select.default: "masked_select",
    aten._unique.default: "unique",
    aten._unique2.default: "unique",
    aten.unique_dim.default: "unique",
    aten.unique_consecutive.default: "unique",
    aten.unique_dim_consecutive.default: "unique",
}
# host reads that never reach the dispatcher on the CPU (they read the CPU tensor directly)
_HOST_READS = {torch.Tensor.tolist: "tolist", torch.Tensor.numpy: "numpy",
               torch.Tensor.__array__: "numpy", torch.Tensor.cpu: "cpu"}


# factories whose result is on the host unless they are given a device
_FACTORIES = {torch.zeros, torch.ones, torch.empty, torch.full, torch.arange, torch.linspace,
              torch.eye, torch.tensor, torch.as_tensor, torch.rand, torch.randn, torch.randint,
              torch.randperm, torch.normal, torch.bernoulli, torch.multinomial}


def _on_host(kwargs) -> bool:
    """A factory call whose result is on the host in a GPU run too: no device, the string
    "cpu" (what code that means the host writes, e.g. torch.optim's `step` counters; a run's
    device is a torch.device), or a CPU generator."""
    device = kwargs.get("device")
    return device is None or device == "cpu" or isinstance(kwargs.get("generator"), torch.Generator)


def _tensors(tree) -> list[torch.Tensor]:
    return [a for a in tree_flatten(tree)[0] if isinstance(a, torch.Tensor)]


_PACKAGE = str(Path(__file__).resolve().parent)


def _caller() -> str:
    """file:line of the innermost clrepro frame outside this module (where a sync comes from)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_PACKAGE) and not name.endswith("syncs.py"):
            return f"{Path(name).relative_to(Path(_PACKAGE).parent)}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


class _Counts(Counter):
    """Counts by kind; with `where`, also by (kind, clrepro file:line)."""

    def __init__(self, where: bool):
        super().__init__()
        self.where: Counter | None = Counter() if where else None

    def add(self, kind: str) -> None:
        self[kind] += 1
        if self.where is not None:
            self.where[(kind, _caller())] += 1


def _bool_index(indices) -> bool:
    return any(i is not None and i.dtype in (torch.bool, torch.uint8) for i in indices)


class _HostReads(TorchFunctionMode):
    def __init__(self, counts: _Counts, host: WeakIdKeyDictionary):
        super().__init__()
        self.counts, self.host = counts, host

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _HOST_READS.get(func)
        # a device tensor's read reaches the dispatcher as a copy (counted there)
        if name is not None and isinstance(args[0], torch.Tensor) and args[0].device.type == "cpu" \
                and args[0] not in self.host:
            self.counts.add(name)
            if func is torch.Tensor.cpu:  # a copy on the host, as on a GPU (not the tensor)
                out = args[0].clone()
                self.host[out] = True
                return out
        out = func(*args, **kwargs)
        if func in _FACTORIES and _on_host(kwargs):
            for t in _tensors(out):
                self.host[t] = True
        return out


class _DeviceReads(TorchDispatchMode):
    def __init__(self, counts: _Counts, host: WeakIdKeyDictionary):
        super().__init__()
        self.counts, self.host = counts, host

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = _tensors((args, kwargs))
        if inputs and all(t in self.host for t in inputs):  # host work: no sync, host results
            out = func(*args, **kwargs)
            for t in _tensors(out):
                self.host[t] = True
            return out
        name = _SYNCING.get(func)
        if name is not None:
            self.counts.add(name)
        elif func in (aten.index.Tensor, aten.index_put.default, aten.index_put_.default,
                      aten._index_put_impl_.default) and _bool_index(args[1]):
            self.counts.add("bool_index")  # a boolean mask index is a nonzero first
        elif func is aten.repeat_interleave.Tensor and kwargs.get("output_size") is None:
            self.counts.add("repeat_interleave")
        elif func in (aten._to_copy.default, aten.copy_.default):
            # a device -> host copy (on CUDA; on the CPU the Python-level reads count them)
            src = args[1] if func is aten.copy_.default else args[0]
            dst = args[0].device if func is aten.copy_.default else kwargs.get("device")
            if src.device.type != "cpu" and dst is not None and torch.device(dst).type == "cpu":
                self.counts.add("to_cpu")
        return func(*args, **kwargs)


class SyncCounter:
    """`with SyncCounter() as syncs: ...` then `syncs.total` and `syncs.counts` (by kind;
    `syncs.counts.where` by kind and clrepro source line when made with `where=True`).
    `syncs.reset()` starts a new count (e.g. after a warm-up step)."""

    def __init__(self, where: bool = False):
        self.counts = _Counts(where)
        host = WeakIdKeyDictionary()  # tensors that stay on the host in a GPU run
        self._modes = (_HostReads(self.counts, host), _DeviceReads(self.counts, host))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        self.counts.clear()
        if self.counts.where is not None:
            self.counts.where.clear()

    def __enter__(self) -> "SyncCounter":
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
