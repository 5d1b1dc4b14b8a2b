"""Reproduction as a regression test: compare the current verdicts' evidence with committed one.

Each paper package commits what its quick preset gives (`verdicts.quick.json`): per claim its
status, whether it is fragile, and the evidence of every comparison (n, effect, 95 % CI, p,
stability). `clrepro verify` (and `snakemake verify`) reads results/claims/*.json and judges
each claim:

- **same**: the status is the committed one and no effect moved beyond seed noise;
- **borderline**: the status differs without reversing (e.g. does not hold -> inconclusive),
  and every effect stayed within what seed noise explains. Records are not bit-identical
  across processors or thread counts, and a run's trajectory then moves like another draw of
  its seed's noise (README, "Determinism"), so with 3-5 seeds such flips are expected: measured,
  a thread-count change alone flipped comparisons whose committed stability was 0.87-1.00 under the
  earlier model. Listed, with the comparisons' stability, and does not fail;
- **changed** (exit 1): a claim that reverses (holds <-> does not hold), an effect that moved
  beyond what seed noise explains (|z| > Z_FAR for the difference of the two mean effects, each
  with the standard error of its interval), a comparison whose number of usable seeds changed
  (runs missing or diverged), or a set of comparisons that differs. Machine-dependent
  comparisons (seconds of training) are compared by status only: their size moves with the
  machine and its thread count.

`clrepro verify --update` rewrites the committed files after a deliberate change.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clrepro.fsutil import write_text
from clrepro.plan import Plan

PAPERS_DIR = Path(__file__).resolve().parent / "papers"
Z_FAR = 3.29  # two-sided p < 0.001: an effect this far from the committed one is not noise
REVERSAL = {"holds", "does not hold"}
_KEPT = ("what", "status", "n", "effect", "ci", "p", "stability", "fragile", "machine_dependent")


def expected_path(paper: str, scale: str) -> Path:
    return PAPERS_DIR / paper / f"verdicts.{scale}.json"


def read_expected(path: Path) -> dict[str, dict[str, Any]]:
    """claim id -> {status, fragile, evidence: [...]} as committed."""
    return json.loads(path.read_text())["claims"]


@dataclass
class Judgement:
    claim: str
    expected: str  # "" = absent
    current: str
    outcome: str  # same | borderline | changed
    reasons: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    rows: list[Judgement]
    missing_tables: list[str]
    unrendered: list[str]

    @property
    def changed(self) -> list[Judgement]:
        return [r for r in self.rows if r.outcome == "changed"]

    @property
    def borderline(self) -> list[Judgement]:
        return [r for r in self.rows if r.outcome == "borderline"]

    def report(self) -> str:
        lines = [f"{'claim':<18} {'expected':<15} {'current':<15} outcome"]
        for r in self.rows:
            lines.append(f"{r.claim:<18} {r.expected or '(none)':<15} {r.current or '(none)':<15} "
                         f"{r.outcome}")
            lines += [f"    {why}" for why in r.reasons]
        for paper in self.missing_tables:
            lines.append(f"no committed verdicts for {paper} at this scale")
        for path in self.unrendered:
            lines.append(f"not rendered yet: {path}")
        counts = Counter(r.outcome for r in self.rows)
        lines.append(f"{len(self.rows)} claims: {counts['same']} same, {counts['borderline']} "
                     f"borderline (within seed and numerical noise), {counts['changed']} changed")
        return "\n".join(lines) + "\n"


def current_claims(plan: Plan) -> tuple[dict[str, dict[str, dict[str, Any]]], list[str]]:
    """paper -> claim id -> the claim as rendered (status, fragile, evidence, preconditions)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    unrendered = []
    for job in plan.artifacts.values():
        if not job.claims.is_file():
            unrendered.append(str(job.claims))
            continue
        for claim in json.loads(job.claims.read_text())["claims"]:
            out.setdefault(job.paper, {})[claim["id"]] = _kept(claim)
    return out, unrendered


def _kept(claim: dict[str, Any]) -> dict[str, Any]:
    """What verify compares: the status and each comparison's statistics (preconditions'
    comparisons named 'precondition <name>: ...')."""
    evidence = [dict(e) for e in claim.get("evidence", [])]
    for pre in claim.get("preconditions", []):
        evidence += [{**e, "what": f"precondition {pre['name']}: {e['what']}"}
                     for e in pre["evidence"]]
    return {"status": claim["status"], "fragile": bool(claim.get("fragile")),
            "evidence": [{k: e.get(k) for k in _KEPT} for e in evidence]}


def judge(claim: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> Judgement:
    if old is None or new is None:
        return Judgement(claim, old["status"] if old else "", new["status"] if new else "",
                         "changed", ["no committed verdict" if old is None else "not rendered"])
    j = Judgement(claim, old["status"], new["status"], "same")
    before, after = _keyed(old["evidence"]), _keyed(new["evidence"])
    far = []
    for key in before.keys() & after.keys():
        if before[key].get("machine_dependent") or after[key].get("machine_dependent"):
            continue
        z = _z(before[key], after[key])
        if z is not None and z > Z_FAR:
            far.append(f"{key[0]}: effect {before[key]['effect']:+.4g} -> "
                       f"{after[key]['effect']:+.4g}, beyond seed noise (z = {z:.1f})")
    if {old["status"], new["status"]} == REVERSAL:
        j.outcome, j.reasons = "changed", ["the claim reverses"] + far
        return j
    lost = [f"{key[0]}: n {before[key]['n']} -> {after[key]['n']} ("
            + ("runs missing or unusable)" if after[key]["n"] < before[key]["n"] else
               "more seeds than committed: `clrepro verify --update` after a deliberate change)")
            for key in before.keys() & after.keys() if before[key]["n"] != after[key]["n"]]
    if far or lost:
        j.outcome, j.reasons = "changed", far + lost
        return j
    if old["status"] == new["status"]:
        return j
    if not before:
        j.outcome, j.reasons = "changed", ["committed without evidence: rerun the preset and "
                                           "`clrepro verify --update` to record it"]
        return j
    if before.keys() != after.keys():
        gone = sorted(k[0] for k in before.keys() - after.keys())
        new_ = sorted(k[0] for k in after.keys() - before.keys())
        j.outcome = "changed"
        j.reasons = [f"comparisons differ: gone {gone}, new {new_}"]
        return j
    moved = [f"{key[0]}: {before[key]['status']} -> {after[key]['status']} (stability "
             f"{_s(before[key])} -> {_s(after[key])})"
             for key in before if before[key]["status"] != after[key]["status"]]
    if not moved:
        j.outcome, j.reasons = "changed", ["the status changed but no comparison did"]
    else:
        j.outcome, j.reasons = "borderline", [f"within noise: {why}" for why in moved]
    return j


def _keyed(evidence: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Comparisons by (what, occurrence): names need not be unique within a claim."""
    seen: Counter = Counter()
    out = {}
    for e in evidence:
        out[(e["what"], seen[e["what"]])] = e
        seen[e["what"]] += 1
    return out


def _se(e: dict[str, Any]) -> float | None:
    from scipy import stats

    if e.get("ci") is None or (e.get("n") or 0) < 2 or e.get("effect") is None:
        return None
    lo, hi = e["ci"]
    return (hi - lo) / 2 / float(stats.t.ppf(0.975, e["n"] - 1))


def _z(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """How far the mean effect moved, in standard errors of the difference of two means."""
    se0, se1 = _se(before), _se(after)
    if se0 is None or se1 is None:
        return None
    moved = abs(after["effect"] - before["effect"])
    scale = math.hypot(se0, se1)
    if scale == 0.0:  # both without spread: any visible move is real
        return math.inf if moved > 1e-9 * max(1.0, abs(before["effect"])) else 0.0
    return moved / scale


def _s(e: dict[str, Any]) -> str:
    return "-" if e.get("stability") is None else f"{e['stability']:.2f}"


def compare(plan: Plan) -> Comparison:
    current, unrendered = current_claims(plan)
    rows, missing = [], []
    for paper in sorted({j.paper for j in plan.artifacts.values()}):
        path = expected_path(paper, plan.scale)
        if not path.is_file():
            missing.append(paper)
            continue
        expected = read_expected(path)
        ours = current.get(paper, {})
        for claim in sorted(set(expected) | set(ours), key=_claim_order):
            rows.append(judge(claim, expected.get(claim), ours.get(claim)))
    return Comparison(rows, missing, unrendered)


def update(plan: Plan) -> list[Path]:
    current, unrendered = current_claims(plan)
    if unrendered:
        raise RuntimeError("render every artifact first: " + ", ".join(unrendered))
    written = []
    for paper, claims in sorted(current.items()):
        path = expected_path(paper, plan.scale)
        ordered = dict(sorted(claims.items(), key=lambda kv: _claim_order(kv[0])))
        body = {"about": f"expected {plan.scale}-preset verdicts of {paper} and their evidence "
                         f"(clrepro verify --update)", "claims": ordered}
        write_text(path, json.dumps(body, indent=1) + "\n")
        written.append(path)
    return written


def _claim_order(claim: str) -> tuple[str, int]:
    paper, _, cid = claim.rpartition(".")
    return paper, int(cid.lstrip("C") or 0) if cid[1:].isdigit() else 0
