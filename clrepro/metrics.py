"""Metrics computed from an accuracy matrix; no method touches these (FACIL's rule).

R[i, j] = test accuracy on task j right after the last training example of task i;
b[j] = accuracy on task j at initialisation (same initial weights). GEM Eqs. 2-4.
"""

from __future__ import annotations

import numpy as np

TRANSFER_NORMS = ("paper", "code")


def _norm(t: int, transfer_norm: str) -> float:
    """BWT/FWT denominators: the paper divides by T-1; GEM's code averages over all T tasks
    including a zero term, i.e. scales by (T-1)/T (spec D4)."""
    if transfer_norm not in TRANSFER_NORMS:
        raise ValueError(f"metrics.transfer_norm must be one of {TRANSFER_NORMS}")
    return float(t - 1 if transfer_norm == "paper" else t)


def acc(r: np.ndarray) -> float:
    """ACC = 1/T sum_i R[T, i] (Eq. 2)."""
    r = np.asarray(r, dtype=float)
    return float(r[-1].mean())


def _square(r: np.ndarray) -> bool:
    """R has a row per task (runs that evaluate only after the last task have one row)."""
    return r.ndim == 2 and r.shape[0] == r.shape[1]


def bwt(r: np.ndarray, transfer_norm: str = "paper") -> float:
    """BWT = 1/(T-1) sum_{i<T} (R[T, i] - R[i, i]) (Eq. 3)."""
    r = np.asarray(r, dtype=float)
    t = len(r)
    if t < 2 or not _square(r):
        return float("nan")
    return float(sum(r[-1, i] - r[i, i] for i in range(t - 1)) / _norm(t, transfer_norm))


def fwt(r: np.ndarray, b: np.ndarray, transfer_norm: str = "paper") -> float:
    """FWT = 1/(T-1) sum_{i>=2} (R[i-1, i] - b[i]) (Eq. 4), against the random-init baseline b."""
    r = np.asarray(r, dtype=float)
    b = np.asarray(b, dtype=float)
    t = len(r)
    if t < 2 or not _square(r):
        return float("nan")
    return float(sum(r[i - 1, i] - b[i] for i in range(1, t)) / _norm(t, transfer_norm))


def learning_accuracy(r: np.ndarray) -> float:
    """Mean accuracy on each task right after learning it, 1/T sum_i R[i, i]: how well the
    learner fits the task at hand (the regime a stand-in must show before forgetting claims)."""
    r = np.asarray(r, dtype=float)
    return float(np.mean(np.diag(r))) if _square(r) else float("nan")


def weighted_final_accuracy(r: np.ndarray, test_sizes: list[int]) -> float:
    """GMED's final accuracy: correct / total over the union of all tasks' test sets."""
    r = np.asarray(r, dtype=float)
    n = np.asarray(test_sizes, dtype=float)
    return float((r[-1] * n).sum() / n.sum())


def summary(r, b, test_sizes, transfer_norm: str = "paper") -> dict[str, float]:
    square = _square(np.asarray(r, dtype=float))
    return {"acc": acc(r), "bwt": bwt(r, transfer_norm), "fwt": fwt(r, b, transfer_norm),
            "learning_acc": learning_accuracy(r),
            "final_acc_weighted": weighted_final_accuracy(r, test_sizes),
            "avg_inc_acc": average_incremental_accuracy(r, test_sizes) if square else float("nan"),
            "forgetting": forgetting_rate(r) if square else float("nan")}


def incremental_accuracies(r: np.ndarray, test_sizes: list[int]) -> list[float]:
    """A_i: accuracy of the model after phase i on the test data of every class seen up to
    phase i (Mnemonics §5), i.e. R[i, :i+1] weighted by the phases' test sizes."""
    r = np.asarray(r, dtype=float)
    n = np.asarray(test_sizes, dtype=float)
    return [float((r[i, :i + 1] * n[:i + 1]).sum() / n[:i + 1].sum()) for i in range(len(r))]


def average_incremental_accuracy(r: np.ndarray, test_sizes: list[int]) -> float:
    """A-bar = 1/(N+1) sum_{i=0..N} A_i, phase 0 included (Mnemonics spec §4.6)."""
    return float(np.mean(incremental_accuracies(r, test_sizes)))


def forgetting_rate(r: np.ndarray) -> float:
    """F = A^Z_0 - A^Z_N: accuracy on the phase-0 classes after phase 0 minus after the last
    phase (Mnemonics spec D4: the text's definition; lower is better)."""
    r = np.asarray(r, dtype=float)
    return float(r[0, 0] - r[-1, 0])
