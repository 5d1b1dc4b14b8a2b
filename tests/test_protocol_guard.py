"""Guard for refactors of the paper protocols (issue 24): every planned run's hyperparameter
dict and protocol hash stay byte-identical, so that no record is invalidated.

The fixture was written from the code before the protocols became tables
(`python tests/test_protocol_guard.py --write`, only when a protocol change is meant to
rerun runs). Per scale (smoke, quick, full; every paper, default options) each run folder
(benchmark/method/setting) keeps one hash over its seeds' hyperparameter dicts (serialised
in insertion order, as Snakemake's params and the records see them) and protocol hashes;
every single non-default option value (the option walk's samples) keeps one hash over its
whole plan at quick and full scale.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from clrepro import config, plan

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "protocol_hashes.json"
SCALES = ("smoke", "quick", "full")


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, default=str).encode()).hexdigest()[:12]


def _plan_entries(p: plan.Plan, fast: bool = False) -> dict[str, list]:
    """run folder -> [seed, paper, hp, protocol hash] per run; `fast`: the benchmark
    definition's digest once per benchmark in place of the protocol hash (the hash is a
    function of hp and that definition, and the definition is slow to serialise)."""
    folders: dict[str, list] = {}
    benchmarks = {name: _digest(b.to_dict()) for name, b in p.benchmarks.items()} if fast else {}
    for key, job in sorted(p.runs.items()):
        folder = str(Path(key).parent.relative_to(p.root / "runs"))
        tail = benchmarks[job.spec.benchmark] if fast else job.protocol_hash
        folders.setdefault(folder, []).append([job.spec.seed, job.paper, job.hp, tail])
    return folders


def default_hashes() -> dict[str, dict[str, str]]:
    return {scale: {f: _digest(v) for f, v in _plan_entries(plan.build({"scale": scale})).items()}
            for scale in SCALES}


def option_cases() -> list[tuple[str, str, object]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_option_walk import CASES  # every schema-valid value of every option

    return CASES


def option_hashes() -> dict[str, str]:
    out = {}
    for paper, key, value in option_cases():
        for scale in ("quick", "full"):
            name = f"{scale}:{paper}:{key}={json.dumps(value)}"
            try:
                p = plan.build({"scale": scale, "papers": [paper], "options": {paper: {key: value}}})
            except (config.ConfigError, ValueError):
                out[name] = "refused"
                continue
            out[name] = _digest(sorted(_plan_entries(p, fast=True).items()))
    return out


@pytest.fixture(scope="module")
def pinned():
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("scale", SCALES)
def test_every_run_keeps_its_hyperparameters_and_protocol(scale, pinned):
    now = default_hashes()[scale]
    then = pinned["default"][scale]
    assert sorted(now) == sorted(then), "the set of planned run folders changed"
    changed = sorted(f for f in now if now[f] != then[f])
    assert not changed, f"{len(changed)} run folders changed their protocol, e.g. {changed[:5]}"


def test_every_option_value_keeps_its_plan(pinned):
    now = option_hashes()
    then = pinned["options"]
    changed = sorted(k for k in then if now.get(k) != then[k])
    assert not changed, f"{len(changed)} option plans changed, e.g. {changed[:5]}"


if __name__ == "__main__" and "--write" in sys.argv:
    FIXTURE.write_text(json.dumps({"default": default_hashes(), "options": option_hashes()},
                                  indent=0, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE}")
