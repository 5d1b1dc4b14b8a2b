"""The hyperparameter keys every method declares, read from the method files' source.

A method class declares the keys it reads next to its code:

    hyperparameters = {"bld.lambda": "gradient-balancing factor (Alg. 2)", ...}
    optional_hyperparameters = {"gmed.log_edits": "keep unedited copies for Figs. 5-6"}

and inherits its bases' keys; the trainer it runs under adds its own (`TRAINER_KEYS` in the
trainer's module). The plan checks every run's hyperparameters against these declarations
before any job starts. The declarations are read with `ast`, not by importing the methods,
so that planning never imports torch (a Snakemake start, a dry run of 2,000 runs).
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
TRAINER_MODULES = {"online": PACKAGE.parent / "train.py", "phases": PACKAGE.parent / "phases.py"}
# what a paper module adds to every run: who made it, and the run spec's memory size
BOOKKEEPING = {"paper", "protocol_version", "method", "memory"}


class UndeclaredHyperparameter(ValueError):
    """A run's hyperparameters do not match what its method declares."""


@dataclass
class Declared:
    cls: str
    bases: list[str]
    name: str | None = None
    trainer: str | None = None
    required: dict[str, str] = field(default_factory=dict)
    optional: dict[str, str] = field(default_factory=dict)


def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


@functools.cache
def classes() -> dict[str, Declared]:
    """Every class defined in the methods package, by class name."""
    out: dict[str, Declared] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.parse(path.read_text(), str(path)).body:
            if not isinstance(node, ast.ClassDef):
                continue
            bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
            decl = Declared(node.name, bases)
            for stmt in node.body:
                if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                    target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
                    value = _literal(stmt.value) if stmt.value is not None else None
                    key = getattr(target, "id", None)
                    if key == "name":
                        decl.name = value
                    elif key == "trainer":
                        decl.trainer = value
                    elif key == "hyperparameters":
                        decl.required = dict(value or {})
                    elif key == "optional_hyperparameters":
                        decl.optional = dict(value or {})
            out[node.name] = decl
    return out


def _lineage(cls: str) -> list[Declared]:
    """The class and its bases (those defined in the package), most derived first."""
    seen, order, todo = set(), [], [cls]
    known = classes()
    while todo:
        c = todo.pop(0)
        if c in seen or c not in known:
            continue
        seen.add(c)
        order.append(known[c])
        todo += known[c].bases
    return order


@functools.cache
def trainer_keys(trainer: str) -> tuple[dict[str, str], dict[str, str]]:
    """(required, optional) keys of a trainer module: its TRAINER_KEYS / TRAINER_OPTIONAL."""
    required, optional = {}, {}
    tree = ast.parse(TRAINER_MODULES[trainer].read_text())
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if getattr(target, "id", None) == "TRAINER_KEYS":
                required = dict(_literal(node.value))
            elif getattr(target, "id", None) == "TRAINER_OPTIONAL":
                optional = dict(_literal(node.value))
    return required, optional


@functools.cache
def method_keys(method: str) -> tuple[dict[str, str], dict[str, str]]:
    """(required, optional) keys of a registered method name, its trainer's included."""
    cls = next((c for c in classes().values() if c.name == method), None)
    if cls is None:
        raise UndeclaredHyperparameter(f"unknown method '{method}'; known: "
                                       f"{', '.join(sorted(c.name for c in classes().values() if c.name))}")
    lineage = _lineage(cls.cls)
    trainer = next((c.trainer for c in lineage if c.trainer), "online")
    required, optional = trainer_keys(trainer)
    required, optional = dict(required), dict(optional)
    for c in reversed(lineage):  # bases first, so that a subclass can re-declare a key
        required.update(c.required)
        optional.update(c.optional)
    for key in required:
        optional.pop(key, None)
    return required, optional


def check(method: str, hp: dict) -> None:
    """Raise when a run's hyperparameters miss a key its method reads or carry one nobody
    reads (a typo), naming the method and the key."""
    required, optional = method_keys(method)
    missing = sorted(set(required) - set(hp))
    unknown = sorted(set(hp) - set(required) - set(optional) - BOOKKEEPING)
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown {', '.join(unknown)}")
    if problems:
        declared = ", ".join(sorted(set(required) | set(optional)))
        raise UndeclaredHyperparameter(f"method '{method}': hyperparameters {'; '.join(problems)} "
                                       f"(it reads: {declared})")
