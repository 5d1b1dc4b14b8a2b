"""Continual-learning methods. Importing this package registers all of them."""

from clrepro.methods import baselines, ewc, gem, icarl  # noqa: F401  (registration)
from clrepro.methods.base import METHODS, Context, Method, get_method  # noqa: F401
