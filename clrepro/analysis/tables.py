"""Tables as CSV (full precision), Markdown and LaTeX (formatted)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from clrepro.fsutil import write_text


def fmt(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def fmt_mean_sd(mean: float, sd: float, n: int, digits: int = 2) -> str:
    """'0.86' for one seed, '0.86 ± 0.01' for several, '–' when nothing usable ran."""
    if n == 0 or math.isnan(mean):
        return "–"
    if n == 1 or math.isnan(sd):
        return fmt(mean, digits)
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def fmt_cell(row, metric: str, digits: int = 2) -> str:
    """A summarise() row's metric as 'mean ± sd', or why there is no number ('1 diverged')."""
    if row["n"] == 0:
        return row["runs"].split(", ", 1)[1] if ", " in row["runs"] else "–"
    return fmt_mean_sd(row[f"{metric}_mean"], row[f"{metric}_sd"], row["n"], digits)


def to_markdown(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False) + "\n"


def to_latex(df: pd.DataFrame, caption: str = "") -> str:
    body = df.to_latex(index=False, escape=True, caption=caption or None)
    return body.replace("±", r"$\pm$").replace("–", "--")


def write_table(df: pd.DataFrame, csv: Path, md: Path | None = None, tex: Path | None = None,
                display: pd.DataFrame | None = None, caption: str = "") -> None:
    """CSV gets the raw numbers; Markdown/TeX get `display` (formatted) if given."""
    write_text(csv, df.to_csv(index=False))
    shown = display if display is not None else df
    if md is not None:
        write_text(md, (f"{caption}\n\n" if caption else "") + to_markdown(shown))
    if tex is not None:
        write_text(tex, to_latex(shown, caption))
