"""Config -> the runs and artifacts to produce. The only place the run grid is assembled.

The Snakefile builds one Plan and asks it for wildcard values, inputs and job
descriptions; it never lists methods, benchmarks or seeds itself.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clrepro import config as cfg
from clrepro import yours
from clrepro.data.definitions import BenchmarkDef
from clrepro.data.definitions import DataSettings
from clrepro.methods import catalog
from clrepro.papers import get_paper
from clrepro.papers.base import Artifact, Paper
from clrepro.papers.strategies import saves_artifacts
from clrepro.spec import RunSpec, protocol_hash
from clrepro.tuning import needed_runs

TABLE_SUFFIXES = (".csv", ".md", ".tex")
FIGURE_SUFFIXES = (".pdf", ".png", ".csv")


@dataclass
class RunJob:
    spec: RunSpec
    paper: str
    hp: dict[str, Any]
    benchmark: BenchmarkDef
    resources: dict[str, Any]

    def protocol(self) -> dict[str, Any]:
        """What defines the run's result: the workflow's rerun trigger (rule params).
        Where data comes from, the device and the like are deliberately not part of it."""
        return {"spec": self.spec.to_dict(), "paper": self.paper, "hp": self.hp,
                "benchmark": self.benchmark.to_dict()}

    def description(self, data: DataSettings) -> dict[str, Any]:
        """Everything a training job needs: the protocol plus where to find data."""
        return {**self.protocol(), "data": data.to_dict(), "gpu": self.resources["gpu"]}

    @property
    def needs(self) -> list[RunSpec]:
        """Runs whose records choose some of this run's hyperparameters (tuning grids)."""
        return needed_runs(self.hp)

    @property
    def protocol_hash(self) -> str:
        return protocol_hash(self.hp, self.benchmark.to_dict())


@dataclass
class ArtifactJob:
    artifact: Artifact
    paper: str
    runs: list[RunSpec]
    outputs: list[Path]
    claims: Path
    yours: dict[str, list[RunSpec]] = field(default_factory=dict)  # user method -> its runs

    @property
    def paper_runs(self) -> list[RunSpec]:
        """The runs the paper's own render and claims read (the user's methods' left out)."""
        theirs = {s for specs in self.yours.values() for s in specs}
        return [s for s in self.runs if s not in theirs]

    @property
    def paper_title(self) -> str:
        paper = get_paper(self.paper)
        return f"{paper.title} ({paper.key})"


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
    # user methods (clrepro.yours): the artifacts (or parts) they do not fit, with the reason;
    # what each of their runs is made from
    skipped: list[dict[str, str]] = field(default_factory=list)
    made_by: dict[str, tuple] = field(default_factory=dict)

    # -- paths ------------------------------------------------------------------------
    def benchmark_path(self, name: str) -> Path:
        return self.root / "data" / f"{name}.pt"

    @property
    def report_path(self) -> Path:
        return self.root / "report.pdf"

    @property
    def memory_path(self) -> Path:
        """The memory pre-flight's estimates (`clrepro plan --memory` writes them)."""
        return self.root / "preflight" / "memory.json"

    # -- GPU memory ---------------------------------------------------------------------
    def gpu_memory(self) -> dict[str, float]:
        """Estimated peak GPU memory (GB) of the planned GPU runs whose protocol the saved
        pre-flight estimated (an entry of another protocol is stale and ignored)."""
        if "_saved_memory" not in self.__dict__:  # read once per plan
            path = self.memory_path
            self.__dict__["_saved_memory"] = json.loads(path.read_text()) if path.is_file() else {}
        saved = self.__dict__["_saved_memory"]
        return {key: entry["gb"] for key, entry in saved.items()
                if key in self.runs and self.runs[key].resources["gpu"]
                and entry["protocol"] == self.runs[key].protocol_hash}

    def gpu_constraint(self, keys: list[str]) -> str:
        """The SLURM constraint of a job training `keys`: every feature of config
        gpu_features whose GPUs hold the largest estimate among them (gpu_memory_gb for a
        run without one), as alternatives."""
        estimates = self.gpu_memory()
        need = max(estimates.get(k, self.config["gpu_memory_gb"]) for k in keys)
        features = self.config["gpu_features"]
        return "|".join(f for f, gb in sorted(features.items(), key=lambda kv: (kv[1], kv[0]))
                        if gb >= need)

    def check_gpu_memory(self) -> None:
        """Refuse, before any job, GPU runs estimated above gpu_memory_gb or above every
        GPU of gpu_features, naming them."""
        limit = self.config["gpu_memory_gb"]
        if self.config["gpu_features"]:
            limit = min(limit, max(self.config["gpu_features"].values()))
        over = sorted((gb, key) for key, gb in self.gpu_memory().items() if gb > limit)[::-1]
        if over:
            names = "; ".join(f"{key} ({gb:.1f} GB)" for gb, key in over[:5])
            raise cfg.ConfigError(
                f"gpu_memory_gb: {len(over)} GPU run(s) are estimated above {limit:g} GB "
                f"({self.memory_path}, from clrepro plan --memory): {names}"
                f"{' ...' if len(over) > 5 else ''}; give them larger GPUs (gpu_memory_gb, "
                f"gpu_features) or change their settings")

    def run_job(self, path: str | Path) -> RunJob:
        key = str(Path(path))
        if key in self.runs:
            return self.runs[key]
        spec = RunSpec.from_path(path)
        planned = [job.spec for job in self.runs.values()]
        sibling = next((j for j in self.runs.values() if (j.spec.benchmark, j.spec.method,
                        j.spec.setting) == (spec.benchmark, spec.method, spec.setting)), None)
        sibling_key = str(sibling.spec.path(self.root)) if sibling is not None else ""
        if sibling is not None and str(spec.path(self.root)) == key and sibling_key in self.made_by:
            made, conf, slot = self.made_by[sibling_key]  # a user method's run: same rule
            made = yours.UserRun(made.name, made.paper, replace(made.reference, seed=spec.seed))
            paper = get_paper(sibling.paper)
            hp, _ = yours.hyperparams(paper, self.options[sibling.paper], spec, made, conf, slot)
            job = RunJob(spec, sibling.paper, hp, sibling.benchmark, sibling.resources)
            self.runs[key] = job
            return job
        if sibling is not None and str(spec.path(self.root)) == key:
            # another seed of a planned configuration: the user's choice, same protocol
            paper = get_paper(sibling.paper)
            job = RunJob(spec, sibling.paper, protocol_hp(paper, spec, self.options[sibling.paper]),
                         sibling.benchmark, paper.resources(spec))
            self.runs[key] = job
            return job
        if spec.benchmark not in self.benchmarks:
            hint = f"planned benchmarks: {', '.join(sorted(self.benchmarks))}"
        elif spec.method not in {s.method for s in planned if s.benchmark == spec.benchmark}:
            methods = sorted({s.method for s in planned if s.benchmark == spec.benchmark})
            hint = f"methods planned on {spec.benchmark}: {', '.join(methods)}"
        else:
            same = sorted({str(s.path(self.root)) for s in planned
                           if (s.benchmark, s.method) == (spec.benchmark, spec.method)})
            hint = "planned runs of it: " + ", ".join(same[:6]) + (" ..." if len(same) > 6 else "")
        raise KeyError(f"{path} is not a run of this configuration (scale {self.scale}); {hint}")

    def logs_artifacts(self, job: RunJob) -> bool:
        """Runs that save tensors beside their record (what their paper asks to keep for
        its figures, clrepro.papers.strategies)."""
        return saves_artifacts(job.hp)

    @property
    def logged(self) -> tuple[set[str], set[str]]:
        """(benchmarks, methods) of the runs that save artifacts. The workflow trains them in
        a rule with a second output, matched by these two wildcards, so every planned run on
        such a (benchmark, method) pair must log."""
        runs = [j for j in self.runs.values() if self.logs_artifacts(j)]
        benchmarks = {j.spec.benchmark for j in runs}
        methods = {j.spec.method for j in runs}
        silent = [k for k, j in self.runs.items() if j.spec.benchmark in benchmarks
                  and j.spec.method in methods and not self.logs_artifacts(j)]
        if silent:
            raise ValueError(f"runs {silent[:3]} share benchmark and method with runs that save "
                             f"artifacts but do not save any themselves")
        return benchmarks, methods

    def artifact_path(self, run_path: str | Path) -> Path:
        return Path(run_path).with_suffix(".artifacts.pt")

    # -- batches: many small CPU runs in one process (issue 12) ---------------------------
    @functools.cached_property
    def batches(self) -> dict[str, list[str]]:
        """batch id ('<benchmark>/s<stage>-<k>') -> run paths. The runs of a benchmark are
        chunked, at most `batch_runs` runs (0: no batching) and `batch_minutes` of their
        planned time limits to a batch (so a batch of long runs stays short, on a
        workstation's cores as in a SLURM partition): every CPU run, and the GPU runs of the
        small presets (at full scale a GPU run keeps a job of its own). Runs that read other
        runs' records (a tuning grid) form a later stage, so a batch never waits on itself."""
        size, minutes = self.config["batch_runs"], self.config["batch_minutes"]
        groups: dict[tuple[str, int], list[str]] = {}
        for key, job in sorted(self.runs.items(), key=lambda kv: (kv[0] in self.made_by, kv[0])):
            if size and (not job.resources["gpu"] or self.scale != "full"):
                groups.setdefault((job.spec.benchmark, int(bool(job.needs))), []).append(key)
        out = {}
        for (benchmark, stage), keys in groups.items():
            chunks: list[list[str]] = [[]]
            for key in keys:
                planned = sum(self.runs[k].resources["runtime"] for k in chunks[-1] + [key])
                # a user method's runs (clrepro.yours) come after, in batches of their own:
                # adding one leaves the baselines' batches (and their params) as they were
                mixed = chunks[-1] and (key in self.made_by) != (chunks[-1][-1] in self.made_by)
                if chunks[-1] and (len(chunks[-1]) == size or planned > minutes or mixed):
                    chunks.append([])
                chunks[-1].append(key)
            out.update({f"{benchmark}/s{stage}-{k}": chunk for k, chunk in enumerate(chunks)})
        return out

    @functools.cached_property
    def batch_of(self) -> dict[str, str]:
        """run path -> its batch id (batched runs only)."""
        return {key: batch for batch, keys in self.batches.items() for key in keys}

    def batch_token(self, batch: str) -> Path:
        """What a batch job outputs once all its runs have records (the records themselves
        are written beside, one by one, so a partly done batch keeps its finished runs)."""
        return self.root / "batches" / f"{batch}.done"

    def run_inputs(self, path: str | Path) -> list[str]:
        """What a consumer of a run's record waits for: the record (and the tensors a logging
        run saves) or, for a batched run, its batch's token. A batched run's file that is
        missing although its batch finished (deleted by hand) is asked for by name: the
        single-run rule makes it again. (An edited record changes no input of a batched
        run's readers: rerun them with --forcerun.)"""
        key = str(Path(path))
        files = [key] + ([str(self.artifact_path(key))] if self.logs_artifacts(self.run_job(key)) else [])
        batch = self.batch_of.get(key)
        if batch is None:
            return files
        token = self.batch_token(batch)
        return [str(token)] + ([f for f in files if not Path(f).is_file()] if token.is_file() else [])

    @property
    def gpu_benchmarks(self) -> set[str]:
        """Benchmarks whose runs want a GPU (the workflow trains them in their own rule)."""
        wants = {}
        for job in self.runs.values():
            wants.setdefault(job.spec.benchmark, set()).add(job.resources["gpu"])
        mixed = [b for b, w in wants.items() if len(w) > 1]
        if mixed:
            raise ValueError(f"runs of {', '.join(mixed)} disagree on needing a GPU")
        return {b for b, w in wants.items() if True in w}

    def summary(self) -> dict[str, Any]:
        gpu = sum(1 for r in self.runs.values() if r.resources["gpu"])
        return {"scale": self.scale, "papers": sorted(self.options), "runs": len(self.runs),
                "gpu_runs": gpu, "benchmarks": sorted(self.benchmarks),
                "artifacts": sorted(self.artifacts),
                **({"methods": {name: sorted(a for a, j in self.artifacts.items() if name in j.yours)
                                for name in self.config["methods"]},
                    "skipped": self.skipped} if self.config["methods"] else {})}


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
    yours.register(config)  # methods from outside clrepro: their keys checked first
    artifacts_of = {k: [a.id for a in get_paper(k).artifacts] for k in config["papers"]}
    users = {name: yours.wanted(conf, config["papers"], artifacts_of)
             for name, conf in config["methods"].items()}
    for key in config["papers"]:
        paper = get_paper(key)
        options = {**paper.option_defaults, **{k: config[k] for k in paper.config_keys},
                   **config["options"].get(key, {})}
        plan.options[key] = options
        benchmarks = paper.benchmarks(plan.scale, options)
        for artifact in paper.artifacts:
            known.append(artifact.id)
            if wanted != "all" and artifact.id not in wanted:
                continue
            specs = artifact.runs(plan.scale, cfg.seeds_for(config, key), options)
            for spec in specs:
                _add_run(plan, paper, options, benchmarks, spec)
            job = plan.artifacts[artifact.id] = ArtifactJob(
                artifact, key, specs, artifact_outputs(root, artifact),
                root / "claims" / f"{artifact.id}.json")
            for name, papers in users.items():
                if key not in papers or (papers[key] and artifact.id not in papers[key]):
                    continue
                theirs = yours.plan_artifact(
                    plan, paper, options, artifact, specs, name, config["methods"][name],
                    named=bool(papers[key]),
                    add_run=lambda *a: _add_user_run(plan, benchmarks, *a))
                if theirs:
                    job.yours[name] = theirs
                    job.runs = job.runs + theirs
    if wanted != "all":
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise cfg.ConfigError(f"artifacts: unknown {', '.join(unknown)}; valid for papers "
                                  f"{', '.join(config['papers'])}: {', '.join(known)}")
    return plan


def _add_user_run(plan: Plan, benchmarks: dict, paper: Paper, options: dict, spec: RunSpec,
                  made: "yours.UserRun", conf: dict, slot) -> None:
    """A run of a user's method (clrepro.yours), and the tuning runs a grid of its needs."""
    key = str(spec.path(plan.root))
    if key in plan.runs:
        return
    hp, needs = yours.hyperparams(paper, options, spec, made, conf, slot)
    plan.benchmarks[spec.benchmark] = benchmarks[spec.benchmark]
    plan.runs[key] = RunJob(spec, paper.key, hp, benchmarks[spec.benchmark],
                            paper.resources(made.reference))
    plan.made_by[key] = (made, conf, slot)
    for cell, cell_made in needs:
        _add_user_run(plan, benchmarks, paper, options, cell, cell_made, conf, slot)


def protocol_hp(paper: Paper, spec: RunSpec, options: dict) -> dict[str, Any]:
    """A run's hyperparameters: the paper's values, then its method's declared defaults for
    the keys the paper does not set (a method needs a row in the paper's table only where
    the paper sets a value of its own)."""
    hp = paper.hyperparams(spec, options)
    for key, value in catalog.defaults(spec.method).items():
        hp.setdefault(key, value)
    return hp


def _add_run(plan: Plan, paper: Paper, options: dict, benchmarks: dict, spec: RunSpec) -> None:
    key = str(spec.path(plan.root))
    if key in plan.runs:
        return
    if spec.benchmark not in benchmarks:
        raise cfg.ConfigError(f"{paper.key}: run on unknown benchmark {spec.benchmark}; "
                              f"known: {', '.join(benchmarks)}")
    unknown = [k for k, _ in spec.overrides
               if k not in paper.option_defaults and k not in paper.variant_keys]
    if unknown:
        raise cfg.ConfigError(f"{paper.key}: unknown option override(s) {', '.join(unknown)}")
    try:
        hp = protocol_hp(paper, spec, options)
        catalog.check(spec.method, hp)
    except catalog.UndeclaredHyperparameter as exc:
        raise cfg.ConfigError(f"{paper.key}, run {spec.path(plan.root)}: {exc}") from None
    plan.benchmarks[spec.benchmark] = benchmarks[spec.benchmark]
    job = plan.runs[key] = RunJob(spec, paper.key, hp, benchmarks[spec.benchmark],
                                  paper.resources(spec))
    for needed in job.needs:  # e.g. the tuning grid a hyperparameter is chosen from
        _add_run(plan, paper, options, benchmarks, needed)
