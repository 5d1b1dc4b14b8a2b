"""Which device a training job uses.

Snakemake's `gpu` resource is only a counter: with `--resources gpu=4` four jobs may run
at once, but nothing tells each which GPU to take. Each job therefore claims a free GPU
itself with a lock file per device (fcntl locks vanish when the process dies, even with
kill -9, so a crashed job never leaves its GPU claimed).
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

log = logging.getLogger("clrepro")
_HELD: list = []  # open lock files of this process (the lock lasts as long as the process)


def lock_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"clrepro-gpu-slots-{os.getuid()}"
    path = Path(os.environ.get("CLREPRO_GPU_LOCK_DIR", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def acquire_slot(n_slots: int, directory: Path | None = None, timeout_s: float = 3600.0,
                 poll_s: float = 1.0) -> int:
    """Claim one of `n_slots` devices for the rest of this process; wait while all are taken."""
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
                               f"number of GPUs?")
        time.sleep(poll_s)


def choose_device(preference: str, wants_gpu: bool) -> torch.device:
    """cpu | cuda:N as asked; `auto` (and a bare `cuda`) = a free GPU for runs that want one."""
    if preference == "cpu":
        return torch.device("cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device '{preference}' requested but CUDA is not available")
    if preference.startswith("cuda:"):
        return torch.device(preference)
    if preference == "auto" and not wants_gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        log.info("this run would use a GPU but none is visible: training on the CPU")
        return torch.device("cpu")
    count = torch.cuda.device_count()
    slot = acquire_slot(count) if count > 1 else 0
    torch.cuda.set_device(slot)
    return torch.device(f"cuda:{slot}")
