"""Hyperparameters chosen by tuning runs (e.g. GMED Random Edit's stride alpha_r, §4.7).

A paper module writes such a value as `tuned_by(specs)`: the grid's runs. The plan makes the
run depend on them (the workflow trains them first), and the training job replaces the
marker by the value of the best grid run — the highest mean validation accuracy over the
tuning tasks after the last of them — and records where it came from. Planning stays
torch-free: only JSON records are read here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clrepro.spec import RunSpec

MARKER = "tuned_by"


def tuned_by(specs: list[RunSpec]) -> dict[str, Any]:
    return {MARKER: [s.to_dict() for s in specs]}


def is_tuned(value: Any) -> bool:
    return isinstance(value, dict) and MARKER in value


def needed_runs(hp: dict[str, Any]) -> list[RunSpec]:
    """The tuning runs whose records this run's hyperparameters are chosen from."""
    return [RunSpec.from_dict(d) for v in hp.values() if is_tuned(v) for d in v[MARKER]]


def resolve(hp: dict[str, Any], root: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(hp with every tuned value filled in, how each was chosen)."""
    hp, chosen = dict(hp), {}
    for key, value in hp.items():
        if not is_tuned(value):
            continue
        scores = []
        for d in value[MARKER]:
            path = RunSpec.from_dict(d).path(root)
            if not path.is_file():
                raise FileNotFoundError(f"{key} is tuned by {path}, which does not exist yet: run "
                                        f"the tuning runs first (snakemake tune)")
            record = json.loads(path.read_text())
            if record["status"] != "ok":
                continue
            last = record["R"][-1]
            scores.append((sum(last) / len(last), record["hp"][key], str(path)))
        if not scores:
            raise RuntimeError(f"every tuning run of {key} failed; cannot choose a value")
        score, best, path = max(scores, key=lambda s: s[0])
        hp[key] = best
        chosen[key] = {"value": best, "from": path, "val_acc": score,
                       "grid": {str(v): sc for sc, v, _ in scores}}
    return hp, chosen
