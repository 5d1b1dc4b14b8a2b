"""A claim's outcome: the four statuses and the Verdict record (what clrepro.analysis.verdicts
computes and the papers' claim functions return)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HOLDS, FAILS, NOT_CHECKABLE, INCONCLUSIVE = "holds", "does not hold", "not checkable", "inconclusive"
VERDICTS = (HOLDS, FAILS, NOT_CHECKABLE, INCONCLUSIVE)


@dataclass
class Verdict:
    """A claim's outcome. `evidence` and `preconditions` hold the per-comparison statistics
    (n, effect, interval, p, rule) that clrepro.analysis.verdicts computed."""

    status: str
    detail: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    preconditions: list[dict[str, Any]] = field(default_factory=list)
    rule: str = ""
    fragile: bool = False  # a rerun on another machine may change the status (verdicts.FRAGILE)

    def __post_init__(self) -> None:
        if self.status not in VERDICTS:
            raise ValueError(f"verdict status must be one of {VERDICTS}")
