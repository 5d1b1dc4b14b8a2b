"""Entry points for the workflow's `script:` rules (workflow/scripts/*.py).

Each receives Snakemake's `snakemake` object, sends logging, stdout and tracebacks to the
rule's log file, and calls the same functions as the CLI. Job descriptions travel as
Python objects in `params`, so no shell command is ever assembled from the config.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from pathlib import Path
from typing import Any, Callable


def _logged(snakemake: Any, body: Callable[[], None]) -> None:
    log_path = Path(snakemake.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as fh, contextlib.redirect_stdout(fh), \
            contextlib.redirect_stderr(fh):
        logging.basicConfig(level=logging.INFO, stream=fh, force=True,
                            format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
        try:
            body()
        except Exception as exc:
            traceback.print_exc(file=fh)
            failure = exc
        else:
            return
    # the cause on the console, the traceback in the log; no second traceback on the console
    print(f"clrepro: {_one_line(failure)}\n(full log: {log_path})", file=sys.__stderr__)
    raise SystemExit(1)


def _one_line(exc: BaseException) -> str:
    from clrepro.environment import EnvironmentProblem, explain

    if isinstance(exc, OSError) and exc.errno is not None:  # not e.g. MissingDataError
        return f"{type(exc).__name__}: {explain(exc)}"
    if isinstance(exc, EnvironmentProblem):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _config(snakemake: Any) -> dict[str, Any]:
    """The validated config. Settings read from here (data location, device) are not
    rerun triggers; only a rule's params (the protocol) are."""
    from clrepro.config import validate

    return validate(dict(snakemake.config))


def prepare_data(snakemake: Any) -> None:
    from clrepro.data import store
    from clrepro.data.definitions import BenchmarkDef
    from clrepro.data.definitions import DataSettings

    def body():
        store.build(BenchmarkDef.from_dict(snakemake.params.benchmark),
                    DataSettings.from_config(_config(snakemake)["data"]), Path(snakemake.output.pt))

    _logged(snakemake, body)


def train(snakemake: Any) -> None:
    from clrepro.job import run_job

    def body():
        config = _config(snakemake)
        desc = {**snakemake.params.protocol, "data": config["data"],
                "gpu": int(snakemake.resources.get("gpu", 0)) > 0}
        run_job(desc, snakemake.output[0], snakemake.input.pt, device=config["device"],
                threads=snakemake.threads, artifacts_out=getattr(snakemake.output, "artifacts", None),
                precision=config["precision"], gpu_slots=config["gpu_slots"])

    _locked(snakemake, body)


def train_batch(snakemake: Any) -> None:
    from clrepro.batch import run_batch
    from clrepro.fsutil import write_json

    def body():
        config = _config(snakemake)
        outcome = run_batch(snakemake.params.runs, config["data"], snakemake.input.pt,
                            device=config["device"], threads=snakemake.threads,
                            gpu=int(snakemake.resources.get("gpu", 0)) > 0,
                            precision=config["precision"], gpu_slots=config["gpu_slots"])
        failed = {k: v for k, v in outcome.items() if v.startswith("failed")}
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(outcome)} runs failed (their own logs "
                               f"say why): " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
        write_json(snakemake.output[0], outcome)

    _locked(snakemake, body)


def _locked(snakemake: Any, body: Callable[[], None]) -> None:
    """_logged while holding the lock of the job's first output (clrepro.locks), taken before
    its log is opened: a second working directory sharing the results is refused, and leaves
    the first one's log alone."""
    from clrepro.locks import RunLockedError, run_lock

    try:
        with run_lock(snakemake.output[0]):
            _logged(snakemake, body)
    except RunLockedError as exc:
        print(f"clrepro: {exc}", file=sys.__stderr__)
        raise SystemExit(1) from None


def render(snakemake: Any) -> None:
    from clrepro import plan
    from clrepro.render import render_artifact

    _logged(snakemake, lambda: render_artifact(plan.build(snakemake.params.config),
                                               snakemake.wildcards.artifact))


def report(snakemake: Any) -> None:
    from clrepro.report import build_report

    _logged(snakemake, lambda: build_report([Path(p) for p in snakemake.input.claims],
                                            Path(snakemake.output[0])))


def verify(snakemake: Any) -> None:
    from clrepro import plan
    from clrepro import verify as check
    from clrepro.fsutil import write_text

    def body():
        result = check.compare(plan.build(snakemake.params.config))
        print(result.report(), end="")
        if result.changed:
            raise RuntimeError("verdicts changed: " + "; ".join(
                f"{r.claim} {r.expected or '(none)'} -> {r.current or '(none)'} "
                f"({'; '.join(r.reasons)})" for r in result.changed))
        write_text(snakemake.output[0], result.report())

    _logged(snakemake, body)
