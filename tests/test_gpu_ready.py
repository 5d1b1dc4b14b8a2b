"""Readiness for GPUs, checked on the CPU (issue 22): fp32 numerics by default, the precision
in each record's provenance, several training processes per GPU."""


import pytest
import torch

from clrepro import plan
from clrepro.data import store
from clrepro.job import make_deterministic, run_job, run_precision

RUN = "results/runs/perm_fmnist@gem2017.smoke/single/m0-e1/s0.json"


def _flags():
    return (torch.backends.cudnn.conv.fp32_precision, torch.backends.cudnn.rnn.fp32_precision,
            torch.backends.cuda.matmul.fp32_precision)


@pytest.fixture
def restore_fp32():
    yield
    make_deterministic(torch.device("cpu"), "fp32")


def test_job_setup_turns_tf32_off_for_convolutions_and_matmuls(restore_fp32):
    # torch's own default convolves in TF32 on Ampere+ GPUs; a job must not inherit it
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    make_deterministic(torch.device("cpu"))
    assert _flags() == ("ieee", "ieee", "ieee")
    assert torch.get_float32_matmul_precision() == "highest"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    make_deterministic(torch.device("cpu"), "tf32")
    assert _flags() == ("tf32", "tf32", "tf32")
    make_deterministic(torch.device("cpu"), "bf16")  # bf16 = autocast; fp32 ops stay IEEE
    assert _flags() == ("ieee", "ieee", "ieee")
    with pytest.raises(ValueError, match="precision"):
        make_deterministic(torch.device("cpu"), "fp16")


def test_precision_of_a_run_keeps_a_protocol_choice_and_bf16_only_where_autocast_exists():
    assert run_precision("fp32", {}, "online") == "fp32"
    assert run_precision("tf32", {}, "phases") == "tf32"
    assert run_precision("bf16", {}, "online") == "fp32"  # no autocast in the online trainer
    assert run_precision("bf16", {"precision": "fp32"}, "phases") == "bf16"
    assert run_precision("fp32", {"precision": "bf16"}, "phases") == "bf16"  # Mnemonics' option


def test_a_jobs_record_names_its_precision_and_tf32_is_off_after_it(tmp_path, restore_fp32):
    p = plan.build({"scale": "smoke", "papers": ["gem2017"], "data": {"synthetic": True}})
    job = p.run_job(RUN)
    data = tmp_path / "bench.pt"
    store.build(job.benchmark, p.data, data)
    torch.backends.cudnn.conv.fp32_precision = "tf32"  # torch's default
    out = tmp_path / "runs" / "perm_fmnist@gem2017.smoke/single/m0-e1/s0.json"
    record = run_job(job.description(p.data), out, data, device="cpu")
    assert record["provenance"]["precision"] == {"mode": "fp32", "cudnn_conv": "ieee",
                                                 "cuda_matmul": "ieee"}
    assert _flags() == ("ieee", "ieee", "ieee")
    assert p.config["precision"] == "fp32"
