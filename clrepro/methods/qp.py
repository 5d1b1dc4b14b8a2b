"""GEM's dual quadratic program (paper Eq. 11), solved with quadprog.

With the rows of M being the memory gradients g_k, the projection of g onto
{z : <z, g_k> >= 0 for all k} (Eq. 8) has the dual

    minimise_v  1/2 v^T (M M^T + eps I) v + (M g)^T v   subject to  v >= v_min,

and g~ = g + M^T v*. The paper writes G = -(g_1, ..., g_{t-1}) and g~ = G^T v + g, a sign
typo (spec D2): taken literally it does not enforce the constraints. The small ridge eps is
the official code's (spec D3). quadprog needs float64, reads only the upper triangle of the
quadratic term (so we symmetrise) and fails with "not positive definite" on rank-deficient
memories; we then retry with a ten times larger ridge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import quadprog


@dataclass
class QPResult:
    v: np.ndarray | None  # None when no attempt succeeded
    retries: int


def solve_gem_dual(gram: np.ndarray, mg: np.ndarray, v_min: float, eps: float,
                   max_retries: int = 6) -> QPResult:
    """gram = M M^T (K x K), mg = M g (K); returns v* >= v_min."""
    gram = np.asarray(gram, dtype=np.float64)
    mg = np.asarray(mg, dtype=np.float64)
    k = len(mg)
    sym = 0.5 * (gram + gram.T)
    eye = np.eye(k)
    lower = np.full(k, float(v_min))
    # a zero ridge cannot be raised tenfold: start retries from a scale-aware tiny one
    base = eps if eps > 0 else 1e-10 * max(float(np.trace(sym)) / k, 1.0)
    for attempt in range(max_retries + 1):
        ridge = (eps if attempt == 0 else base * 10.0 ** attempt)
        try:
            v = quadprog.solve_qp(sym + ridge * eye, -mg, eye, lower)[0]
        except ValueError as exc:
            if "positive definite" in str(exc):
                continue
            # "constraints are inconsistent": cannot happen for box constraints, but a
            # numerically broken problem must not kill the run.
            return QPResult(None, attempt)
        if np.all(np.isfinite(v)):
            return QPResult(v, attempt)
    return QPResult(None, max_retries)
