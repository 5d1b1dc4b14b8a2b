"""Which runs each DRL artifact reads (spec §3, §7): 36 track runs at full scale, 22 runs'
worth of configurations in the quick stand-ins; Figs. 1-2 with three seeds at both scales,
since they cost CPU-minutes and a verdict needs the seed-to-seed spread (issue 20)."""

from __future__ import annotations

from clrepro.papers.drl2020.protocol import (BACKBONES, PAIRS, STRATEGIES, TRACKS, memory,
                                             pair_bench, parse, split_bench, track_bench)
from clrepro.spec import RunSpec

METHOD = "replay_drl"
SEEDS = {"full": [0], "quick": [0], "smoke": [0]}  # spec: one run per configuration
# Figs. 1-2 cost CPU-minutes: three seeds at every scale, so their paired parts can decide
FIGURE_SEEDS = {"full": [0, 1, 2], "quick": [0, 1, 2], "smoke": [0]}
STRATEGY_TITLES = {"shuffle": "Shuffle", "er": "ER", "ber": "BER"}
BACKBONE_TITLES = {"resnet50": "ResNet-50", "resnest50d": "ResNeSt-50", None: "small CNN"}


def _seeds(table: dict, scale: str, chosen: list[int] | None) -> list[int]:
    return list(chosen) if chosen else table[scale]


def fig1(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return [RunSpec(pair_bench(p, scale), METHOD, s, 0, 1, (("replay", "none"), ("drl", False)))
            for p in PAIRS for s in _seeds(FIGURE_SEEDS, scale, chosen)]


def fig2(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return [RunSpec(split_bench(scale), METHOD, s, memory("split", scale), 1,
                    (("replay", "ber"), ("drl", drl)))
            for drl in (False, True) for s in _seeds(FIGURE_SEEDS, scale, chosen)]


def track_runs(track: str, scale: str, chosen: list[int] | None) -> list[RunSpec]:
    backbones = BACKBONES if scale == "full" else (None,)
    out = []
    for backbone in backbones:
        for strategy in STRATEGIES:
            for drl in (False, True):
                overrides = [("replay", strategy), ("drl", drl)]
                if backbone:
                    overrides.append(("backbone", backbone))
                out += [RunSpec(track_bench(track, scale), METHOD, s, memory(track, scale), 1,
                                tuple(overrides)) for s in _seeds(SEEDS, scale, chosen)]
    return out


def table1(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return track_runs("ni", scale, chosen)


def table2(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return track_runs("mtnc", scale, chosen)


def table3(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return track_runs("nic", scale, chosen)


def all_tracks(scale: str, chosen: list[int] | None = None, options: dict | None = None) -> list[RunSpec]:
    return [r for t in TRACKS for r in track_runs(t, scale, chosen)]


def configuration(spec: RunSpec) -> tuple[str | None, str, bool]:
    """(backbone, strategy, drl) of a run."""
    o = dict(spec.overrides)
    return o.get("backbone"), o["replay"], bool(o["drl"])


def part_of(spec: RunSpec) -> str:
    return parse(spec.benchmark)[0]
