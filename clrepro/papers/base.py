"""What a paper module declares: benchmarks, hyperparameters, artifacts and claims.

A paper module is the single source of truth for *what* to run. The Snakefile asks the
plan (built from these declarations) for runs and artifacts and never lists them itself.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml

from clrepro.analysis.status import (FAILS, HOLDS, INCONCLUSIVE, NOT_CHECKABLE,  # noqa: F401
                                     VERDICTS, Verdict)
from clrepro.data.definitions import BenchmarkDef
from clrepro.spec import RunSpec

if TYPE_CHECKING:
    import pandas as pd

SCALES = ("smoke", "quick", "full")


def lazy(ref: str) -> Callable:
    """'package.module:function', imported on first call. Paper modules declare their render
    and claim functions this way so that planning (every Snakemake start, every cluster
    job) does not import torch, pandas and matplotlib."""
    module, _, name = ref.partition(":")

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__qualname__ = call.__name__ = ref
    return call


def claim_in(package: str, cid: str, text: str) -> "Claim":
    """A claim whose check is `<package>.claims:<cid lowercased>`, imported when run."""
    return Claim(cid, text, lazy(f"{package}.claims:{cid.lower()}"))


def render_in(package: str, name: str) -> Callable:
    """A render function `<package>.artifacts:<name>`, imported when run."""
    return lazy(f"{package}.artifacts:{name}")


@dataclass
class Claim:
    """A checkable statement from the spec; `check` computes its verdict from run records."""

    id: str
    text: str
    check: Callable[["ArtifactContext"], Verdict]


@dataclass
class ArtifactContext:
    """What render and claim functions receive."""

    scale: str
    runs: Any  # clrepro.analysis.collect.RunSet
    options: dict[str, Any]
    paper: "Paper"
    # Methods from outside clrepro (config `methods:`, clrepro.yours) whose runs `runs` also
    # holds: a render draws each as one more row, column or line of the artifact, named by
    # its config key, with no paper number. Claim functions never get them (their context
    # holds the paper's runs only), so the verdicts compare the paper's methods alone.
    yours: tuple[str, ...] = ()

    @property
    def quick(self) -> bool:
        return self.scale != "full"


@dataclass(frozen=True)
class UserSlot:
    """Where a method from outside clrepro (config `methods:`) runs in an artifact: beside
    the runs of `reference` (same benchmarks, seeds, memory size, epochs; a method that keeps
    no memory gets none), with the reference's values for the keys it reads, compared with
    every baseline of the artifact on `metric` (clrepro.analysis.yours). The artifact's render
    draws her runs too (ArtifactContext.yours), so its render must place a method it does not
    list."""

    reference: str  # the baseline whose runs hers mirror
    setting: str | Callable[[str], str]  # catalog.SETTINGS, or benchmark -> setting
    trainer: str = "online"
    reference_overrides: tuple[tuple[str, Any], ...] = ()  # which of the reference's runs
    keep_overrides: tuple[str, ...] = ()  # overrides her runs keep (e.g. the backbone)
    pretrained_scales: tuple[str, ...] = ()  # scales whose networks start pretrained
    metric: str = "acc"  # what her comparison table pairs
    # a user's grid is selected like the paper's: benchmark -> the reference's tuning-run
    # spec (seed, epochs, overrides; validation split), None where the paper tunes nothing
    tuning: Callable[[RunSpec], RunSpec] | None = None

    def setting_of(self, benchmark: str) -> str:
        return self.setting(benchmark) if callable(self.setting) else self.setting


@dataclass
class Artifact:
    id: str
    title: str
    kind: str  # "table" | "figure"
    caption: str
    runs: Callable[..., list[RunSpec]]  # (scale, config seeds, options) -> the runs it reads
    render: Callable[[ArtifactContext], "Rendered"]
    claims: list[Claim] = field(default_factory=list)
    # a user's method: where it runs (UserSlot), or why this artifact has no place for one
    user: UserSlot | str = "declares no place for another method"
    tuning: bool = False  # a table of hyperparameter selection (built by `snakemake tune`)

    def __post_init__(self) -> None:
        if self.kind not in ("table", "figure"):
            raise ValueError(f"{self.id}: kind must be table or figure")


@dataclass
class Rendered:
    """A rendered artifact: our numbers (and the paper's beside them) plus a figure."""

    table: pd.DataFrame  # what goes into CSV/MD/TeX (figures: the plotted numbers)
    figure: Any = None  # matplotlib Figure for figure artifacts
    paper_table: pd.DataFrame | None = None  # the paper's numbers from the spec, if any
    notes: list[str] = field(default_factory=list)
    display: pd.DataFrame | None = None  # formatted version of `table` for MD/TeX/PDF


@dataclass
class Paper:
    key: str
    title: str
    citation: str
    protocol_version: int
    benchmarks: Callable[[str, dict[str, Any]], dict[str, BenchmarkDef]]
    hyperparams: Callable[[RunSpec, dict[str, Any]], dict[str, Any]]
    resources: Callable[[RunSpec], dict[str, Any]]
    artifacts: list[Artifact]
    option_defaults: dict[str, Any]
    variant_keys: tuple[str, ...] = ()  # run-level overrides besides options (e.g. a grid cell)
    config_keys: tuple[str, ...] = ()  # top-level config keys its hyperparameters read (options)
    options_file: Path | None = None  # the schema of its options (config key options.<key>)
    # how its BWT/FWT are normalised, given its options (clrepro.metrics.summary): the papers'
    # own (T-1) unless a paper's protocol says otherwise
    transfer_norm: Callable[[dict[str, Any]], str] = lambda options: "paper"

    def options_schema(self) -> dict[str, Any]:
        """{option: JSON schema} of this paper's options, read from its package."""
        return yaml.safe_load(self.options_file.read_text()) or {} if self.options_file else {}

    @classmethod
    def from_protocol(cls, key: str, title: str, citation: str, protocol: Any,
                      artifacts: list[Artifact]) -> "Paper":
        """A paper whose protocol module defines PROTOCOL_VERSION, OPTION_DEFAULTS,
        benchmarks(), hyperparams(), resources() and optionally VARIANT_KEYS, CONFIG_KEYS and
        transfer_norm();
        the schema of its options lies beside it in options.schema.yaml."""
        return cls(key, title, citation, protocol.PROTOCOL_VERSION, protocol.benchmarks,
                   protocol.hyperparams, protocol.resources, artifacts, protocol.OPTION_DEFAULTS,
                   getattr(protocol, "VARIANT_KEYS", ()), getattr(protocol, "CONFIG_KEYS", ()),
                   Path(protocol.__file__).with_name("options.schema.yaml"),
                   getattr(protocol, "transfer_norm", cls.transfer_norm))

    def artifact(self, artifact_id: str) -> Artifact:
        for a in self.artifacts:
            if a.id == artifact_id:
                return a
        raise KeyError(f"unknown artifact '{artifact_id}'; {self.key} has "
                       f"{', '.join(a.id for a in self.artifacts)}")
