"""A training job killed with SIGKILL at a random point resumes and ends with the metrics of
an uninterrupted run, leaving no partial result behind."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from clrepro import plan
from clrepro.data import store
from clrepro.job import checkpoint_path

RUN = "results/runs/perm_fmnist@gem2017.quick/gem/m1000-e1/s0.json"


def command(out: Path, job: dict, data: Path) -> list[str]:
    return [sys.executable, "-m", "clrepro", "run", str(out), "--job", json.dumps(job),
            "--data", str(data), "--device", "cpu"]


def test_kill_9_then_rerun_gives_identical_metrics(tmp_path):
    p = plan.build({"scale": "quick", "data": {"synthetic": True}})
    job = p.run_job(RUN)
    data = tmp_path / "bench.pt"
    store.build(job.benchmark, p.data, data)
    desc = job.description(p.data)

    reference = tmp_path / "reference" / "runs" / Path(RUN).relative_to("results/runs")
    subprocess.run(command(reference, desc, data), check=True, capture_output=True)

    out = tmp_path / "killed" / "runs" / Path(RUN).relative_to("results/runs")
    proc = subprocess.Popen(command(out, desc, data), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = checkpoint_path(out)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(random.Random().uniform(0.0, 1.0))  # somewhere inside the run
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "a killed job must not leave a result behind"
    # SIGKILL inside a checkpoint write leaves its temporary file (no `finally` runs); the
    # rerun must remove it. Plant one so that this is checked whatever the kill hit.
    (out.parent / f".{ckpt.name}.planted.tmp").write_bytes(b"half a checkpoint")

    subprocess.run(command(out, desc, data), check=True, capture_output=True)
    assert not list(out.parent.glob(".*.tmp")), "the rerun removes what the killed run left"
    got, want = json.loads(out.read_text()), json.loads(reference.read_text())
    assert got["timings"]["resumed"] == 1
    assert got["R"] == want["R"] and got["b"] == want["b"] and got["curve"] == want["curve"]
    assert got["metrics"] == want["metrics"] and got["counters"] == want["counters"]
    assert not ckpt.exists(), "the checkpoint is removed once the record is written"
