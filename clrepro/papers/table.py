"""Per-method value tables of a paper's protocol (issue 24: tables, not `elif` chains).

A paper's protocol gives each method the values of the keys it reads:

    METHOD_VALUES = {
        "gem": {"gem.margin": Option("gem.margin"), ...},   # from the paper's options
        "ewc": {"ewc.strength": 1000.0},                      # a value
        "icarl": {"lr": lambda ctx: ctx["lr"] * 2},           # computed from the run's context
    }

`values(table, method, ctx)` resolves one method's row in its order (a run's hyperparameter
dict keeps its key order: Snakemake's params and the records see it). A key the row does
not give is the method's declared default: a method from outside clrepro runs with the
row of its paper's reference method, its own defaults and the user's values (clrepro.plan).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """The value of one of the paper's options (a run's override of it first)."""

    key: str


OMIT = object()  # a computed value that leaves its key out of this run


def resolve(value: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(value, Option):
        return ctx["options"][value.key]
    if callable(value):
        return value(ctx)
    return value


def values(table: dict[str, dict[str, Any]], method: str, ctx: dict[str, Any]) -> dict[str, Any]:
    """One method's row of `table`, resolved; {} for a method the table has no row for.
    A row may name another row under "_as" (its values first, then its own)."""
    row = dict(table.get(method, {}))
    base = row.pop("_as", None)
    out = values(table, base, ctx) if base else {}
    for key, value in row.items():
        value = resolve(value, ctx)
        if value is not OMIT:
            out[key] = value
    return out

