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
        except BaseException:
            traceback.print_exc(file=fh)
            print(f"clrepro: job failed, see {log_path}", file=sys.__stderr__)
            raise


def prepare_data(snakemake: Any) -> None:
    from clrepro.data import store
    from clrepro.data.benchmarks import BenchmarkDef
    from clrepro.data.sources import DataSettings

    def body():
        job = snakemake.params.job
        store.build(BenchmarkDef.from_dict(job["benchmark"]), DataSettings.from_config(job["data"]),
                    Path(snakemake.output.pt))

    _logged(snakemake, body)


def train(snakemake: Any) -> None:
    from clrepro.job import run_job

    _logged(snakemake, lambda: run_job(snakemake.params.job, snakemake.output[0],
                                       snakemake.input.pt, device=snakemake.params.device,
                                       threads=snakemake.threads))


def render(snakemake: Any) -> None:
    from clrepro import plan
    from clrepro.render import render_artifact

    _logged(snakemake, lambda: render_artifact(plan.build(snakemake.params.config),
                                               snakemake.wildcards.artifact))


def report(snakemake: Any) -> None:
    from clrepro.report import build_report

    _logged(snakemake, lambda: build_report([Path(p) for p in snakemake.input.claims],
                                            Path(snakemake.output[0])))
