"""Memory pre-flight (clrepro.preflight): the estimate made on `meta` tensors agrees with the
memory a real run of the same code allocates, and `clrepro plan --memory` warns about runs
that would not fit."""

import ctypes
import logging

import pytest
from torch.utils._python_dispatch import TorchDispatchMode

from clrepro import cli, plan
from clrepro.methods import METHODS
from clrepro.preflight import estimate

MB = 2 ** 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks",
                                               "keepcost")]


def _malloc_in_use() -> int:
    """Bytes the C allocator has handed out (heap + mmap chunks): torch's CPU tensors included."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


class MallocPeak(TorchDispatchMode):
    """The most memory in use after any operation, above what was in use at the start: an
    independent measurement of real allocations (not of tensor sizes)."""

    def __init__(self):
        super().__init__()
        self.base = _malloc_in_use()
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, _malloc_in_use() - self.base)
        return out


REPLAY = {"memory": 500, "replay.batch_size": 32, "replay.iterations": 1, "er.loss": "union_mean"}
CASES = {
    "mlp_single": ("single", {"lr": 0.1, "model": {"name": "mlp", "hidden": [2048, 2048],
                                                    "init": "xavier"},
                              "batch_size": 512, "eval_batch_size": 4000}, (1, 28, 28), 10),
    "resnet_er": ("er", {"lr": 0.1, "model": {"name": "resnet18_reduced", "nf": 20},
                         "batch_size": 32, "eval_batch_size": 128, **REPLAY}, (3, 32, 32), 10),
}


@pytest.mark.skipif(not hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2"), reason="needs glibc >= 2.33")
@pytest.mark.parametrize("case", sorted(CASES))
def test_meta_estimate_is_within_25_percent_of_real_cpu_allocations(case):
    name, hp, shape, n_classes = CASES[case]
    estimated = estimate(METHODS[name], hp, shape, n_classes, 5, "meta").peak_bytes
    estimate(METHODS[name], hp, shape, n_classes, 5, "cpu")  # warm-up: one-time allocations
    measured = MallocPeak()
    with measured:
        real = estimate(METHODS[name], hp, shape, n_classes, 5, "cpu")
    assert real.step == "method" and measured.peak > 20 * MB  # well above allocator noise
    assert real.peak_bytes == estimated  # the same code on meta and on real tensors
    print(f"{case}: estimated {estimated / MB:.1f} MB, measured {measured.peak / MB:.1f} MB")
    assert abs(estimated - measured.peak) <= 0.25 * measured.peak, (estimated / MB, measured.peak / MB)


def test_plan_memory_prints_a_table_and_warns_about_runs_over_the_gpu(capsys, caplog):
    config = {"scale": "smoke", "papers": ["gem2017"], "artifacts": ["gem.table2"],
              "gpu_memory_gb": 1e-6}
    p = plan.build(config)
    for job in p.runs.values():  # stand in for GPU runs
        job.resources = {**job.resources, "gpu": True}
    with caplog.at_level(logging.WARNING, logger="clrepro"):
        cli.print_memory(p)
    out = capsys.readouterr().out
    assert "gem2017: estimated peak GPU memory per run" in out
    rows = [line for line in out.splitlines() if "@gem2017.smoke" in line]
    assert {line.split()[1] for line in rows} == {"gem", "icarl"}
    assert "may not fit a 1e-06 GB GPU" in caplog.text and "/gem/" in caplog.text
