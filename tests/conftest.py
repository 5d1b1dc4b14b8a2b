import os
from pathlib import Path

import pytest
import torch

from clrepro.data.benchmarks import BenchmarkDef, materialize, prepare
from clrepro.data.sources import synthetic

ROOT = Path(__file__).resolve().parent.parent
FASHION = Path("/usr/share/datasets/fashion-mnist")

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture
def raw_mnist_like():
    return synthetic("mnist", (1, 28, 28), 10, train_per_class=60, test_per_class=20)


def tiny_benchmark(kind="permuted", scenario="domain_incremental", n_tasks=3, seed=0, **kw):
    raw = synthetic("mnist", (1, 28, 28), 10, train_per_class=60, test_per_class=20)
    defaults = dict(train_per_task=60, test_per_task=80)
    if kind == "split":
        defaults = dict(classes_per_task=2, test_per_task=None)
    defn = BenchmarkDef(f"tiny_{kind}@test", "mnist", kind, n_tasks, scenario, **{**defaults, **kw})
    return materialize(prepare(defn, raw), defn, seed)


needs_fashion = pytest.mark.skipif(not FASHION.is_dir(),
                                   reason="Debian package dataset-fashion-mnist not installed")
