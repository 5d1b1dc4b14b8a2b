"""Significance as the GMED paper reports it: one-tailed paired t-tests over seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

STAR_LEVELS = ((1e-3, "**"), (0.05, "*"))  # GMED Table 2: * p < 0.05, ** p < 1e-3


@dataclass
class PairedTest:
    n: int
    mean_diff: float
    t: float
    p: float

    @property
    def stars(self) -> str:
        return stars(self.p)


def stars(p: float) -> str:
    if p is None or math.isnan(p):
        return ""
    for level, mark in STAR_LEVELS:
        if p < level:
            return mark
    return ""


def paired_greater(treated: dict[int, float], control: dict[int, float]) -> PairedTest:
    """H1: mean(treated) > mean(control), pairing runs that share a seed (same stream order
    and initialisation). Seeds present on one side only are left out; fewer than 2 pairs
    give p = nan."""
    seeds = sorted(set(treated) & set(control))
    a = np.array([treated[s] for s in seeds], dtype=float)
    b = np.array([control[s] for s in seeds], dtype=float)
    if len(seeds) < 2:
        return PairedTest(len(seeds), float(np.mean(a - b)) if seeds else float("nan"),
                          float("nan"), float("nan"))
    diff = a - b
    if np.all(diff == diff[0]):  # zero variance: the t statistic is undefined
        p = 0.0 if diff[0] > 0 else 1.0
        return PairedTest(len(seeds), float(diff[0]), float("inf") if diff[0] > 0 else float("nan"), p)
    res = stats.ttest_rel(a, b, alternative="greater")
    return PairedTest(len(seeds), float(diff.mean()), float(res.statistic), float(res.pvalue))
