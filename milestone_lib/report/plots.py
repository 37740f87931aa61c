"""Plots meant for slides: one style (sizes, fonts) for every notebook, plain-millisecond log axes.

Every plot function draws inside `slide_style()`, so figures from different notebooks match;
log-scale latency axes get ticks from `log_ms_ticks` ("2", "5", "10" ms), never `3×10⁰`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from ..settings import configure_offline_environment
from .breakdown import PARTS

__all__ = [
    "PANEL_SIZE",
    "SLIDE_STYLE",
    "log_ms_ticks",
    "mark_smoke",
    "plot_accuracy_vs_latency",
    "plot_step_breakdown",
    "set_log_ms_axis",
    "slide_style",
]

PANEL_SIZE = (6.0, 4.2)
"""Inches per panel; a figure of n panels side by side is n times as wide."""
SLIDE_STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans", "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11,
    "xtick.labelsize": 10, "ytick.labelsize": 10, "legend.fontsize": 9, "figure.titlesize": 13,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
}
# Candidate mantissas per decade, coarsest first: the coarsest set giving enough ticks wins.
_MANTISSAS = ((1.0,), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
              (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0))
_PARTS_COLOURS = {"queue": "#f2a541", "compute": "#3d7dca", "network": "#8fbf6a"}


@contextmanager
def slide_style() -> Iterator[None]:
    """Draw inside this to get the shared sizes and fonts (matplotlib rc, restored on exit)."""
    configure_offline_environment()
    import matplotlib.pyplot as plt

    with plt.rc_context(SLIDE_STYLE):
        yield


def log_ms_ticks(low: float, high: float, *, min_ticks: int = 3, max_ticks: int = 6) -> list[float]:
    """Round millisecond values (1-2-5 and finer) between `low` and `high`, at most `max_ticks` of them."""
    if not 0 < low <= high:
        raise ValueError(f"a log axis needs 0 < low <= high, got low={low}, high={high}")
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    ticks: list[float] = []
    for mantissas in _MANTISSAS:
        ticks = [float(f"{m * 10.0**e:.6g}") for e in decades for m in mantissas if low <= m * 10.0**e <= high]
        if len(ticks) >= min_ticks:
            break
    stride = math.ceil(len(ticks) / max_ticks) if ticks else 1
    return ticks[::stride]


def set_log_ms_axis(axis: Any, values: Iterable[float], *, which: str = "x", pad: float = 1.25) -> None:
    """Log scale over `values` (padded by the factor `pad`), with plain-millisecond tick labels."""
    from matplotlib.ticker import (
        FixedLocator,
        FuncFormatter,
        NullFormatter,
        NullLocator,
    )

    finite = [v for v in values if v is not None and np.isfinite(v) and v > 0]
    low, high = (min(finite) / pad, max(finite) * pad) if finite else (1.0, 10.0)
    target = axis.xaxis if which == "x" else axis.yaxis
    (axis.set_xscale if which == "x" else axis.set_yscale)("log")
    (axis.set_xlim if which == "x" else axis.set_ylim)(low, high)
    target.set_major_locator(FixedLocator(log_ms_ticks(low, high)))
    target.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    # Minor ticks of a log axis are labelled by default ("3×10⁰"); keep them unlabelled and few.
    target.set_minor_locator(NullLocator())
    target.set_minor_formatter(NullFormatter())


def mark_smoke(figure: Any) -> Any:
    """Put "smoke run" into the figure's title, so a smoke plot is never taken for a full run's."""
    existing = figure.get_suptitle()
    if "smoke" not in existing:
        figure.suptitle(f"{existing} (smoke run)" if existing else "smoke run")
        figure.tight_layout()
    return figure


def plot_accuracy_vs_latency(table: pd.DataFrame, *, title: str = "") -> Any:
    """One panel per step: accuracy against latency per image (batch 1, 1 thread); colour = format, marker = model @ input px."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    built = table[table["Status"] == "built"].copy()
    built["Format / precision"] = built["Format"] + " " + built["Precision"]
    built["Model @ input"] = built["Model"]
    if "Input px" in built:
        built["Model @ input"] = built["Model"] + " @" + built["Input px"].astype(int).astype(str) + "px"
    steps = list(dict.fromkeys(built["Step"])) or [""]
    with slide_style():
        figure, axes = plt.subplots(1, len(steps), figsize=(PANEL_SIZE[0] * len(steps), PANEL_SIZE[1]),
                                    squeeze=False)
        for axis, step in zip(axes[0], steps):
            data = built[built["Step"] == step]
            if len(data):
                sns.scatterplot(data=data, x="Latency ms", y="Accuracy", hue="Format / precision", style="Model @ input",
                                s=90, ax=axis)
                axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)  # beside the points, never on them
            set_log_ms_axis(axis, data["Latency ms"].astype(float))
            axis.set_title(f"{step}: accuracy vs latency")
            axis.set_xlabel("latency per image, ms (log scale; batch 1, 1 thread)")
            axis.set_ylabel(data["Metric"].iloc[0] if len(data) else "accuracy")
        if title:
            figure.suptitle(title)
        figure.tight_layout()
    return figure


def plot_step_breakdown(breakdowns: Mapping[str, pd.DataFrame] | pd.DataFrame, *, title: str = "") -> Any:
    """Stacked bars (queue / compute / network) per part of the pipeline; one panel per run."""
    import matplotlib.pyplot as plt

    runs = {"": breakdowns} if isinstance(breakdowns, pd.DataFrame) else dict(breakdowns)
    with slide_style():
        figure, axes = plt.subplots(1, len(runs), figsize=(PANEL_SIZE[0] * len(runs), PANEL_SIZE[1]),
                                    sharey=True, squeeze=False)
        for ax, (label, table) in zip(axes[0], runs.items()):
            bottom = np.zeros(len(table))
            for part in PARTS:
                values = table[f"{part}_ms"].to_numpy(dtype=float)
                ax.bar(table.index, values, bottom=bottom, label=part, color=_PARTS_COLOURS[part])
                bottom += values
            for x, total in enumerate(bottom):
                ax.text(x, total, f"{total:.1f}", ha="center", va="bottom", fontsize=9)
            ax.set_title(label)
            ax.set_ylabel("mean ms per request")
        axes[0][0].legend(loc="upper left")
        if title:
            figure.suptitle(title)
        figure.tight_layout()
    return figure
