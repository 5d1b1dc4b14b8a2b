"""Memory pre-flight: a run's peak GPU memory, estimated on the CPU without a GPU.

The method's own code runs at the run's full-scale shapes on PyTorch's `meta` device (tensors
with shapes and no data), under `LiveBytes`, a dispatch mode that adds up the storage of every
tensor made on that device while it lives and keeps the peak: the network, its gradients and
optimiser state, the method's buffers (its memory), what autograd saves for the backward pass,
and the temporaries. What is measured: the method's construction, two training steps
(`observe`; the optimiser state appears at the first) in the last task (where memories and
per-task gradients are largest), and one evaluation batch. Reads of
data stand in for what has none: a number read on the host is 1 (so `if violated:` takes
the heavier branch), `nonzero` and boolean masks select every element (the largest
possible output), a copy to the host is zeros of the right shape. A step that still cannot
run on `meta` (e.g. `unique`) is replaced by a plain step of the same network and batch
(the method's loss, backward, optimiser step), and the table says so ("generic"). A method
whose end of task allocates more than its steps (stored exemplars, Mnemonics' bilevel
exemplar optimisation) runs that work too, through its `preflight_end_task(peak_during)`
(clrepro.methods.cil), under the same accounting; the estimate is the larger peak, and the
table says "+ end of task". A large copy to the host stays a shapes-only tensor that is not
counted (it is host memory). Not counted: the benchmark's images that the online trainer
keeps on the device (at most the training set as uint8 plus one task as float32: under 1 GB
for every benchmark planned).

Planning never imports torch (DESIGN): this runs in `clrepro plan --memory`, not in the
Snakefile's plan.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils._python_dispatch import TorchDispatchMode

# (channels, side, classes) of each source's network input, before image_size/channels
SOURCES = {"mnist": (1, 28, 10), "fashion_mnist": (1, 28, 10), "cifar10": (3, 32, 10),
           "cifar100": (3, 32, 100), "svhn": (3, 32, 10), "miniimagenet": (3, 84, 100),
           "imagenet": (3, 224, 1000), "imagenet_subset": (3, 224, 100),
           "core50": (3, 128, 50), "digits": (1, 8, 10)}
GB = 1024 ** 3


class LiveBytes(TorchDispatchMode):
    """Storage bytes of the tensors on `device_type` made under it, while they live; `peak`
    the most at any time. A storage is counted once however many tensors view it."""

    def __init__(self, device_type: str = "meta"):
        super().__init__()
        self.device_type = device_type
        self.live = 0
        self.peak = 0
        self._storages: dict[int, list[int]] = {}  # storage id -> [bytes, tensors alive]
        self.paused = False

    def peak_during(self, fn) -> int:
        """The most bytes alive while fn() runs (what was alive before included)."""
        before, self.peak = self.peak, self.live
        try:
            fn()
        finally:
            during = self.peak
            self.peak = max(before, during)
        return during

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.device_type == "meta":
            out = _stand_in(func, args, kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        if self.paused:
            return out
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == self.device_type:
                self._track(t)
        return out

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage._cdata
        entry = self._storages.get(key)
        if entry is None:
            entry = self._storages[key] = [storage.nbytes(), 0]
            self.live += entry[0]
            self.peak = max(self.peak, self.live)
        entry[1] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        entry = self._storages.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self._storages[key]


aten = torch.ops.aten


def _all_positions(shape, device) -> list[torch.Tensor]:
    """Index tensors selecting every position of `shape` (a mask with no False)."""
    grids = torch.meshgrid(*[torch.arange(n, device=device) for n in shape], indexing="ij")
    return [g.reshape(-1) for g in grids]


def _stand_in(func, args, kwargs):
    """What a data-dependent op returns on `meta` (see the module docstring), or
    NotImplemented to run the op itself."""
    if func is aten._local_scalar_dense.default and args[0].device.type == "meta":
        return True if args[0].dtype == torch.bool else 1
    if func in (aten.nonzero.default, aten.argwhere.default) and args[0].device.type == "meta":
        return torch.stack(_all_positions(args[0].shape, "meta"), dim=1) if args[0].dim() else \
            torch.zeros(1, 0, dtype=torch.long, device="meta")
    if func is aten._unique2.default and args[0].device.type == "meta":  # all distinct
        x = args[0]
        return (torch.empty(x.numel(), dtype=x.dtype, device="meta"),
                torch.empty(x.shape if kwargs.get("return_inverse", args[2] if len(args) > 2 else False)
                            else (0,), dtype=torch.long, device="meta"),
                torch.empty(x.numel() if kwargs.get("return_counts", args[3] if len(args) > 3 else False)
                            else 0, dtype=torch.long, device="meta"))
    if func is aten.masked_select.default and args[0].device.type == "meta":
        return torch.empty(args[0].numel(), dtype=args[0].dtype, device="meta")
    if func is aten._to_copy.default and args[0].device.type == "meta" and \
            kwargs.get("device") is not None and torch.device(kwargs["device"]).type == "cpu":
        return torch.zeros(args[0].shape, dtype=kwargs.get("dtype") or args[0].dtype)
    if func in (aten.index.Tensor, aten.index_put.default, aten.index_put_.default) and \
            any(i is not None and i.dtype == torch.bool and i.device.type == "meta" for i in args[1]):
        indices = []
        for i in args[1]:
            if i is not None and i.dtype == torch.bool:
                indices += _all_positions(i.shape, "meta")
            else:
                indices.append(i)
        return func(args[0], indices, *args[2:], **kwargs)
    return NotImplemented


HOST_COPY_LIMIT = 2 ** 24  # elements: a larger copy to the host stays shapes-only (uncounted)


class _MetaReads(TorchFunctionMode):
    """Python-level reads of a meta tensor (refused before they reach the dispatcher)."""

    READS = {torch.Tensor.item: 1, torch.Tensor.__bool__: True, torch.Tensor.__int__: 1,
             torch.Tensor.__float__: 1.0, torch.Tensor.__index__: 1}

    def __init__(self, tracker: LiveBytes | None = None):
        super().__init__()
        self.tracker = tracker

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if args and isinstance(args[0], torch.Tensor) and args[0].device.type == "meta":
            if func in self.READS:
                return self.READS[func]
            if func is torch.Tensor.tolist:
                return torch.ones(args[0].shape, dtype=torch.long).tolist()
            if func is torch.Tensor.cpu and args[0].numel() > HOST_COPY_LIMIT and self.tracker:
                self.tracker.paused = True  # e.g. Mnemonics' exemplars kept on the host
                try:
                    return torch.empty(args[0].shape, dtype=args[0].dtype, device="meta")
                finally:
                    self.tracker.paused = False
            if func in (torch.Tensor.cpu, torch.Tensor.numpy):
                out = torch.zeros(args[0].shape, dtype=args[0].dtype)
                return out.numpy() if func is torch.Tensor.numpy else out
        return func(*args, **(kwargs or {}))


@dataclass
class Estimate:
    peak_bytes: int
    step: str  # "method" (its own observe) | "generic" (a plain step of its network)
    note: str = ""

    @property
    def gb(self) -> float:
        return self.peak_bytes / GB


def input_shape(benchmark: dict[str, Any]) -> tuple[tuple[int, int, int], int]:
    """(C, H, W) of the network input and the number of classes, from the definition."""
    channels, side, classes = SOURCES[benchmark["source"]]
    side = benchmark.get("image_size") or side
    channels = benchmark.get("channels") or channels
    return (channels, side, side), classes


def task_sizes(benchmark: dict[str, Any], n_classes: int) -> list[int]:
    """Classes of each task: a first task of first_task_classes (a base phase), then
    classes_per_task each (an equal split when the definition gives neither)."""
    n_tasks = benchmark["n_tasks"]
    per_task = benchmark.get("classes_per_task") or max(1, n_classes // n_tasks)
    first = benchmark.get("first_task_classes") or per_task
    return [first] + [per_task] * (n_tasks - 1)


def estimate(method_cls, hp: dict[str, Any], shape: tuple[int, int, int], n_classes: int,
             n_tasks: int, device: str = "meta", task_incremental: bool = False,
             sizes: list[int] | None = None) -> Estimate:
    """Peak memory of `method_cls` (with run hyperparameters `hp`) on `device` (meta: the
    estimate; cpu: real allocations, for the tests). `sizes`: classes per task (default
    an equal split). A batch's augmented views (hp augment.views: BLD's 50) are measured at
    2 and 3 and extrapolated linearly: each view's pass repeats the same work, and what a
    view adds that stays alive (a bank entry, or its activations when views are batched)
    is the same for every view (from the second on: one view alone skips a sum)."""
    views = (hp.get("augment") or {}).get("views", 1) if isinstance(hp.get("augment"), dict) else 1
    args = (method_cls, shape, n_classes, n_tasks, device, task_incremental, sizes)
    if views <= 3:
        return _estimate(hp, *args)
    two, three = (_estimate({**hp, "augment": {**hp["augment"], "views": v}}, *args) for v in (2, 3))
    note = "; ".join(n for n in (three.note, f"{views} views from 2 and 3") if n)
    return Estimate(three.peak_bytes + (views - 3) * (three.peak_bytes - two.peak_bytes),
                    three.step, note)


def _estimate(hp, method_cls, shape, n_classes, n_tasks, device, task_incremental, sizes) -> Estimate:
    from clrepro.methods.base import Context, TaskStream

    dev = torch.device(device)
    tracker = LiveBytes(dev.type)
    step, note = "method", ""
    batch = int(hp.get("batch_size", 10))
    per_task = max(1, n_classes // n_tasks)
    sizes = sizes or [per_task] * n_tasks
    starts = [sum(sizes[:k]) for k in range(n_tasks)]
    with tracker, _MetaReads(tracker):
        mask = None
        if task_incremental:  # task k's head: classes k*per_task ..
            mask = (torch.arange(n_classes) // per_task)[None, :] == torch.arange(n_tasks)[:, None]
            mask = mask.to(dev)
        norm = ([0.5] * shape[0], [0.25] * shape[0])  # any statistics: they change no size
        ctx = Context(shape, n_classes, n_tasks, mask, dev, torch.Generator().manual_seed(0),
                      [batch * 10] * n_tasks, 0, norm, 0,
                      [list(range(starts[k], starts[k] + sizes[k])) for k in range(n_tasks)],
                      lambda backbone: None)  # pretrained backbones: the shapes, random weights
        method = method_cls(ctx, hp)
        x = torch.zeros(batch, *shape, device=dev)
        y = torch.zeros(batch, dtype=torch.long, device=dev)
        tasks = torch.zeros(batch, dtype=torch.long, device=dev)
        try:
            method.begin_task(n_tasks - 1, TaskStream(x, y))
            tasks.fill_(n_tasks - 1)
            for i in range(2):
                method.step, method.batch_ids = i, torch.arange(batch, device=dev)
                method.observe(x, y, tasks)
        except Exception as exc:  # e.g. unique on meta: a plain step of the same network
            step, note = "generic", f"{type(exc).__name__}: {exc}"[:60]
            method.opt.zero_grad(set_to_none=True)
            for _ in range(2):
                loss = method.loss(x, y, tasks)
                loss.backward()
                method.opt.step()
                method.opt.zero_grad(set_to_none=True)
                del loss
        del x, y, tasks
        method.model.eval()
        with torch.inference_mode():
            n = int(hp.get("eval_batch_size", 1000))
            method.prepare_eval()
            method.predict(torch.zeros(n, *shape, device=dev),
                           torch.zeros(n, dtype=torch.long, device=dev))
        peak = tracker.peak
        end_task = getattr(method, "preflight_end_task", None)
        if end_task is not None:
            method.model.train()
            end_peak = end_task(tracker.peak_during)
            if end_peak > peak:
                peak, note = end_peak, (note + "; " if note else "") + "+ end of task"
        del method
    return Estimate(peak, step, note)


def run_classes(plan) -> dict[tuple, list[str]]:
    """Planned runs grouped by what decides their memory: paper, benchmark, method and
    hyperparameters (seeds aside)."""
    from clrepro.fsutil import stable_hash

    groups: dict[tuple, list[str]] = {}
    for path, job in sorted(plan.runs.items()):
        key = (job.paper, job.spec.benchmark, job.spec.method, stable_hash(job.hp))
        groups.setdefault(key, []).append(path)
    return groups


# hyperparameters that change no tensor's size, besides floats (learning rates, loss weights,
# margins): run classes that differ only in them share one estimate
SIZE_FREE = ("eval_split", "tasks_limit", "eval.rows", "eval_every", "checkpoint_every")


def _sized(value: Any) -> Any:
    """What of a hyperparameter's value can change a size: a tuned value is a float; of the
    augmentation only the number of views."""
    from clrepro.tuning import is_tuned

    if is_tuned(value):
        return "tuned"
    if isinstance(value, dict) and "views" in value:
        return {"views": value["views"]}
    return value


def plan_memory(plan, jobs: int = 1, progress=None) -> list[dict[str, Any]]:
    """One row per run class: paper, benchmark, method, an example run, runs, estimate.
    Run classes that differ in nothing that sets a size share one estimate; the estimates are
    made by `jobs` worker processes (each runs the method's code on `meta`, single-threaded;
    at full scale an estimate of a Mnemonics "w/ ours" class takes 20-60 s on one core).
    `progress(done, total)` is called after each estimate."""
    rows, work = [], {}
    for (paper, benchmark, method, _), paths in run_classes(plan).items():
        job = plan.runs[paths[0]]
        defn = job.benchmark.to_dict()
        shape, n_classes = input_shape(defn)
        sizes = {k: _sized(v) for k, v in job.hp.items()
                 if not isinstance(v, float) and k not in SIZE_FREE}
        memo = (method, repr(sorted(sizes.items(), key=str)), shape, n_classes,
                tuple(task_sizes(defn, n_classes)))
        work.setdefault(memo, (method, job.hp.get("entry"), _untuned(plan, job.hp), shape, n_classes,
                               defn["n_tasks"], defn["scenario"] == "task_incremental",
                               task_sizes(defn, n_classes)))
        rows.append({"paper": paper, "benchmark": benchmark, "method": method, "run": paths[0],
                     "runs": len(paths), "gpu": job.resources["gpu"], "memo": memo,
                     "paths": paths})
    estimates = _estimate_all(work, jobs, progress)
    for row in rows:
        row["estimate"] = estimates[row.pop("memo")]
    return rows


def _untuned(plan, hp: dict[str, Any]) -> dict[str, Any]:
    """hp with each value the plan leaves to a tuning grid (clrepro.tuning: chosen after the
    grid's runs) set to its first grid run's value: the method's code needs a number there,
    and no size depends on which one (a tuned value is a float, see `_sized`)."""
    from clrepro.spec import RunSpec
    from clrepro.tuning import MARKER, is_tuned

    def first(key, value):
        run = str(RunSpec.from_dict(value[MARKER][0]).path(plan.root))
        return plan.runs[run].hp[key]

    return {k: first(k, v) if is_tuned(v) else v for k, v in hp.items()}


def _estimate_all(work: dict, jobs: int, progress) -> dict:
    """The estimate of each work item, in this process (jobs 1) or in `jobs` spawned ones
    (spawned, not forked: a fork of a process whose torch threads are running can hang)."""
    out, total = {}, len(work)
    if jobs <= 1 or total <= 1:
        for memo, args in work.items():
            out[memo] = estimate_class(*args)
            if progress:
                progress(len(out), total)
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(min(jobs, total), mp_context=multiprocessing.get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(1,)) as pool:
        futures = {pool.submit(estimate_class, *args): memo for memo, args in work.items()}
        for future in as_completed(futures):
            out[futures[future]] = future.result()
            if progress:
                progress(len(out), total)
    return out


def estimate_class(method: str, entry, hp, shape, n_classes, n_tasks, task_incremental,
                   sizes) -> Estimate:
    """`estimate` of one run class by its method's name; a failure is an Estimate saying why
    (the table shows "?")."""
    from clrepro.methods import get_method

    try:
        return estimate(get_method(method, entry), hp, shape, n_classes, n_tasks,
                        task_incremental=task_incremental, sizes=sizes)
    except Exception as exc:
        return Estimate(-1, "failed", f"{type(exc).__name__}: {exc}"[:80])
