"""Figure style and saving (PDF + PNG, reproducible metadata)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from clrepro.fsutil import atomic_path  # noqa: E402

# One colour per method across every figure of the report.
METHOD_ORDER = ["iid", "single", "finetune", "independent", "multimodal", "ewc", "icarl", "gem",
                "gem (margin_mode=lower_bound)"]


def setup_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight", "axes.titleweight": "bold",
                         "legend.frameon": False})


def method_palette(labels) -> dict[str, tuple]:
    known = [m for m in METHOD_ORDER if m in set(labels)]
    extra = sorted(set(labels) - set(known))
    colours = sns.color_palette("colorblind", len(known) + len(extra))
    return dict(zip(known + extra, colours))


def ordered(labels) -> list[str]:
    labels = list(dict.fromkeys(labels))
    return sorted(labels, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else 99, m))


def save_figure(fig, pdf: Path, png: Path) -> None:
    for path, kwargs in ((pdf, {"metadata": {"CreationDate": None}}), (png, {"dpi": 160})):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], **kwargs)
