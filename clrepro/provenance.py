"""Where a result came from: commit, dirty flag, package versions, machine."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from pathlib import Path

import clrepro

_REPO = Path(clrepro.__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=_REPO, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@functools.cache
def code_state() -> dict:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", "clrepro")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def versions() -> dict:
    import numpy
    import torch

    return {
        "clrepro": clrepro.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
    }


@functools.cache
def cpu_model() -> str:
    """The processor's name (Linux /proc/cpuinfo, else platform): CPU kernels differ between
    processors, so records from two machines may differ in their last bits."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def kernels() -> dict:
    """The CPU math libraries torch dispatches to and the instruction set it chose: these,
    not the torch version alone, decide the rounding of every matrix product."""
    import torch

    show = torch.__config__.show()
    found = {}
    for key, marker in (("blas", "Math Kernel Library Version"), ("onednn", "MKL-DNN v"),
                        ("cpu_capability", "CPU capability usage:")):
        line = next((ln for ln in show.splitlines() if marker in ln), "")
        found[key] = line.split(marker, 1)[1].split("(")[0].strip() if line else None
    if found["blas"]:
        found["blas"] = "MKL " + found["blas"].split("-")[0].strip()
    return found


def machine(device: str, threads: int) -> dict:
    import torch

    info = {"host": platform.node(), "platform": platform.platform(), "cpu": cpu_model(),
            "kernels": kernels(), "device": device, "threads": threads}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def provenance(device: str = "cpu", threads: int = 1) -> dict:
    return {**code_state(), "versions": versions(), "machine": machine(device, threads)}
