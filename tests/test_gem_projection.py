"""GEM's projected gradient (Eqs. 8-11) against a brute-force solve."""

import itertools

import numpy as np
import pytest
import torch

from clrepro.methods.gem import project_gradient
from clrepro.methods.qp import solve_gem_dual


def brute_force_projection(g: np.ndarray, m: np.ndarray) -> np.ndarray:
    """argmin ||z - g|| s.t. m z >= 0, by enumerating active sets: for each subset S the
    candidate is g projected onto {z : m_S z = 0}; keep the feasible one closest to g."""
    best, best_dist = None, np.inf
    for size in range(len(m) + 1):
        for active in itertools.combinations(range(len(m)), size):
            z = g.copy()
            if active:
                ms = m[list(active)]
                z = g - ms.T @ np.linalg.lstsq(ms @ ms.T, ms @ g, rcond=None)[0]
            if np.all(m @ z >= -1e-9) and np.linalg.norm(z - g) < best_dist:
                best, best_dist = z, np.linalg.norm(z - g)
    return best


@pytest.mark.parametrize("seed", range(8))
def test_projection_satisfies_constraints_and_is_closest(seed):
    rng = np.random.default_rng(seed)
    p, k = 6, 3
    mem = rng.normal(size=(k, p))
    g = -mem.sum(0) + 0.3 * rng.normal(size=p)  # conflicts with the memories
    assert np.any(mem @ g < 0)
    projected, retries = project_gradient(torch.tensor(g), torch.tensor(mem), margin=0.0,
                                          margin_mode="additive", eps=1e-12)
    z = projected.numpy()
    assert np.all(mem @ z >= -1e-6), "a constraint <g~, g_k> >= 0 is violated"
    np.testing.assert_allclose(z, brute_force_projection(g, mem), atol=1e-5)


def test_margin_modes():
    rng = np.random.default_rng(0)
    mem = rng.normal(size=(2, 5))
    g = -mem.sum(0)
    gram, mg = mem @ mem.T, mem @ g
    v0 = solve_gem_dual(gram, mg, v_min=0.0, eps=1e-3).v
    v_lb = solve_gem_dual(gram, mg, v_min=0.5, eps=1e-3).v
    assert np.all(v_lb >= 0.5 - 1e-9)
    add, _ = project_gradient(torch.tensor(g), torch.tensor(mem), 0.5, "additive", 1e-3)
    np.testing.assert_allclose(add.numpy(), g + mem.T @ (v0 + 0.5), atol=1e-8)
    low, _ = project_gradient(torch.tensor(g), torch.tensor(mem), 0.5, "lower_bound", 1e-3)
    np.testing.assert_allclose(low.numpy(), g + mem.T @ v_lb, atol=1e-8)


def test_rank_deficient_memories_are_handled():
    """Duplicate task gradients make M M^T singular; the ridge (and retries) keep it solvable."""
    row = np.array([1.0, -2.0, 0.5])
    mem = np.stack([row, row, 2 * row])
    g = -row
    projected, retries = project_gradient(torch.tensor(g), torch.tensor(mem), 0.0, "additive", 0.0)
    assert projected is not None
    assert retries >= 1  # eps = 0 is not positive definite: the ridge was raised
    assert np.all(mem @ projected.numpy() >= -1e-6)


def test_unsolvable_qp_reports_failure():
    bad = np.array([[np.nan]])
    assert solve_gem_dual(bad, np.array([1.0]), 0.0, 1e-3).v is None
