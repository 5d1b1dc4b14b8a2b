"""Paper modules: each declares benchmarks, hyperparameters, artifacts and claims."""

from __future__ import annotations

from clrepro.papers.base import Paper


def registry() -> dict[str, Paper]:
    from clrepro.papers.bld2020 import PAPER as BLD2020
    from clrepro.papers.drl2020 import PAPER as DRL2020
    from clrepro.papers.gem2017 import PAPER as GEM2017
    from clrepro.papers.gmed2021 import PAPER as GMED2021
    from clrepro.papers.mnemonics2020 import PAPER as MNEMONICS2020

    return {p.key: p for p in (GEM2017, GMED2021, BLD2020, MNEMONICS2020, DRL2020)}


def get_paper(key: str) -> Paper:
    papers = registry()
    if key not in papers:
        raise KeyError(f"unknown paper '{key}'; known: {', '.join(papers)}")
    return papers[key]
