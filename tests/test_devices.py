"""GPU slot claiming for multi-GPU workstations (Snakemake only counts GPUs)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from clrepro import devices


@pytest.fixture
def held():
    yield devices._HELD
    for handle in devices._HELD:
        handle.close()
    devices._HELD.clear()


def test_each_job_gets_its_own_gpu(tmp_path, held):
    assert devices.acquire_slot(2, tmp_path) == 0
    assert devices.acquire_slot(2, tmp_path) == 1
    with pytest.raises(TimeoutError, match="all 2 GPUs"):
        devices.acquire_slot(2, tmp_path, timeout_s=0.2, poll_s=0.05)
    held.pop(0).close()  # the job on GPU 0 ends
    assert devices.acquire_slot(2, tmp_path) == 0


def test_a_killed_job_frees_its_gpu(tmp_path, held):
    code = (f"import time, pathlib; from clrepro import devices; "
            f"print(devices.acquire_slot(1, pathlib.Path({str(tmp_path)!r})), flush=True); "
            f"time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "0"
    with pytest.raises(TimeoutError):
        devices.acquire_slot(1, tmp_path, timeout_s=0.2, poll_s=0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.05)
    assert devices.acquire_slot(1, tmp_path, timeout_s=5) == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_device_choice_without_a_gpu():
    assert devices.choose_device("cpu", True).type == "cpu"
    assert devices.choose_device("auto", False).type == "cpu"
    assert devices.choose_device("auto", True).type == "cpu"  # falls back, logs why
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        devices.choose_device("cuda", True)


def test_a_job_sees_only_the_gpu_it_claimed(tmp_path, held, monkeypatch):
    monkeypatch.setenv("CLREPRO_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.visible_gpus() == ["3", "5"]
    assert devices.choose_device("auto", True) == torch.device("cuda:0")
    assert devices.visible_gpus() == ["3"]  # narrowed to the claimed GPU
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # a second job on the same machine
    devices.choose_device("auto", True)
    assert devices.visible_gpus() == ["5"]


def test_gpu_slots_let_k_processes_share_each_gpu(tmp_path, held, monkeypatch):
    # 2 GPUs, 3 slots each: six claims (one per process; a lock is per open file, so the
    # claims of one process exclude each other as those of six would), three on each GPU;
    # a seventh waits
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,7")
    claimed = []
    for _ in range(6):
        claimed.append(devices.claim_gpu(["4", "7"], 3, tmp_path, timeout_s=1))
        assert os.environ["CUDA_VISIBLE_DEVICES"] == claimed[-1]  # it sees only its GPU
    assert sorted(claimed) == ["4", "4", "4", "7", "7", "7"]
    with pytest.raises(TimeoutError, match="all 6 GPUs"):
        devices.claim_gpu(["4", "7"], 3, tmp_path, timeout_s=0.2)
    held.pop(1).close()  # the job in slot 1 (on GPU 7) ends: its slot is free again
    assert devices.claim_gpu(["4", "7"], 3, tmp_path, timeout_s=1) == "7"
