"""Figure style and saving (PDF + PNG, reproducible metadata)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from clrepro.fsutil import atomic_path  # noqa: E402

def setup_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight", "axes.titleweight": "bold",
                         "legend.frameon": False})


def method_palette(labels, order=()) -> dict[str, tuple]:
    """One colour per method label: those in `order` (a paper's method order) first, in that
    order, then the rest alphabetically, so a method keeps its colour across a paper's figures."""
    known = [m for m in order if m in set(labels)]
    extra = sorted(set(labels) - set(known))
    colours = sns.color_palette("colorblind", len(known) + len(extra))
    return dict(zip(known + extra, colours))


def ordered(labels, order=()) -> list[str]:
    """The distinct labels, those in `order` first in that order, then the rest alphabetically."""
    labels = list(dict.fromkeys(labels))
    order = list(order)
    return sorted(labels, key=lambda m: (order.index(m) if m in order else 99, m))


def save_figure(fig, pdf: Path, png: Path) -> None:
    for path, kwargs in ((pdf, {"metadata": {"CreationDate": None}}), (png, {"dpi": 160})):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], **kwargs)
