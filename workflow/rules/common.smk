# Shared setup: validate the config, build the plan, define wildcard spaces.
import re

from snakemake.exceptions import WorkflowError

import clrepro.config
import clrepro.data.definitions
import clrepro.plan

# clrepro.plan validates the config against clrepro/schemas/config.schema.yaml (JSON
# Schema; unknown keys and wrong types are named) before any job is scheduled.
try:
    PLAN = clrepro.plan.build(config)
except (clrepro.config.ConfigError, KeyError, ValueError) as exc:
    raise WorkflowError(f"clrepro: {exc}")

RESULTS = str(PLAN.root)
REPORT = str(PLAN.report_path)
CONFIG = PLAN.config  # validated, defaults filled in


def _alternatives(names):
    return "|".join(re.escape(n) for n in sorted(names)) or "(?!)"


TABLES = [a for a, job in PLAN.artifacts.items() if job.artifact.kind == "table"]
FIGURES = [a for a, job in PLAN.artifacts.items() if job.artifact.kind == "figure"]


GPU_BENCHMARKS = _alternatives(PLAN.gpu_benchmarks)
CPU_BENCHMARKS = _alternatives(set(PLAN.benchmarks) - PLAN.gpu_benchmarks)
LOGGED_BENCHMARKS = _alternatives(PLAN.logged[0])
LOGGED_METHODS = _alternatives(PLAN.logged[1])


def paper_title(wc):
    return PLAN.artifacts[wc.artifact].paper_title


wildcard_constraints:
    benchmark=_alternatives(PLAN.benchmarks),
    seed=r"\d+",
    setting=r"m\d+-e\d+(\+[A-Za-z0-9_.]+=[^+/]+)*",
    method=r"[a-z0-9_]+",


def run_of(wc):
    """The planned run named by the train rule's wildcards."""
    return PLAN.run_job(f"{RESULTS}/runs/{wc.benchmark}/{wc.method}/{wc.setting}/s{wc.seed}.json")


def artifact_runs(wc):
    """An artifact's inputs: its runs' records, and the tensors the logging runs saved."""
    paths = []
    for spec in PLAN.artifacts[wc.artifact].runs:
        path = spec.path(PLAN.root)
        paths.append(str(path))
        if PLAN.logs_artifacts(PLAN.run_job(path)):
            paths.append(str(PLAN.artifact_path(path)))
    return paths
