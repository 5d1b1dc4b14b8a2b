"""Load the run records an artifact reads into one tidy DataFrame.

Failed cells stay visible: a missing or corrupt record becomes a row with status
"missing"/"corrupt", a diverged run keeps status "diverged"; none of them enter means.
Records produced under another protocol version are flagged ("stale") and left out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from clrepro import metrics
from clrepro.results import CorruptRecordError, load_record
from clrepro.spec import RunSpec

log = logging.getLogger("clrepro")

METRIC_COLUMNS = ("acc", "bwt", "fwt", "learning_acc", "final_acc_weighted", "avg_inc_acc",
                  "forgetting", "train_s", "eval_s")


class RunSet:
    def __init__(self, specs: Iterable[RunSpec], root: str | Path, protocol_version: int,
                 transfer_norm: str = "paper"):
        self.root = Path(root)
        self.records: dict[RunSpec, dict[str, Any]] = {}
        rows = []
        for spec in specs:
            path = spec.path(root)
            row: dict[str, Any] = {**spec.to_dict(), "label": spec.label, "variant": spec.variant,
                                   "path": str(path)}
            row.pop("overrides")
            try:
                record = load_record(path)
            except FileNotFoundError:
                row["status"] = "missing"
            except CorruptRecordError as exc:
                log.warning("%s", exc)
                row["status"] = "corrupt"
            else:
                version = record.get("hp", {}).get("protocol_version")
                row["status"] = record["status"] if version == protocol_version else "stale"
                if row["status"] == "stale":
                    log.warning("%s was made under protocol version %s, not %s: left out; "
                                "rerun it", path, version, protocol_version)
                self.records[spec] = record
                if record["status"] == "ok":
                    r, b = np.array(record["R"]), np.array(record["b"])
                    row.update(metrics.summary(r, b, record["test_sizes"], transfer_norm))
                    row["train_s"] = record["timings"]["train_s"]
                    row["eval_s"] = record["timings"]["eval_s"]
            rows.append(row)
        self.df = pd.DataFrame(rows, columns=None if rows else [
            "benchmark", "method", "seed", "memory", "epochs", "label", "variant", "path", "status"])
        for col in METRIC_COLUMNS:
            if col not in self.df:
                self.df[col] = np.nan
        usable = self.df["status"] == "ok"
        self.df.loc[~usable, list(METRIC_COLUMNS)] = np.nan

    def select(self, **where: Any) -> pd.DataFrame:
        df = self.df
        for key, value in where.items():
            df = df[df[key].isin(value) if isinstance(value, (list, tuple, set)) else df[key] == value]
        return df

    def ok(self, **where: Any) -> pd.DataFrame:
        df = self.select(**where)
        return df[df["status"] == "ok"]

    def mean(self, metric: str, **where: Any) -> float:
        values = self.ok(**where)[metric]
        return float(values.mean()) if len(values) else float("nan")

    def values(self, metric: str, **where: Any) -> dict[int, float]:
        """Seed -> metric of the usable runs matching `where` (one run per seed expected):
        what the verdict engine pairs across methods."""
        ok = self.ok(**where)
        if ok["seed"].duplicated().any():
            raise ValueError(f"several runs per seed match {where}; narrow the selection")
        return {int(s): float(v) for s, v in zip(ok["seed"], ok[metric])}

    def record(self, spec: RunSpec) -> dict[str, Any] | None:
        record = self.records.get(spec)
        return record if record is not None and record["status"] == "ok" else None

    def artifacts_path(self, spec: RunSpec) -> Path:
        """Tensors a run saved beside its record (GMED's edited memory)."""
        return spec.path(self.root).with_suffix(".artifacts.pt")

    def problems(self) -> pd.DataFrame:
        return self.df[self.df["status"] != "ok"]


def mean_sd(values: pd.Series) -> tuple[float, float, int]:
    values = values.dropna()
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    sd = float(values.std(ddof=1)) if n > 1 else float("nan")  # sample sd (spec §3)
    return mean, sd, n


def summarise(df: pd.DataFrame, by: list[str], metrics_: list[str]) -> pd.DataFrame:
    """Mean, sample sd and count of usable runs per group, plus a note on unusable ones."""
    rows = []
    for key, group in df.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        ok = group[group["status"] == "ok"]
        for m in metrics_:
            row[f"{m}_mean"], row[f"{m}_sd"], row["n"] = mean_sd(ok[m])
        bad = group.loc[group["status"] != "ok", "status"].value_counts()
        row["runs"] = f"{len(ok)}/{len(group)}" + "".join(f", {n} {s}" for s, n in bad.items())
        rows.append(row)
    return pd.DataFrame(rows)
