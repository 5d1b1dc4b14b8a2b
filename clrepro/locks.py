"""One training process per record, across working directories (issue 18).

Snakemake locks its working directory only; two working directories (or a `clrepro run` by
hand) sharing one results directory would train the same run twice, interleave its
checkpoint and overwrite its log. Each run therefore holds an fcntl lock on a hidden file
next to its record while it trains (a lock vanishes with its process, even after kill -9);
the file names the holder, and a second process refuses the run with that name instead of
training it.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import socket
from pathlib import Path
from typing import Iterator

from clrepro.environment import EnvironmentProblem

_HELD: dict[Path, int] = {}  # lock files this process holds -> nesting depth


class RunLockedError(EnvironmentProblem):
    """Another process is training this run."""


def lock_path(out: Path) -> Path:
    return Path(out).with_name(f".{Path(out).name}.lock")


def holder() -> str:
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"pid {os.getpid()} on {socket.gethostname()}, working directory {os.getcwd()}, since {now}"


@contextlib.contextmanager
def run_lock(out: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of record `out` (re-entrant within a process) or raise RunLockedError."""
    path = lock_path(Path(out)).absolute()
    if path in _HELD:
        _HELD[path] += 1
        try:
            yield
        finally:
            _HELD[path] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            who = handle.read().strip() or "another process"
            raise RunLockedError(
                f"{out} is being trained by {who}; another working directory (or a second "
                f"`clrepro run`) shares this results directory -- wait for it to finish, or give "
                f"this one its own `results`") from None
        handle.seek(0)
        handle.truncate()
        handle.write(holder() + "\n")
        handle.flush()
        _HELD[path] = 1
        try:
            yield
        finally:
            del _HELD[path]
    finally:
        handle.close()  # releases the lock
