"""Continual-learning methods, one file per method family.

`from clrepro.methods import METHODS, get_method, Method, Context` imports every module of
this package (registering its methods: a new method file is found, no list to edit) on
first use; importing a submodule alone, such as the torch-free `clrepro.methods.catalog`
the plan uses, does not.
"""

import importlib
import pkgutil

_EXPORTS = ("METHODS", "Context", "Method", "get_method", "register")


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'clrepro.methods' has no attribute {name!r}")
    for module in _modules():
        importlib.import_module(f"clrepro.methods.{module}")
    return getattr(importlib.import_module("clrepro.methods.base"), name)
