"""Which runs each GEM artifact reads (spec §2 artifact index, §3)."""

from __future__ import annotations

from clrepro.papers.gem2017.protocol import (CIFAR_METHODS, FULL_VARIANTS, MNIST_METHODS, SCALE,
                                             TABLE3_METHODS)
from clrepro.methods import catalog
from clrepro.spec import RunSpec

FAMILIES = ("perm", "rot", "cifar")
FAMILY_TITLES = {"perm": "permutations", "rot": "rotations", "cifar": "CIFAR-100"}


def n_tasks(scale: str, fam: str) -> int:
    if scale == "full":
        return 20
    if scale == "smoke":
        return 2
    return 5 if fam == "cifar" else 10


def bench(scale: str, fam: str) -> str:
    return SCALE[scale][fam]


def memory(scale: str, fam: str, method: str) -> int:
    """Total memory slots: GEM m per task x T; another method that keeps examples (its
    declaration says so: iCaRL) a shared total; others none."""
    if method == "gem":
        return SCALE[scale]["gem_per_task"][fam] * n_tasks(scale, fam)
    if method in catalog.methods_that("needs_memory"):
        return SCALE[scale]["icarl_total"]
    return 0


def variants(scale: str, method: str) -> list[tuple]:
    return [()] + (FULL_VARIANTS if scale == "full" and method == "gem" else [])


def seeds(scale: str, chosen: list[int] | None) -> list[int]:
    """The config's seeds for this paper, or the scale's own."""
    return list(chosen) if chosen else SCALE[scale]["seeds"]


def methods(fam: str) -> list[str]:
    return CIFAR_METHODS if fam == "cifar" else MNIST_METHODS


def fig1a(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return [RunSpec(bench(scale, fam), m, seed, memory(scale, fam, m), 1, v)
            for fam in FAMILIES for m in methods(fam) for v in variants(scale, m)
            for seed in seeds(scale, chosen)]


def table1(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return [r for r in fig1a(scale, chosen) if not r.benchmark.startswith(bench(scale, "cifar"))
            and not r.overrides]


def table2_memory(scale: str, method: str, size: int) -> int:
    """Table 2 sizes are totals; GEM keeps size // T slots per task."""
    t = n_tasks(scale, "cifar")
    return (size // t) * t if method == "gem" else size


def table2(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    out = []
    for size in SCALE[scale]["table2_sizes"]:
        for m in ("gem", "icarl"):
            out += [RunSpec(bench(scale, "cifar"), m, seed, table2_memory(scale, m, size), 1, v)
                    for v in variants(scale, m) for seed in seeds(scale, chosen)]
    return out


def table3(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return [RunSpec(bench(scale, "rot"), m, seed, memory(scale, "rot", m), e, v)
            for e in SCALE[scale]["epochs"] for m in TABLE3_METHODS for v in variants(scale, m)
            for seed in seeds(scale, chosen)]
