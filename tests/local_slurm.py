"""A real single-node SLURM cluster for one test (scripts/slurm-local.sh): started in a
fresh temporary directory, stopped by PID when the test ends, pass or fail."""

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "slurm-local.sh"
TOOLS = ["munged", "mungekey", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd",
         "sbatch", "squeue", "sacct", "scancel", "sacctmgr"]
CONF_LINK = Path("/run/slurm/conf")


@dataclass
class Cluster:
    state: Path
    env: dict
    start_s: float

    def run(self, *argv: str) -> str:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True,
                              check=True, timeout=60).stdout


def unavailable() -> str | None:
    """Why no local cluster can start here, or None."""
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (slurmd runs jobs as the user who submits them)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not found: run 'scripts/slurm-local.sh install' (as root)"
    if Path("/etc/slurm/slurm.conf").exists():
        return "/etc/slurm/slurm.conf exists: srun inside jobs would use that cluster, not ours"
    return None


def daemon_pids(state: Path) -> dict[int, str]:
    return {int(f.read_text()): f.stem for f in (state / "pids").glob("*.pid")}


def running(pid: int, name: str) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except OSError:
        return False


def local_cluster(gpus: bool):
    """Generator for a fixture: yields a Cluster, then stops it and removes its state."""
    reason = unavailable()
    if reason:
        # CI must not pass by skipping: there, a missing cluster is a failure
        if os.environ.get("CLREPRO_REQUIRE_SLURM"):
            pytest.fail(reason)
        pytest.skip(reason)
    state = Path(tempfile.mkdtemp(prefix="clrepro-slurm-"))
    try:
        started = time.monotonic()
        out = subprocess.run(["bash", str(SCRIPT), "start", str(state), *([] if gpus else ["--no-gpus"])],
                             capture_output=True, text=True, timeout=300)
        elapsed = time.monotonic() - started
        if out.returncode != 0:
            logs = "".join(f"\n== {log.name}\n{log.read_text()[-2000:]}"
                           for log in sorted((state / "log").glob("*")))
            pytest.fail(f"slurm-local.sh start failed:\n{out.stderr}{logs}")
        print(f"\nlocal SLURM cluster ({'2 stand-in GPUs' if gpus else 'no GPUs'}) up in {elapsed:.1f} s")
        yield Cluster(state, dict(os.environ, SLURM_CONF=str(state / "etc" / "slurm.conf")), elapsed)
    finally:
        pids = daemon_pids(state)
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], timeout=300)
        left = {pid: name for pid, name in pids.items() if running(pid, name)}
        for pid in left:
            os.kill(pid, 9)
        link_left = CONF_LINK.is_symlink() and os.readlink(CONF_LINK).startswith(str(state))
        shutil.rmtree(state, ignore_errors=True)
        assert not left, f"slurm-local.sh stop left daemons running (now killed): {left}"
        assert not link_left, f"slurm-local.sh stop left {CONF_LINK} behind"
