"""One machine, two thread counts: after job setup, the matrix products of an MLP step are
bit-identical with 1 and 2 threads (MKL's conditional numerical reproducibility). Run in a
fresh process, since MKL reads the setting once, at its first call."""

import os
import subprocess
import sys

import pytest
import torch

PROBE = """
import torch
from clrepro.job import make_deterministic
make_deterministic(torch.device("cpu"))
g = torch.Generator().manual_seed(0)
layers = [torch.randn(784, 100, generator=g).requires_grad_(),
          torch.randn(100, 10, generator=g).requires_grad_()]
x = torch.randn(10, 784, generator=g)
out = []
for threads in (1, 2):  # a forward and backward pass of a GEM-sized MLP
    torch.set_num_threads(threads)
    h = torch.relu(x @ layers[0]) @ layers[1]
    out.append(torch.cat([h.flatten(), *[d.flatten() for d in torch.autograd.grad(h.square().sum(), layers)]]))
print("identical" if torch.equal(out[0], out[1]) else "differs", float((out[0] - out[1]).abs().max()))
"""


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="torch built without MKL")
def test_matrix_products_do_not_depend_on_the_thread_count_after_job_setup():
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("identical"), out.stdout
