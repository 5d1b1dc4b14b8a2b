"""Many small runs in one process (issue 12): torch is imported and the benchmark's prepared
tensors are loaded and verified once, then the runs are trained one after the other.

Each run is still its own unit: it writes its record (and artifact tensors) atomically,
resumes from its own checkpoint after a kill, logs to its own file, and is skipped when a
record made under the same protocol already exists -- so rerunning a batch after a protocol
change, a crash or a kill redoes only the runs that need it. A run that raises does not stop
the others; the batch fails at the end, naming them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from clrepro.data import store
from clrepro.data.definitions import BenchmarkDef, DataSettings
from clrepro.job import run_job
from clrepro.locks import RunLockedError, run_lock
from clrepro.spec import protocol_hash
from clrepro.results import CorruptRecordError, load_record

log = logging.getLogger("clrepro")


def up_to_date(out: Path, protocol: dict[str, Any], artifacts: Path | None) -> bool:
    """A usable record of this protocol exists (and the tensors the run saves, if any)."""
    try:
        record = load_record(out)
    except (FileNotFoundError, CorruptRecordError):
        return False
    wanted = protocol_hash(protocol["hp"], protocol["benchmark"])
    return record.get("protocol_hash") == wanted and (artifacts is None or artifacts.is_file())


def run_batch(runs: dict[str, dict[str, Any]], data: dict[str, Any], prepared: str | Path,
              device: str = "auto", threads: int = 1, gpu: bool = False,
              precision: str = "fp32", gpu_slots: int = 1) -> dict[str, str]:
    """Train every run of `runs` (record path -> {protocol, artifacts, log}) that lacks an
    up-to-date record; returns record path -> 'done' | 'up to date' | 'failed: ...'.
    `gpu`: the job holds a GPU (device auto then uses it)."""
    outcome: dict[str, str] = {}
    tensors = None
    for i, (out, entry) in enumerate(runs.items(), 1):
        protocol = entry["protocol"]
        artifacts = Path(entry["artifacts"]) if entry.get("artifacts") else None
        if up_to_date(Path(out), protocol, artifacts):
            outcome[out] = "up to date"
            log.info("[%d/%d] %s: up to date", i, len(runs), out)
            continue
        if tensors is None:  # once per batch: the checksum is verified here, not per run
            defn = BenchmarkDef.from_dict(protocol["benchmark"])
            tensors = store.load_or_rebuild(defn, DataSettings.from_config(data), Path(prepared))
        log.info("[%d/%d] %s", i, len(runs), out)
        start = time.perf_counter()
        handler = None
        try:
            with run_lock(out):  # before its log is opened: another process may hold the run
                handler = _run_log(entry.get("log"))
                run_job({**protocol, "data": data, "gpu": gpu}, out, prepared, device=device,
                        threads=threads, artifacts_out=artifacts, tensors=tensors,
                        precision=precision, gpu_slots=gpu_slots)
        except RunLockedError as exc:
            log.error("%s", exc)
            outcome[out] = f"failed: {exc}"
        except Exception as exc:  # the other runs of the batch still go ahead
            log.exception("run %s failed", out)
            outcome[out] = f"failed: {type(exc).__name__}: {exc}"
        else:
            outcome[out] = "done"
            log.info("[%d/%d] done in %.1f s", i, len(runs), time.perf_counter() - start)
        finally:
            if handler is not None:
                logging.getLogger().removeHandler(handler)
                handler.close()
    return outcome


def _run_log(path: str | None) -> logging.Handler | None:
    """The run's own log file (the same one the single-run rule writes)."""
    if not path:
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logging.getLogger().addHandler(handler)
    return handler
