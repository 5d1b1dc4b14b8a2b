# Shared setup: validate the config, build the plan, define wildcard spaces.
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

import clrepro.config
import clrepro.data.definitions
import clrepro.plan

# clrepro.plan validates the config against clrepro/schemas/config.schema.yaml (JSON
# Schema; unknown keys and wrong types are named) before any job is scheduled.
try:
    PLAN = clrepro.plan.build(config)
    PLAN.check_gpu_memory()  # runs the saved memory pre-flight estimates above the GPUs
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
# GPUs a GPU run's job asks for: none with device=cpu (the switch for a cluster without GPUs)
GPUS_PER_GPU_JOB = 0 if CONFIG["device"] == "cpu" else 1
LOGGED_CPU_BENCHMARKS = _alternatives(PLAN.logged[0] - PLAN.gpu_benchmarks)
LOGGED_GPU_BENCHMARKS = _alternatives(PLAN.logged[0] & PLAN.gpu_benchmarks)
LOGGED_METHODS = _alternatives(PLAN.logged[1])


def paper_title(wc):
    return PLAN.artifacts[wc.artifact].paper_title


wildcard_constraints:
    benchmark=_alternatives(PLAN.benchmarks),
    seed=r"\d+",
    setting=r"m\d+-e\d+(\+[A-Za-z0-9_.]+=[^+/]+)*",
    method=r"[a-z0-9_]+",


def run_key(wc):
    return f"{RESULTS}/runs/{wc.benchmark}/{wc.method}/{wc.setting}/s{wc.seed}.json"


# GPU jobs ask SLURM for the node features (config gpu_features) whose GPUs hold their runs'
# estimated peak memory (clrepro plan --memory); no constraint when gpu_features is empty
RUN_CONSTRAINT = ({"constraint": lambda wc: PLAN.gpu_constraint([run_key(wc)])}
                  if CONFIG["gpu_features"] and GPUS_PER_GPU_JOB else {})
BATCH_CONSTRAINT = ({"constraint": lambda wc: PLAN.gpu_constraint(batch_paths(wc))}
                    if CONFIG["gpu_features"] and GPUS_PER_GPU_JOB else {})


def run_of(wc):
    """The planned run named by the train rule's wildcards."""
    return PLAN.run_job(run_key(wc))


def artifact_runs(wc):
    """An artifact's inputs: its runs' records and the tensors logging runs save, or the
    tokens of the batches that write them (clrepro.plan.Plan.run_inputs)."""
    paths = []
    for spec in PLAN.artifacts[wc.artifact].runs:
        paths += PLAN.run_inputs(spec.path(PLAN.root))
    return sorted(set(paths))


def batch_paths(wc):
    return PLAN.batches[f"{wc.benchmark}/{wc.batch}"]


def batch_runs(wc):
    """The batch's runs: record path -> protocol (its rerun trigger), the tensors it saves,
    and its own log file (the one the single-run rule would write)."""
    out = {}
    for path in batch_paths(wc):
        job = PLAN.run_job(path)
        log = Path(RESULTS) / "logs" / Path(path).relative_to(RESULTS).with_suffix(".log")
        out[path] = {"protocol": job.protocol(), "log": str(log),
                     "artifacts": str(PLAN.artifact_path(path)) if PLAN.logs_artifacts(job) else None}
    return out


def batch_mem_mb(wc, attempt):
    """A batch runs its runs one at a time: the largest memory of one of them."""
    return max(PLAN.run_job(p).resources["mem_mb"] for p in batch_paths(wc)) * attempt


def batch_runtime(wc, attempt):
    return sum(PLAN.run_job(p).resources["runtime"] for p in batch_paths(wc)) * attempt


def batch_priority(wc):
    """Long batches first: one started last would keep a single core busy at the end while
    the others idle. GPU runs (ResNets, on the CPU in the small presets) first, then by the
    longest planned run."""
    jobs = [PLAN.run_job(p) for p in batch_paths(wc)]
    return max(j.resources["runtime"] for j in jobs) + (10_000 if jobs[0].resources["gpu"] else 0)


def batch_needs(wc):
    """Records (or batch tokens) of the tuning runs this batch's runs read."""
    needed = {str(s.path(PLAN.root)) for p in batch_paths(wc) for s in PLAN.run_job(p).needs}
    return sorted({f for n in needed for f in PLAN.run_inputs(n)})
