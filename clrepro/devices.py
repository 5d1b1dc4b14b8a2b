"""Which device a training job uses.

Snakemake's `gpu` resource is only a counter: with `--resources gpu=4` four jobs may run
at once, but nothing tells each which GPU to take. Each job therefore claims a free GPU
itself with a lock file per device (fcntl locks vanish when the process dies, even with
kill -9, so a crashed job never leaves its GPU claimed) and narrows CUDA_VISIBLE_DEVICES to
it before CUDA is initialised, so the job (and anything it starts) sees only its own GPU.

Small runs (GEM's and GMED's MLPs) use a sliver of a GPU: with `gpu_slots` k, each GPU has k
lock files (slot s is on GPU s mod N), so k training processes share each device and
`--resources gpu=N*k` lets Snakemake start that many. A run's numbers do not depend on what
shares its GPU (deterministic kernels; each process has its own CUDA context and streams).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from clrepro.environment import EnvironmentProblem

log = logging.getLogger("clrepro")
_HELD: list = []  # open lock files of this process (the lock lasts as long as the process)


def lock_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"clrepro-gpu-slots-{os.getuid()}"
    path = Path(os.environ.get("CLREPRO_GPU_LOCK_DIR", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def acquire_slot(n_slots: int, directory: Path | None = None, timeout_s: float = 3600.0,
                 poll_s: float = 1.0) -> int:
    """Claim one of `n_slots` slots (devices x processes per device) for the rest of this
    process; wait while all are taken."""
    directory = directory or lock_dir()
    deadline = time.monotonic() + timeout_s
    while True:
        for slot in range(n_slots):
            handle = open(directory / f"gpu{slot}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _HELD.append(handle)
            return slot
        if time.monotonic() > deadline:
            raise TimeoutError(f"all {n_slots} GPUs stayed claimed for {timeout_s:.0f}s "
                               f"(locks in {directory}); is --resources gpu larger than the "
                               f"number of GPUs times gpu_slots?")
        time.sleep(poll_s)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, without initialising CUDA: CUDA_VISIBLE_DEVICES if
    set (SLURM sets it per allocation), else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


class DeviceError(EnvironmentProblem):
    """The device asked for does not exist here (or is not a device name)."""


NO_CUDA = ("device '{}' requested but CUDA is not available (no usable GPU is visible to "
           "torch): use --device cpu, or auto to take a GPU only when there is one "
           "(snakemake: --config device=auto)")


def check_device_name(preference: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", preference):
        raise DeviceError(f"device {preference!r} is not one of auto, cpu, cuda, cuda:N")
    return preference


def claim_gpu(gpus: list[str], slots_per_gpu: int = 1, directory: Path | None = None,
              timeout_s: float = 3600.0) -> str:
    """Claim a slot on one of `gpus` (slot s is on gpus[s % len(gpus)], so free slots fill
    the GPUs evenly) and narrow CUDA_VISIBLE_DEVICES to that GPU; returns its id."""
    slot = acquire_slot(len(gpus) * slots_per_gpu, directory, timeout_s)
    gpu = gpus[slot % len(gpus)]
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    log.info("claimed GPU %s (slot %d of %d, %d per GPU)", gpu, slot, len(gpus) * slots_per_gpu,
             slots_per_gpu)
    return gpu


def choose_device(preference: str, wants_gpu: bool, slots_per_gpu: int = 1) -> torch.device:
    """cpu | cuda:N as asked; `auto` (and a bare `cuda`) = a free GPU for runs that want one
    (`slots_per_gpu` processes per GPU). Must run before anything initialises CUDA in this
    process."""
    check_device_name(preference)
    if preference == "cpu" or (preference == "auto" and not wants_gpu):
        return torch.device("cpu")
    if preference.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(NO_CUDA.format(preference))
        return torch.device(preference)
    gpus = visible_gpus()
    if len(gpus) > 1 or (gpus and slots_per_gpu > 1):
        claim_gpu(gpus, slots_per_gpu)
    if not torch.cuda.is_available():
        if preference == "cuda":
            raise DeviceError(NO_CUDA.format(preference))
        log.info("this run would use a GPU but none is visible: training on the CPU")
        return torch.device("cpu")
    return torch.device("cuda:0")


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on `device`: on an accelerator pinned and copied without blocking the
    host (the copy is ordered before the kernels that read it)."""
    if device.type == "cpu":
        return t
    return t.pin_memory().to(device, non_blocking=True)
