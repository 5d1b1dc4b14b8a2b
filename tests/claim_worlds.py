"""Hand-built run sets for testing claim functions: records written from chosen metrics.

A "world" maps a run spec to the metrics its record should show (or None: the run is
missing). `records_for` writes one JSON record per planned run of an artifact, with an
accuracy matrix R built so that ACC, BWT, FWT and the final accuracy are exactly the chosen
values, plus a small per-seed offset so that paired tests have a spread.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, Callable

import torch

from clrepro import plan as planning
from clrepro.analysis.collect import RunSet
from clrepro.papers import get_paper
from clrepro.papers.base import ArtifactContext
from clrepro.results import RECORD_VERSION
from clrepro.spec import RunSpec

T = 4  # tasks in every hand-built R (the claims read metrics, not the task count)
BASELINE = 0.1  # random-initialisation accuracy b of every task


def jitter(spec: RunSpec, scale: float) -> float:
    """A deterministic per-(method, seed) offset in [-scale, scale]: runs of one method vary
    across seeds, and differently from other methods."""
    h = (zlib.crc32(spec.label.encode()) % 997) / 997
    return scale * (((spec.seed * 0.618 + h) % 1.0) * 2 - 1)


def matrix(acc: float, bwt: float = 0.0, fwt: float = 0.0) -> list[list[float]]:
    r = [[BASELINE] * T for _ in range(T)]
    for i in range(T - 1):
        r[i][i] = acc - bwt
    for i in range(1, T):
        r[i - 1][i] = BASELINE + fwt
    r[T - 1] = [acc] * T
    return r


def record(spec: RunSpec, paper: str, version: int, m: dict[str, Any]) -> dict[str, Any]:
    r = m.get("R") or matrix(m.get("acc", 0.5), m.get("bwt", 0.0), m.get("fwt", 0.0))
    return {
        "record_version": RECORD_VERSION, "run": spec.to_dict(), "paper": paper,
        "status": m.get("status", "ok"),
        "hp": {"protocol_version": version, **m.get("hp", {})},
        "R": r, "b": [BASELINE] * len(r[0]), "test_sizes": [100] * len(r[0]), "metrics": {},
        "timings": {"train_s": m.get("train_s", 1.0), "eval_s": 0.1},
        "curve": m.get("curve", {"progress": [], "batch": [], "acc": []}),
        "counters": m.get("counters", {}), "provenance": {"commit": "test", "machine": {}},
        **{k: m[k] for k in ("benchmark", "memory_bytes", "details") if k in m},
    }


def context(tmp: Path, paper_key: str, artifact_id: str, world: Callable[[RunSpec], dict | None],
            scale: str = "quick", seeds: list[int] | None = None) -> ArtifactContext:
    """Write the artifact's runs as the world says and return the claim functions' context."""
    p = planning.build({"scale": scale, "papers": [paper_key], "results": str(tmp),
                        "seeds": {paper_key: seeds or [0, 1, 2, 3, 4]}})
    paper = get_paper(paper_key)
    specs = p.artifacts[artifact_id].runs
    for spec in specs:
        metrics = world(spec)
        if metrics is None:
            continue
        path = spec.path(tmp)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record(spec, paper_key, paper.protocol_version, metrics)))
        if "artifacts" in metrics:  # tensors a logging run saves beside its record
            torch.save(metrics["artifacts"], path.with_suffix(".artifacts.pt"))
    runs = RunSet(specs, tmp, paper.protocol_version)
    return ArtifactContext(scale, runs, p.options[paper_key], paper)


def check(tmp: Path, paper_key: str, claim_id: str, world, **kw):
    """The verdict of one claim in a world (the claim's first artifact supplies the runs)."""
    paper = get_paper(paper_key)
    artifact = next(a for a in paper.artifacts if any(c.id == claim_id for c in a.claims))
    claim = next(c for c in artifact.claims if c.id == claim_id)
    return claim.check(context(tmp, paper_key, artifact.id, world, **kw))
