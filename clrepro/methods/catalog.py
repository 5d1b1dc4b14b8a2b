"""The hyperparameter keys every method declares, read from the method files' source.

A method class declares the keys it reads next to its code:

    hyperparameters = {"bld.lambda": "gradient-balancing factor (Alg. 2)",   # no default
                       "mine.weight": ("weight of my regulariser", 0.5)}      # (meaning, default)
    optional_hyperparameters = {"gmed.log_edits": "keep unedited copies for Figs. 5-6"}

and inherits its bases' keys; the trainer it runs under adds its own (`TRAINER_KEYS` in the
trainer's module). A paper's protocol gives each run its values; a key the paper does not
set takes the method's default (a method from outside clrepro runs under every paper this
way). Beside its keys a method declares what it fits (`COMPATIBILITY` below): a paper's
artifact that it does not fit is skipped with the reason.

The plan checks every run's hyperparameters against these declarations before any job
starts. The declarations are read with `ast`, not by importing the methods, so that
planning never imports torch (a Snakemake start, a dry run of 2,000 runs); a method from
outside clrepro is read the same way, from its module's source.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
# the online trainer's optional keys include those of the strategies papers ask it to use
TRAINER_MODULES = {"online": (PACKAGE.parent / "train.py", PACKAGE.parent / "papers" / "strategies.py"),
                   "phases": (PACKAGE.parent / "phases.py",)}
# what a paper module adds to every run: who made it, and the run spec's memory size
BOOKKEEPING = {"paper", "protocol_version", "method", "memory", "entry"}  # entry: a user method's class
# the settings an artifact can be (DESIGN: task-aware, class-incremental, task-free)
SETTINGS = ("task_aware", "class_incremental", "task_free")
# what a method may declare about what it fits, and the value a method that says nothing has
COMPATIBILITY = {
    "settings": SETTINGS,  # the settings it works in
    "needs_memory": False,  # it keeps examples: runs only where the protocol gives a memory
    "needs_task_ids": False,  # it reads task ids: not where the setting is task-free
    "needs_pretrained": False,  # it starts from a pretrained backbone
}
NO_DEFAULT = object()


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
    defaults: dict[str, Any] = field(default_factory=dict)
    compatibility: dict[str, Any] = field(default_factory=dict)  # what it declares itself


def _meanings(declared: dict, into: dict[str, Any]) -> dict[str, str]:
    """{key: meaning} of a declaration whose values are a meaning or (meaning, default);
    the defaults go to `into`."""
    out = {}
    for key, value in (declared or {}).items():
        if isinstance(value, tuple):
            out[key], into[key] = value
        else:
            out[key] = value
    return out


def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _declarations(path: Path) -> dict[str, Declared]:
    """The classes a module's source defines, by class name."""
    out: dict[str, Declared] = {}
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
                    decl.required = _meanings(value, decl.defaults)
                elif key == "optional_hyperparameters":
                    decl.optional = _meanings(value, decl.defaults)
                elif key in COMPATIBILITY:
                    decl.compatibility[key] = tuple(value) if key == "settings" else value
        out[node.name] = decl
    return out


@functools.cache
def classes() -> dict[str, Declared]:
    """Every class defined in the methods package, by class name (every module is found:
    a new method file needs no list entry)."""
    out: dict[str, Declared] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        out.update(_declarations(path))
    return out


# methods from outside clrepro (config `methods:`): name -> (entry, its class's declaration)
_EXTERNAL: dict[str, tuple[str, Declared]] = {}


class ExternalMethodError(ValueError):
    """A configured method's entry cannot be read."""


def module_path(module: str) -> Path:
    """The source file of an importable module, found without importing it."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise ExternalMethodError(f"module '{module}' cannot be found: {exc}") from None
    if found is None or not found.origin or not found.origin.endswith(".py"):
        raise ExternalMethodError(f"module '{module}' is not importable here (is its package "
                                  f"installed or on PYTHONPATH?)")
    return Path(found.origin)


def register_external(name: str, entry: str) -> Declared:
    """Make the class `entry` ('package.module:Class') known to the plan as method `name`,
    read from its source like the built-in methods (planning does not import it)."""
    module, _, cls = entry.partition(":")
    if not module or not cls:
        raise ExternalMethodError(f"entry '{entry}' is not 'package.module:Class'")
    found = _declarations(module_path(module))
    if cls not in found:
        raise ExternalMethodError(f"{module} defines no class {cls} (it has: "
                                  f"{', '.join(sorted(found)) or 'none'})")
    builtin = next((c for c in classes().values() if c.name == name), None)
    if builtin is not None:
        raise ExternalMethodError(f"'{name}' is the name of a built-in method ({builtin.cls})")
    decl = found[cls]
    decl.name = name  # the config's name is the run's method (its class may say otherwise)
    _EXTERNAL[name] = (entry, decl)
    for other in found.values():  # bases defined beside it
        _LOCAL.setdefault(other.cls, other)
    method_keys.cache_clear()
    return decl


_LOCAL: dict[str, Declared] = {}


def external_entry(name: str) -> str | None:
    return _EXTERNAL[name][0] if name in _EXTERNAL else None


def _declared(name: str) -> Declared | None:
    if name in _EXTERNAL:
        return _EXTERNAL[name][1]
    return next((c for c in classes().values() if c.name == name), None)


def _lineage(cls: str | Declared) -> list[Declared]:
    """The class and its bases (those defined in the package or beside a configured
    method), most derived first."""
    known = {**_LOCAL, **classes()}
    if isinstance(cls, Declared):
        known = {**known, cls.cls: cls}
        cls = cls.cls
    seen, order, todo = set(), [], [cls]
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
    """(required, optional) keys of a trainer's modules: their TRAINER_KEYS / TRAINER_OPTIONAL."""
    required, optional = {}, {}
    for module in TRAINER_MODULES[trainer]:
        for node in ast.parse(module.read_text()).body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                if getattr(target, "id", None) == "TRAINER_KEYS":
                    required.update(_literal(node.value))
                elif getattr(target, "id", None) == "TRAINER_OPTIONAL":
                    optional.update(_literal(node.value))
    return required, optional


def _known(method: str) -> Declared:
    cls = _declared(method)
    if cls is None:
        raise UndeclaredHyperparameter(f"unknown method '{method}'; known: "
                                       f"{', '.join(sorted(c.name for c in classes().values() if c.name))}")
    return cls


def trainer_of(method: str) -> str:
    return next((c.trainer for c in _lineage(_known(method)) if c.trainer), "online")


@functools.cache
def method_keys(method: str) -> tuple[dict[str, str], dict[str, str]]:
    """(required, optional) keys of a registered method name, its trainer's included."""
    lineage = _lineage(_known(method))
    trainer = next((c.trainer for c in lineage if c.trainer), "online")
    required, optional = trainer_keys(trainer)
    required, optional = dict(required), dict(optional)
    for c in reversed(lineage):  # bases first, so that a subclass can re-declare a key
        required.update(c.required)
        optional.update(c.optional)
    for key in required:
        optional.pop(key, None)
    return required, optional


def defaults(method: str) -> dict[str, Any]:
    """The defaults a method (and its bases) declare beside their keys."""
    out: dict[str, Any] = {}
    for c in reversed(_lineage(_known(method))):
        out.update(c.defaults)
    return out


def compatibility(method: str) -> dict[str, Any]:
    """What a method fits (COMPATIBILITY's keys, the nearest class's declaration winning),
    and its trainer."""
    out = dict(COMPATIBILITY)
    for c in reversed(_lineage(_known(method))):
        out.update(c.compatibility)
    return {**out, "trainer": trainer_of(method)}


def methods_that(need: str) -> set[str]:
    """The built-in methods whose compatibility declares `need` (e.g. needs_memory)."""
    return {c.name for c in classes().values() if c.name and compatibility(c.name)[need]}


def misfit(method: str, setting: str, trainer: str, memory: bool, pretrained: bool) -> str | None:
    """Why `method` cannot run in an artifact of this setting and trainer (None: it fits).
    `memory`: the protocol gives a replay memory; `pretrained`: a pretrained backbone."""
    have = compatibility(method)
    if have["trainer"] != trainer:
        return f"runs in the {have['trainer']} trainer; this artifact trains with the {trainer} trainer"
    if setting not in have["settings"]:
        return f"declares settings {', '.join(have['settings'])}; this artifact is {setting}"
    if have["needs_task_ids"] and setting == "task_free":
        return "needs task ids; this artifact is task-free"
    if have["needs_memory"] and not memory:
        return "needs a memory; this artifact's protocol gives none"
    if have["needs_pretrained"] and not pretrained:
        return "needs a pretrained backbone; this artifact trains from scratch"
    return None


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
