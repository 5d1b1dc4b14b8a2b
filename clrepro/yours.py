"""Methods from outside clrepro, named in the config (issue 24), planned beside the baselines.

    methods:
      mine:
        entry: mypkg.mymethod:MyMethod      # any importable class on the Method contract
        papers: all                          # or [gmed2021, ...], or {gmed2021: [gmed.table2]}
        hyperparameters: {lr: 0.05, mine.weight: 0.5, mine.beta: {grid: [0.1, 1.0]}}
        per_paper: {gmed2021: {lr: 0.1}}     # optional overrides

In each artifact that declares a place for another method (`Artifact.user`, a UserSlot)
and that it fits (its declared trainer, settings, memory, task ids, backbone), the method
runs beside the slot's reference baseline: the same benchmarks, seeds, memory size (none
when it keeps no memory) and epochs, with the reference's values for the keys it reads
(learning rate, batch size, model, evaluation...), its own defaults for the rest, then the
user's values. A grid is selected by the paper's own rule on validation data (the slot's
tuning run, one per value, seed 0); where a paper selects nothing, a grid is an error.

Everything is checked while planning: the entry's source is read (never imported), a key its
class does not declare is named, an artifact asked for by name that it does not fit is an
error with the reason; with `papers: all` such artifacts are listed with their reason.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from clrepro import config as cfg
from clrepro.methods import catalog
from clrepro.spec import RunSpec
from clrepro.tuning import tuned_by

if TYPE_CHECKING:
    from clrepro.papers.base import Artifact, Paper, UserSlot
    from clrepro.plan import Plan

GRID = "grid"


@dataclass(frozen=True)
class UserRun:
    """What a run of a user's method is made from."""

    name: str
    paper: str
    reference: RunSpec  # the baseline run whose protocol it takes


def register(config: dict[str, Any]) -> None:
    """Read every configured method's class from its source (errors name the method)."""
    for name, conf in config["methods"].items():
        try:
            catalog.register_external(name, conf["entry"])
        except catalog.ExternalMethodError as exc:
            raise cfg.ConfigError(f"methods.{name}.entry: {exc}") from None
        declared = set().union(*catalog.method_keys(name))
        for where, values in [("hyperparameters", conf["hyperparameters"]),
                              *[(f"per_paper.{p}", v) for p, v in conf["per_paper"].items()]]:
            unknown = sorted(set(values) - declared)
            if unknown:
                raise cfg.ConfigError(
                    f"methods.{name}.{where}: {', '.join(unknown)}: not a key of {conf['entry']} "
                    f"(it reads: {', '.join(sorted(declared))})")
            for key, value in values.items():
                if isinstance(value, dict) and set(value) == {GRID} and not value[GRID]:
                    raise cfg.ConfigError(f"methods.{name}.{where}.{key}: an empty grid")


def wanted(conf: dict[str, Any], papers: list[str], known: dict[str, list[str]]) -> dict[str, set | None]:
    """paper -> the artifacts the user named (None: every one), checked against the plan's
    papers and their artifacts."""
    chosen = conf["papers"]
    if chosen == "all":
        return {p: None for p in papers}
    if isinstance(chosen, list):
        chosen = {p: None for p in chosen}
    for paper, artifacts in chosen.items():
        if paper not in known:
            raise cfg.ConfigError(f"papers: unknown paper '{paper}'; planned: {', '.join(papers)}")
        unknown = sorted(set(artifacts or ()) - set(known[paper]))
        if unknown:
            raise cfg.ConfigError(f"papers.{paper}: unknown artifact(s) {', '.join(unknown)}; "
                                  f"{paper} has {', '.join(known[paper])}")
    return {p: (set(a) if a else None) for p, a in chosen.items()}


def _is_reference(spec: RunSpec, slot: "UserSlot") -> bool:
    own = {k: v for k, v in spec.overrides if k not in slot.keep_overrides}
    return spec.method == slot.reference and own == dict(slot.reference_overrides)


def plan_artifact(plan: "Plan", paper: "Paper", options: dict, artifact: "Artifact",
                  specs: list[RunSpec], name: str, conf: dict, named: bool,
                  add_run) -> list[RunSpec]:
    """The runs of method `name` in one artifact (empty, with the reason kept in
    plan.skipped, where it does not fit). `named`: the user asked for this artifact by name,
    so a misfit is an error."""
    slot = artifact.user
    reason = slot if isinstance(slot, str) else None
    refs = [s for s in specs if _is_reference(s, slot)] if reason is None else []
    if reason is None and not refs:
        reason = f"no run of its reference {slot.reference} at scale {plan.scale}"
    fitting = []
    if reason is None:
        pretrained = plan.scale in slot.pretrained_scales
        misfits = {}
        for ref in refs:
            why = catalog.misfit(name, slot.setting_of(ref.benchmark), slot.trainer,
                                 ref.memory > 0, pretrained)
            if why:
                misfits[ref.benchmark] = why
            else:
                fitting.append(ref)
        if not fitting:
            reason = "; ".join(sorted(set(misfits.values())))
        for benchmark, why in sorted(misfits.items()):
            if fitting:  # a part of the artifact only (DRL's three tracks)
                plan.skipped.append({"method": name, "artifact": artifact.id,
                                     "where": benchmark, "reason": why})
    if reason is not None:
        if named:
            raise cfg.ConfigError(f"methods.{name}: {artifact.id} was asked for, but {name} "
                                  f"does not fit it: {reason}")
        plan.skipped.append({"method": name, "artifact": artifact.id, "where": "",
                             "reason": reason})
        return []
    needs_memory = catalog.compatibility(name)["needs_memory"]
    out = []
    for ref in fitting:
        kept = tuple((k, v) for k, v in ref.overrides if k in slot.keep_overrides)
        spec = RunSpec(ref.benchmark, name, ref.seed, ref.memory if needs_memory else 0,
                       ref.epochs, kept)
        add_run(paper, options, spec, UserRun(name, paper.key, ref), conf, slot)
        out.append(spec)
    return list(dict.fromkeys(out))


def hyperparams(paper: "Paper", options: dict, spec: RunSpec, made: UserRun, conf: dict,
                slot: "UserSlot") -> tuple[dict[str, Any], list[tuple[RunSpec, UserRun]]]:
    """(a user run's hyperparameters, the tuning runs a grid of its values needs). The
    reference's protocol for the keys the method reads, its defaults, the user's values."""
    cell = dict(spec.overrides)  # a tuning run carries its grid cell
    ref = made.reference
    if cell.get("tune"):
        ref = replace(slot.tuning(ref), seed=spec.seed)
    base = paper.hyperparams(ref, options)
    required, optional = catalog.method_keys(made.name)
    declared = set(required) | set(optional)
    hp = {k: v for k, v in base.items() if k in declared or k in catalog.BOOKKEEPING}
    hp["method"], hp["memory"] = made.name, spec.memory
    for key, value in catalog.defaults(made.name).items():
        hp.setdefault(key, value)
    needs: list[tuple[RunSpec, UserRun]] = []
    values = {**conf["hyperparameters"], **conf["per_paper"].get(paper.key, {})}
    grids = {k: v[GRID] for k, v in values.items() if isinstance(v, dict) and set(v) == {GRID}}
    hp.update({k: v for k, v in values.items() if k not in grids})
    if grids and cell.get("tune"):  # a tuning run: its cell's values
        hp.update({k: cell[k] for k in grids})
    elif grids and slot.tuning is None:
        raise cfg.ConfigError(
            f"methods.{made.name}: a grid for {', '.join(grids)}, but {paper.key} selects "
            f"nothing on a validation split; give one value under "
            f"methods.{made.name}.per_paper.{paper.key}")
    elif grids:  # every cell of the grid, one tuning run each; the paper's rule picks one
        tuning = slot.tuning(spec)
        cells = [RunSpec(tuning.benchmark, made.name, 0, spec.memory, tuning.epochs,
                         (*zip(grids, combo), ("tune", True)))
                 for combo in itertools.product(*grids.values())]
        hp.update({k: tuned_by(cells) for k in grids})
        needs += [(c, made) for c in cells]
    hp["entry"] = conf["entry"]
    try:
        catalog.check(made.name, hp)
    except catalog.UndeclaredHyperparameter as exc:
        raise cfg.ConfigError(f"{paper.key}, run {spec.path()}: {exc}") from None
    return hp, needs
