"""Config -> the runs and artifacts to produce. The only place the run grid is assembled.

The Snakefile builds one Plan and asks it for wildcard values, inputs and job
descriptions; it never lists methods, benchmarks or seeds itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clrepro import config as cfg
from clrepro.data.benchmarks import BenchmarkDef
from clrepro.data.sources import DataSettings
from clrepro.fsutil import stable_hash
from clrepro.methods import get_method
from clrepro.papers import get_paper
from clrepro.papers.base import Artifact, Paper
from clrepro.spec import RunSpec

TABLE_SUFFIXES = (".csv", ".md", ".tex")
FIGURE_SUFFIXES = (".pdf", ".png", ".csv")


@dataclass
class RunJob:
    spec: RunSpec
    paper: str
    hp: dict[str, Any]
    benchmark: BenchmarkDef
    resources: dict[str, Any]

    def description(self, data: DataSettings) -> dict[str, Any]:
        """Everything a training job needs, as JSON (the rule's params: any change to the
        protocol part reruns the job; see protocol_hash)."""
        return {"spec": self.spec.to_dict(), "paper": self.paper, "hp": self.hp,
                "benchmark": self.benchmark.to_dict(),
                "data": {"dir": str(data.dir), "download": data.download,
                         "verify_checksums": data.verify_checksums, "synthetic": data.synthetic},
                "gpu": self.resources["gpu"]}

    @property
    def protocol_hash(self) -> str:
        return stable_hash({"hp": self.hp, "benchmark": self.benchmark.to_dict()})


@dataclass
class ArtifactJob:
    artifact: Artifact
    paper: str
    runs: list[RunSpec]
    outputs: list[Path]
    claims: Path


@dataclass
class Plan:
    config: dict[str, Any]
    root: Path
    scale: str
    data: DataSettings
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, RunJob] = field(default_factory=dict)
    benchmarks: dict[str, BenchmarkDef] = field(default_factory=dict)
    artifacts: dict[str, ArtifactJob] = field(default_factory=dict)

    # -- paths ------------------------------------------------------------------------
    def benchmark_path(self, name: str) -> Path:
        return self.root / "data" / f"{name}.pt"

    def log_path(self, *parts: str) -> Path:
        return self.root / "logs" / Path(*parts)

    @property
    def report_path(self) -> Path:
        return self.root / "report.pdf"

    def run_job(self, path: str | Path) -> RunJob:
        key = str(Path(path))
        if key not in self.runs:
            spec = RunSpec.from_path(path)
            raise KeyError(f"{path} ({spec.label} on {spec.benchmark}) is not in the plan for "
                           f"this configuration")
        return self.runs[key]

    def job_json(self, path: str | Path) -> str:
        return json.dumps(self.run_job(path).description(self.data), sort_keys=True)

    def paper_of(self, key: str) -> Paper:
        return get_paper(key)

    def summary(self) -> dict[str, Any]:
        gpu = sum(1 for r in self.runs.values() if r.resources["gpu"])
        return {"scale": self.scale, "papers": sorted(self.options), "runs": len(self.runs),
                "gpu_runs": gpu, "benchmarks": sorted(self.benchmarks),
                "artifacts": sorted(self.artifacts)}


def artifact_outputs(root: Path, artifact: Artifact) -> list[Path]:
    folder, suffixes = (("tables", TABLE_SUFFIXES) if artifact.kind == "table"
                        else ("figures", FIGURE_SUFFIXES))
    return [root / folder / f"{artifact.id}{s}" for s in suffixes]


def build(config: dict[str, Any]) -> Plan:
    config = cfg.validate(config)
    root = Path(config["results"])
    plan = Plan(config, root, config["scale"], DataSettings.from_config(config["data"]))
    wanted = config["artifacts"]
    known = []
    for key in config["papers"]:
        paper = get_paper(key)
        options = {**paper.option_defaults, **config["options"].get(key, {})}
        plan.options[key] = options
        benchmarks = paper.benchmarks(plan.scale, options)
        for artifact in paper.artifacts:
            known.append(artifact.id)
            if wanted != "all" and artifact.id not in wanted:
                continue
            specs = artifact.runs(plan.scale)
            for spec in specs:
                _add_run(plan, paper, options, benchmarks, spec)
            plan.artifacts[artifact.id] = ArtifactJob(
                artifact, key, specs, artifact_outputs(root, artifact),
                root / "claims" / f"{artifact.id}.json")
    if wanted != "all":
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise cfg.ConfigError(f"artifacts: unknown {', '.join(unknown)}; valid for papers "
                                  f"{', '.join(config['papers'])}: {', '.join(known)}")
    return plan


def _add_run(plan: Plan, paper: Paper, options: dict, benchmarks: dict, spec: RunSpec) -> None:
    key = str(spec.path(plan.root))
    if key in plan.runs:
        return
    if spec.benchmark not in benchmarks:
        raise cfg.ConfigError(f"{paper.key}: run on unknown benchmark {spec.benchmark}; "
                              f"known: {', '.join(benchmarks)}")
    get_method(spec.method)  # fails early, naming the valid methods
    unknown = [k for k, _ in spec.overrides if k not in paper.option_defaults]
    if unknown:
        raise cfg.ConfigError(f"{paper.key}: unknown option override(s) {', '.join(unknown)}")
    plan.benchmarks[spec.benchmark] = benchmarks[spec.benchmark]
    plan.runs[key] = RunJob(spec, paper.key, paper.hyperparams(spec, options),
                            benchmarks[spec.benchmark], paper.resources(spec))


def from_file(path: str | Path | None = "config.yaml", overrides: dict | None = None) -> Plan:
    return build(cfg.load(path, overrides))
