"""Continual-learning methods. Importing this package registers all of them."""

from clrepro.methods import (agem, baselines, bgd, ewc, gem, gmed, gss, hal,  # noqa: F401
                             icarl, replay)  # (registration)
from clrepro.methods.base import METHODS, Context, Method, get_method  # noqa: F401
