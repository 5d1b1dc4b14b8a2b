"""Reproduction as a regression test: compare the current verdicts with committed ones.

Each paper package commits the verdicts its quick preset gives (`verdicts.quick.tsv`: claim
id, status). `clrepro verify` (and `snakemake verify`) reads results/claims/*.json and lists
every verdict that differs; `clrepro verify --update` rewrites the committed tables after a
deliberate change. Verdicts of the quick preset are deterministic on the CPU (same seeds,
same records), so a change means the code or the protocol changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from clrepro.fsutil import write_text
from clrepro.plan import Plan

PAPERS_DIR = Path(__file__).resolve().parent / "papers"


def expected_path(paper: str, scale: str) -> Path:
    return PAPERS_DIR / paper / f"verdicts.{scale}.tsv"


def read_expected(path: Path) -> dict[str, str]:
    rows = [line.split("\t") for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    return {claim: status for claim, status in rows}


@dataclass
class Comparison:
    rows: list[tuple[str, str, str]]  # (claim, expected, current); "" = absent
    missing_tables: list[str]
    unrendered: list[str]

    @property
    def changed(self) -> list[tuple[str, str, str]]:
        return [r for r in self.rows if r[1] != r[2]]

    def report(self) -> str:
        lines = [f"{'claim':<18} {'expected':<15} {'current':<15}"]
        for claim, exp, cur in self.rows:
            mark = "  <-- changed" if exp != cur else ""
            lines.append(f"{claim:<18} {exp or '(none)':<15} {cur or '(none)':<15}{mark}")
        for paper in self.missing_tables:
            lines.append(f"no committed verdicts for {paper} at this scale")
        for path in self.unrendered:
            lines.append(f"not rendered yet: {path}")
        n = len(self.changed)
        lines.append(f"{len(self.rows)} claims, {n} changed" if n else
                     f"{len(self.rows)} claims, no verdict changed")
        return "\n".join(lines) + "\n"


def current_verdicts(plan: Plan) -> tuple[dict[str, dict[str, str]], list[str]]:
    """paper -> claim id -> status, from the claims files of the planned artifacts."""
    out: dict[str, dict[str, str]] = {}
    unrendered = []
    for job in plan.artifacts.values():
        if not job.claims.is_file():
            unrendered.append(str(job.claims))
            continue
        for claim in json.loads(job.claims.read_text())["claims"]:
            out.setdefault(job.paper, {})[claim["id"]] = claim["status"]
    return out, unrendered


def compare(plan: Plan) -> Comparison:
    current, unrendered = current_verdicts(plan)
    rows, missing = [], []
    for paper in sorted({j.paper for j in plan.artifacts.values()}):
        path = expected_path(paper, plan.scale)
        if not path.is_file():
            missing.append(paper)
            continue
        expected = read_expected(path)
        ours = current.get(paper, {})
        for claim in sorted(set(expected) | set(ours), key=_claim_order):
            rows.append((claim, expected.get(claim, ""), ours.get(claim, "")))
    return Comparison(rows, missing, unrendered)


def update(plan: Plan) -> list[Path]:
    current, unrendered = current_verdicts(plan)
    if unrendered:
        raise RuntimeError("render every artifact first: " + ", ".join(unrendered))
    written = []
    for paper, claims in sorted(current.items()):
        path = expected_path(paper, plan.scale)
        lines = [f"# expected {plan.scale}-preset verdicts of {paper} (clrepro verify --update)"]
        lines += [f"{c}\t{s}" for c, s in sorted(claims.items(), key=lambda kv: _claim_order(kv[0]))]
        write_text(path, "\n".join(lines) + "\n")
        written.append(path)
    return written


def _claim_order(claim: str) -> tuple[str, int]:
    paper, _, cid = claim.rpartition(".")
    return paper, int(cid.lstrip("C") or 0) if cid[1:].isdigit() else 0
