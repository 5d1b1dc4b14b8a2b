"""RunSpec: the identity of one training run, and its result path.

    results/runs/<benchmark>/<method>/m<memory>-e<epochs>[+key=value...]/s<seed>.json

The path *is* the spec (it parses back), so a Snakemake wildcard match, a file listing
and a record all name runs the same way. `memory` is the total number of memory slots
(0 for memory-free methods); overrides are option changes that define a labelled variant,
e.g. `+gem.margin_mode=lower_bound`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clrepro.fsutil import stable_hash

_SETTING = re.compile(r"^m(?P<memory>\d+)-e(?P<epochs>\d+)(?P<rest>(\+[A-Za-z0-9_.]+=[^+/]+)*)$")
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parse_value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


@dataclass(frozen=True, order=True)
class RunSpec:
    benchmark: str
    method: str
    seed: int
    memory: int = 0
    epochs: int = 1
    overrides: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", tuple(sorted(dict(self.overrides).items())))
        for key, value in self.overrides:
            if not _KEY.match(key) or "+" in format_value(value) or "/" in format_value(value):
                raise ValueError(f"override {key}={value!r} cannot be part of a path")

    @property
    def setting(self) -> str:
        extra = "".join(f"+{k}={format_value(v)}" for k, v in self.overrides)
        return f"m{self.memory}-e{self.epochs}{extra}"

    def path(self, root: str | Path = "results") -> Path:
        return Path(root) / "runs" / self.benchmark / self.method / self.setting / f"s{self.seed}.json"

    @property
    def variant(self) -> str:
        """Human label of the override set ('' for the default protocol)."""
        return ", ".join(f"{k.split('.')[-1]}={format_value(v)}" for k, v in self.overrides)

    @property
    def label(self) -> str:
        return f"{self.method} ({self.variant})" if self.overrides else self.method

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "method": self.method, "seed": self.seed,
                "memory": self.memory, "epochs": self.epochs, "overrides": dict(self.overrides)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSpec":
        return cls(d["benchmark"], d["method"], int(d["seed"]), int(d.get("memory", 0)),
                   int(d.get("epochs", 1)), tuple(dict(d.get("overrides", {})).items()))

    @classmethod
    def from_parts(cls, benchmark: str, method: str, setting: str, seed: str | int) -> "RunSpec":
        match = _SETTING.match(setting)
        if not match:
            raise ValueError(f"bad run setting '{setting}' (expected m<memory>-e<epochs>[+k=v...])")
        overrides = []
        for item in filter(None, match["rest"].split("+")):
            key, _, value = item.partition("=")
            overrides.append((key, parse_value(value)))
        return cls(benchmark, method, int(str(seed).lstrip("s")), int(match["memory"]),
                   int(match["epochs"]), tuple(overrides))

    @classmethod
    def from_path(cls, path: str | Path) -> "RunSpec":
        parts = Path(path).parts
        if len(parts) < 5 or parts[-5] != "runs" or not parts[-1].endswith(".json"):
            raise ValueError(f"{path} is not a run path (…/runs/<benchmark>/<method>/<setting>/s<seed>.json)")
        return cls.from_parts(parts[-4], parts[-3], parts[-2], parts[-1][:-len(".json")])


def protocol_hash(hp: dict[str, Any], benchmark: dict[str, Any]) -> str:
    """What a run's result depends on, hashed: its hyperparameters and benchmark definition
    (the record stores it; a record under another protocol hash is rerun)."""
    return stable_hash({"hp": hp, "benchmark": benchmark})
