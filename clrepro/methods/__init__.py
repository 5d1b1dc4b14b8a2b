"""Continual-learning methods, one file per method family.

`from clrepro.methods import METHODS, get_method, Method, Context` imports every method
module (registering them) on first use; importing a submodule alone, such as the torch-free
`clrepro.methods.catalog` the plan uses, does not.
"""

import importlib

_FAMILIES = ("agem", "baselines", "bgd", "bic", "bld", "cil", "drl", "ewc", "gem", "gmed", "gss", "hal",
             "icarl", "lucir", "lwf", "replay", "views")
_EXPORTS = ("METHODS", "Context", "Method", "get_method", "register")


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'clrepro.methods' has no attribute {name!r}")
    for family in _FAMILIES:
        importlib.import_module(f"clrepro.methods.{family}")
    return getattr(importlib.import_module("clrepro.methods.base"), name)
