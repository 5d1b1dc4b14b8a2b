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


def machine(device: str, threads: int) -> dict:
    import torch

    info = {"host": platform.node(), "platform": platform.platform(), "device": device,
            "threads": threads}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def provenance(device: str = "cpu", threads: int = 1) -> dict:
    return {**code_state(), "versions": versions(), "machine": machine(device, threads)}
